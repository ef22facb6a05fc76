using System.Runtime.InteropServices;
using TorchSharp;

namespace TorchTrials.Gpu.Native;

/// <summary>Raised when LibTorch or TorchSharp's native shim cannot be loaded; the message says what is missing and how to fix it.</summary>
public sealed class NativeRuntimeException : Exception
{
    public NativeRuntimeException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>What the loaded native runtime offers.</summary>
/// <param name="CudaAvailable">True when TorchSharp's CUDA backend is loaded and sees a device.</param>
/// <param name="CudaDeviceCount">CUDA devices LibTorch sees (0 without the CUDA backend).</param>
/// <param name="LibTorchVersion">The TorchSharp assembly version in use.</param>
public sealed record NativeRuntimeInfo(bool CudaAvailable, int CudaDeviceCount, string LibTorchVersion);

/// <summary>
/// Loads LibTorch once per process. This is the one piece of process-wide state the project keeps:
/// the native runtime itself. Failures are reported with TorchSharp's own load trace plus a diagnosis
/// of the libstdc++ mismatch described in FACTS.md.
/// </summary>
public static class NativeRuntime
{
    private static readonly Lazy<NativeRuntimeInfo> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Loads the native runtime if needed and describes it; throws <see cref="NativeRuntimeException"/> when it cannot load.</summary>
    public static NativeRuntimeInfo EnsureLoaded() => Loaded.Value;

    private static NativeRuntimeInfo Load()
    {
        bool wantCuda = Environment.GetEnvironmentVariable("TORCHTRIALS_DEVICE") is not "cpu";
        try
        {
            if (wantCuda && torch.TryInitializeDeviceType(DeviceType.CUDA) && torch.cuda.is_available())
                return new NativeRuntimeInfo(true, torch.cuda.device_count(), typeof(torch).Assembly.GetName().Version?.ToString() ?? "?");
        }
        catch (Exception) when (wantCuda)
        {
            // The CUDA backend is optional: without it we run on CPU.
        }

        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            using var probe = torch.ones(1);
        }
        catch (Exception e)
        {
            throw new NativeRuntimeException(Diagnose(e), e);
        }
        return new NativeRuntimeInfo(false, 0, typeof(torch).Assembly.GetName().Version?.ToString() ?? "?");
    }

    private static string Diagnose(Exception e)
    {
        var root = e;
        while (root.InnerException is not null && root is TypeInitializationException) root = root.InnerException;
        string hint = "";
        var shim = FindShim();
        if (shim is not null && RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
        {
            try
            {
                var needs = ElfVersionNeeds.Read(File.ReadAllBytes(shim));
                var libstdcxx = Libstdcxx.Locate();
                var missing = needs.Entries
                    .Where(n => n.File.StartsWith("libstdc++", StringComparison.Ordinal) && !n.Weak && libstdcxx is not null && !libstdcxx.Defines(n.Version))
                    .Select(n => n.Version).ToList();
                if (missing.Count > 0)
                    hint = $" {shim} needs {string.Join(", ", missing)} from libstdc++, which {libstdcxx!.Path} lacks: rebuild with `dotnet build` " +
                           "(the TorchTrials build marks GLIBCXX_3.4.32 weak in the output copy) or install libstdc++ from GCC 13 or later.";
            }
            catch (Exception diag) when (diag is IOException or InvalidDataException)
            {
                hint = $" (could not inspect {shim}: {diag.Message})";
            }
        }
        else if (shim is null)
        {
            hint = " libLibTorchSharp.so is not next to TorchSharp.dll: reference the libtorch-cpu-linux-x64 package (TorchTrials.Gpu does).";
        }
        return $"TorchSharp's native runtime failed to load.{hint}{Environment.NewLine}{root.Message}";
    }

    private static string? FindShim()
    {
        var dir = Path.GetDirectoryName(typeof(torch).Assembly.Location);
        if (string.IsNullOrEmpty(dir)) return null;
        foreach (var candidate in new[] { Path.Combine(dir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"), Path.Combine(dir, "libLibTorchSharp.so") })
            if (File.Exists(candidate)) return candidate;
        return null;
    }
}
