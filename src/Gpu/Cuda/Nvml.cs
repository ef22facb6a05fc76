using System.Runtime.InteropServices;

namespace TorchTrials.Gpu.Cuda;

/// <summary>
/// GPU inventory through NVML (libnvidia-ml.so.1, installed with every NVIDIA driver), so GPUs are
/// listed even where no CUDA LibTorch is present. Entry points are resolved at run time; on a machine
/// without the driver every call reports no devices.
/// </summary>
internal static unsafe class Nvml
{
    private const int Success = 0;

    [StructLayout(LayoutKind.Sequential)]
    private struct NvmlMemory
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    /// <summary>The GPUs NVML reports, or an empty list when NVML is absent or fails.</summary>
    public static IReadOnlyList<GpuDevice> TryListDevices()
    {
        if (!NativeLibrary.TryLoad("libnvidia-ml.so.1", out var lib))
            return Array.Empty<GpuDevice>();
        try
        {
            if (!TryGet(lib, "nvmlInit_v2", out var init) || !TryGet(lib, "nvmlShutdown", out var shutdown) ||
                !TryGet(lib, "nvmlDeviceGetCount_v2", out var count) || !TryGet(lib, "nvmlDeviceGetHandleByIndex_v2", out var byIndex) ||
                !TryGet(lib, "nvmlDeviceGetName", out var getName) || !TryGet(lib, "nvmlDeviceGetMemoryInfo", out var getMemory))
                return Array.Empty<GpuDevice>();

            if (((delegate* unmanaged<int>)init)() != Success)
                return Array.Empty<GpuDevice>();
            try
            {
                uint n = 0;
                if (((delegate* unmanaged<uint*, int>)count)(&n) != Success) return Array.Empty<GpuDevice>();
                var devices = new List<GpuDevice>();
                byte* name = stackalloc byte[96];
                for (uint i = 0; i < n; i++)
                {
                    IntPtr handle;
                    if (((delegate* unmanaged<uint, IntPtr*, int>)byIndex)(i, &handle) != Success) continue;
                    string text = ((delegate* unmanaged<IntPtr, byte*, uint, int>)getName)(handle, name, 96) == Success
                        ? Marshal.PtrToStringUTF8((IntPtr)name) ?? "NVIDIA GPU"
                        : "NVIDIA GPU";
                    NvmlMemory memory;
                    long total = ((delegate* unmanaged<IntPtr, NvmlMemory*, int>)getMemory)(handle, &memory) == Success ? (long)memory.Total : 0;
                    devices.Add(new GpuDevice((int)i, text, total, GpuSource.Nvml));
                }
                return devices;
            }
            finally
            {
                ((delegate* unmanaged<int>)shutdown)();
            }
        }
        finally
        {
            NativeLibrary.Free(lib);
        }
    }

    private static bool TryGet(IntPtr lib, string name, out IntPtr address) => NativeLibrary.TryGetExport(lib, name, out address);
}
