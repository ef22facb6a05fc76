using TorchTrials.Gpu.Cuda;
using TorchTrials.Gpu.Native;

namespace TorchTrials.IntegrationTests.Cuda;

/// <summary>
/// A test that needs TorchSharp's CUDA backend and a GPU. Elsewhere it is reported as skipped with the reason, so a run
/// on a CPU machine says plainly that the CUDA paths were not exercised.
/// </summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        var why = WhyUnavailable();
        if (why is not null) Skip = $"CUDA path not exercised: {why}";
    }

    public static string? WhyUnavailable()
    {
        try
        {
            var runtime = NativeRuntime.EnsureLoaded();
            if (!runtime.CudaAvailable)
                return "TorchSharp's CUDA backend is not loaded (build with -p:TorchTrialsBackend=cuda on a machine with an NVIDIA GPU)";
            return CudaStreamApi.TryLoad(out var why) is null ? why : null;
        }
        catch (NativeRuntimeException e)
        {
            return e.Message.Split('\n')[0];
        }
    }
}

/// <summary>A test that needs the NVIDIA driver (NVML); skipped with the reason elsewhere.</summary>
public sealed class NvmlFactAttribute : FactAttribute
{
    public NvmlFactAttribute()
    {
        if (!System.Runtime.InteropServices.NativeLibrary.TryLoad("libnvidia-ml.so.1", out var handle))
            Skip = "NVML not exercised: libnvidia-ml.so.1 (the NVIDIA driver) is not installed on this machine";
        else
            System.Runtime.InteropServices.NativeLibrary.Free(handle);
    }
}
