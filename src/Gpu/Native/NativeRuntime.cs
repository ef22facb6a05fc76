using System.Runtime.InteropServices;
using TorchSharp;

namespace TorchTrials.Gpu.Native;

/// <summary>Raised when LibTorch or TorchSharp's native shim cannot be loaded; the message says what is missing and how to fix it.</summary>
public sealed class NativeRuntimeException : Exception
{
    public NativeRuntimeException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// What the files say about a failed load: where TorchSharp's shim is and which libstdc++ versions it needs that the
/// system's libstdc++ lacks (FACTS.md: TorchSharp 0.107 asks for GLIBCXX_3.4.32, Debian 12 and Ubuntu 22.04 have up to 3.4.30).
/// </summary>
/// <param name="Shim">libLibTorchSharp.so next to TorchSharp.dll, or null when it is not there.</param>
/// <param name="Missing">GLIBCXX versions the shim needs (not weak) that <paramref name="Libstdcxx"/> does not define.</param>
/// <param name="Libstdcxx">The libstdc++ the loader will use, or null when none was found or the platform is not Linux.</param>
/// <param name="LibstdcxxHighest">The newest GLIBCXX version <paramref name="Libstdcxx"/> defines.</param>
internal sealed record NativeLoadDiagnosis(string? Shim, IReadOnlyList<string> Missing, string? Libstdcxx, string? LibstdcxxHighest)
{
    private const string Lead = "TorchSharp's native library cannot load: ";

    public bool IsLibstdcxxMismatch => Shim is not null && Missing.Count > 0;

    public static NativeLoadDiagnosis Inspect(string? shim)
    {
        if (shim is null || !RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return new(shim, Array.Empty<string>(), null, null);
        try
        {
            var libstdcxx = Native.Libstdcxx.Locate();
            if (libstdcxx is null) return new(shim, Array.Empty<string>(), null, null);
            var missing = ElfVersionNeeds.Read(File.ReadAllBytes(shim)).Entries
                .Where(n => n.File.StartsWith("libstdc++", StringComparison.Ordinal) && !n.Weak && !libstdcxx.Defines(n.Version))
                .Select(n => n.Version).Distinct().ToList();
            return new(shim, missing, libstdcxx.Path, libstdcxx.Highest("GLIBCXX_"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException or IndexOutOfRangeException)
        {
            return new(shim, Array.Empty<string>(), null, null);
        }
    }

    /// <summary>One line: the cause first, then the fix. <paramref name="torchSharpMessage"/> is TorchSharp's own error, when it ran.</summary>
    public string Describe(string? torchSharpMessage)
    {
        var file = Path.GetFileName(Shim) ?? "libLibTorchSharp.so";
        if (IsLibstdcxxMismatch)
        {
            var has = LibstdcxxHighest is null ? $"{Libstdcxx} lacks them" : $"{Libstdcxx} has up to {LibstdcxxHighest}";
            var fix = Missing.All(v => v == LibTorchSharpFix.MissingVersion)
                ? "reference the TorchTrials package (its build step marks that need weak in the output copy; " +
                  "do not set TorchTrialsSkipNativeFix) or install libstdc++ from GCC 13 or later"
                : "install libstdc++ from GCC 13 or later (only GLIBCXX_3.4.32 can be marked weak)";
            return $"{Lead}{file} needs {string.Join(", ", Missing)} but {has}; {fix}.";
        }
        if (Shim is null)
            return $"{Lead}libLibTorchSharp.so is not next to TorchSharp.dll; reference the TorchTrials package (it brings TorchSharp and libtorch-cpu-linux-x64).";
        var first = torchSharpMessage?.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0);
        return $"{Lead}{first ?? "unknown cause"} (the exception's inner error has TorchSharp's load trace).";
    }
}

/// <summary>What the loaded native runtime offers.</summary>
/// <param name="CudaAvailable">True when TorchSharp's CUDA backend is loaded and sees a device.</param>
/// <param name="CudaDeviceCount">CUDA devices LibTorch sees (0 without the CUDA backend).</param>
/// <param name="LibTorchVersion">The TorchSharp assembly version in use.</param>
public sealed record NativeRuntimeInfo(bool CudaAvailable, int CudaDeviceCount, string LibTorchVersion);

/// <summary>
/// Loads LibTorch once per process. This is the one piece of process-wide state the project keeps:
/// the native runtime itself. A failure is a <see cref="NativeRuntimeException"/> whose message is one line naming
/// the cause and the fix (<see cref="NativeLoadDiagnosis"/>); TorchSharp's own load trace is its inner exception.
/// </summary>
public static class NativeRuntime
{
    private static readonly Lazy<NativeRuntimeInfo> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Loads the native runtime if needed and describes it; throws <see cref="NativeRuntimeException"/> when it cannot load.</summary>
    public static NativeRuntimeInfo EnsureLoaded() => Loaded.Value;

    private static NativeRuntimeInfo Load()
    {
        // A libstdc++ too old for the shim is certain to fail: say so before TorchSharp prints its long load trace to stdout.
        if (NativeLoadDiagnosis.Inspect(FindShim()) is { IsLibstdcxxMismatch: true } mismatch)
            throw new NativeRuntimeException(mismatch.Describe(null));
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
            var root = e;
            while (root.InnerException is not null && root is TypeInitializationException) root = root.InnerException;
            throw new NativeRuntimeException(NativeLoadDiagnosis.Inspect(FindShim()).Describe(root.Message), e);
        }
        return new NativeRuntimeInfo(false, 0, typeof(torch).Assembly.GetName().Version?.ToString() ?? "?");
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
