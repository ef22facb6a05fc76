using System.Runtime.InteropServices;
using TorchSharp;
using TorchTrials.Gpu.Native;

namespace TorchTrials.Gpu.Cuda;

/// <summary>A CUDA stream of LibTorch's pool on one device.</summary>
public sealed record CudaStream(IntPtr Handle, int Device);

/// <summary>
/// CUDA streams through LibTorch's stable C shim (torch/csrc/stable/c/shim.h, LibTorch 2.10+), which
/// TorchSharp 0.107 does not wrap (dotnet/TorchSharp#1431). All three calls return 0 on success.
/// The current stream is thread-local in LibTorch: each trial thread sets its slot's stream itself.
/// </summary>
public sealed unsafe class CudaStreamApi
{
    private readonly delegate* unmanaged<byte, int, IntPtr*, int> _fromPool;
    private readonly delegate* unmanaged<IntPtr, int, int> _setCurrent;
    private readonly delegate* unmanaged<IntPtr, int, int> _synchronize;

    private CudaStreamApi(IntPtr fromPool, IntPtr setCurrent, IntPtr synchronize)
    {
        _fromPool = (delegate* unmanaged<byte, int, IntPtr*, int>)fromPool;
        _setCurrent = (delegate* unmanaged<IntPtr, int, int>)setCurrent;
        _synchronize = (delegate* unmanaged<IntPtr, int, int>)synchronize;
    }

    /// <summary>
    /// The shim's entry points, when TorchSharp's CUDA backend is loaded and libtorch_cuda.so exports them;
    /// otherwise null and <paramref name="why"/> says what is missing.
    /// </summary>
    public static CudaStreamApi? TryLoad(out string why)
    {
        if (!NativeRuntime.EnsureLoaded().CudaAvailable)
        {
            why = "TorchSharp's CUDA backend is not loaded (build with -p:TorchTrialsBackend=cuda on a machine with an NVIDIA GPU)";
            return null;
        }
        var dir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? "";
        IntPtr lib = IntPtr.Zero;
        foreach (var candidate in new[] { "libtorch_cuda.so", Path.Combine(dir, "runtimes", "linux-x64", "native", "libtorch_cuda.so"), Path.Combine(dir, "libtorch_cuda.so") })
            if (NativeLibrary.TryLoad(candidate, out lib)) break;
        if (lib == IntPtr.Zero)
        {
            why = "libtorch_cuda.so could not be opened";
            return null;
        }
        if (!NativeLibrary.TryGetExport(lib, "torch_get_cuda_stream_from_pool", out var fromPool) ||
            !(NativeLibrary.TryGetExport(lib, "torch_set_current_cuda_stream", out var setCurrent) ||
              NativeLibrary.TryGetExport(lib, "aoti_torch_set_current_cuda_stream", out setCurrent)) ||
            !NativeLibrary.TryGetExport(lib, "torch_cuda_stream_synchronize", out var synchronize))
        {
            why = "libtorch_cuda.so lacks the stable stream shim (needs LibTorch 2.10 or later)";
            return null;
        }
        why = "";
        return new CudaStreamApi(fromPool, setCurrent, synchronize);
    }

    /// <summary>A stream from LibTorch's pool (round-robin over 32 per device and priority).</summary>
    public CudaStream GetStreamFromPool(int device, bool highPriority = false)
    {
        IntPtr stream;
        Check(_fromPool(highPriority ? (byte)1 : (byte)0, device, &stream), "torch_get_cuda_stream_from_pool");
        return new CudaStream(stream, device);
    }

    /// <summary>Makes <paramref name="stream"/> the calling thread's current stream on its device.</summary>
    public void SetCurrent(CudaStream stream) => Check(_setCurrent(stream.Handle, stream.Device), "torch_set_current_cuda_stream");

    /// <summary>Waits for this stream only; never the device-wide synchronize that would stall other trials.</summary>
    public void Synchronize(CudaStream stream) => Check(_synchronize(stream.Handle, stream.Device), "torch_cuda_stream_synchronize");

    private static void Check(int code, string call)
    {
        if (code != 0) throw new InvalidOperationException($"{call} failed with code {code}");
    }
}
