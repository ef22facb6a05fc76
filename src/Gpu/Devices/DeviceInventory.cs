using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using TorchTrials.Gpu.Cuda;
using TorchTrials.Gpu.Native;

namespace TorchTrials.Gpu;

/// <summary>Where a GPU's description came from.</summary>
public enum GpuSource
{
    /// <summary>Simulated for tests and dry runs; tensors of its slots live on the CPU.</summary>
    Simulated,

    /// <summary>Read through NVML; usable for tensors only when the CUDA backend is also loaded.</summary>
    Nvml,

    /// <summary>Seen by TorchSharp's CUDA backend: tensors of its slots live on this device.</summary>
    Cuda,
}

/// <summary>One GPU of the machine.</summary>
public sealed record GpuDevice(int Index, string Name, long TotalMemoryBytes, GpuSource Source)
{
    public double TotalMemoryGiB => TotalMemoryBytes / (double)(1L << 30);

    /// <summary>True when tensors can be placed on this device through TorchSharp.</summary>
    public bool IsUsableForTensors => Source == GpuSource.Cuda;
}

/// <summary>
/// What the machine offers: CPU cores, host memory, GPUs, and custom resources from configuration.
/// Build it with <see cref="Detect"/> on a real machine or <see cref="Simulated"/> / <see cref="Parse"/> for tests.
/// </summary>
public sealed record DeviceInventory
{
    public DeviceInventory(int cpuCores, long hostMemoryBytes, IReadOnlyList<GpuDevice> gpus, IReadOnlyDictionary<string, double>? custom = null)
    {
        if (cpuCores < 0) throw new ArgumentException($"inventory 'cpus' must not be negative, got {cpuCores}", nameof(cpuCores));
        CpuCores = cpuCores;
        HostMemoryBytes = hostMemoryBytes;
        Gpus = gpus.ToImmutableArray();
        Custom = (custom ?? new Dictionary<string, double>())
            .ToImmutableSortedDictionary(kv => kv.Key, kv => ResourceAmount.From(kv.Value, $"inventory.{kv.Key}"), StringComparer.Ordinal);
    }

    public int CpuCores { get; }

    public long HostMemoryBytes { get; }

    public ImmutableArray<GpuDevice> Gpus { get; }

    public ImmutableSortedDictionary<string, ResourceAmount> Custom { get; }

    public bool IsSimulated => Gpus.Any(g => g.Source == GpuSource.Simulated);

    /// <summary>
    /// The real machine: CPU cores always; GPUs from TorchSharp's CUDA backend when loaded, else from NVML
    /// (names and memory, but tensors stay on the CPU); plus custom resources from configuration.
    /// </summary>
    public static DeviceInventory Detect(IReadOnlyDictionary<string, double>? custom = null)
    {
        var gpus = new List<GpuDevice>();
        var nvml = Nvml.TryListDevices();
        var runtime = NativeRuntime.EnsureLoaded();
        if (runtime.CudaAvailable)
        {
            for (int i = 0; i < runtime.CudaDeviceCount; i++)
            {
                var fromNvml = i < nvml.Count ? nvml[i] : null;
                gpus.Add(new GpuDevice(i, fromNvml?.Name ?? $"CUDA device {i}", fromNvml?.TotalMemoryBytes ?? 0, GpuSource.Cuda));
            }
        }
        else
        {
            gpus.AddRange(nvml);
        }
        return new DeviceInventory(Environment.ProcessorCount, HostMemory(), gpus, custom);
    }

    /// <summary>A made-up machine, e.g. <c>Simulated(cpus: 4, gpus: 2, gpuMemoryGiB: 16)</c>.</summary>
    public static DeviceInventory Simulated(int cpus, int gpus = 0, double gpuMemoryGiB = 16, IReadOnlyDictionary<string, double>? custom = null, long hostMemoryBytes = 16L << 30)
    {
        var list = Enumerable.Range(0, gpus)
            .Select(i => new GpuDevice(i, "Simulated GPU", (long)(gpuMemoryGiB * (1L << 30)), GpuSource.Simulated))
            .ToList();
        return new DeviceInventory(cpus, hostMemoryBytes, list, custom);
    }

    /// <summary>
    /// Parses a simulated inventory such as <c>"cpus=4,gpus=2x16GiB,a=2"</c>: cpus, gpus (count, optionally
    /// "x" and memory per GPU in GiB) and any other key as a custom resource.
    /// </summary>
    public static DeviceInventory Parse(string text)
    {
        int cpus = Environment.ProcessorCount;
        int gpus = 0;
        double gib = 16;
        var custom = new Dictionary<string, double>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length != 2 || kv[0].Length == 0)
                throw new FormatException($"inventory entry '{part}' must look like name=value");
            switch (kv[0])
            {
                case "cpus" or "cpu":
                    cpus = int.TryParse(kv[1], NumberStyles.None, CultureInfo.InvariantCulture, out var c)
                        ? c : throw new FormatException($"inventory 'cpus' must be a whole number, got '{kv[1]}'");
                    break;
                case "gpus" or "gpu":
                    var g = kv[1].Split('x', 2);
                    if (!int.TryParse(g[0], NumberStyles.None, CultureInfo.InvariantCulture, out gpus))
                        throw new FormatException($"inventory 'gpus' must be a count like 2 or 2x16GiB, got '{kv[1]}'");
                    if (g.Length == 2 && !double.TryParse(g[1].Replace("GiB", "", StringComparison.OrdinalIgnoreCase), NumberStyles.Float, CultureInfo.InvariantCulture, out gib))
                        throw new FormatException($"inventory 'gpus' memory must be like 16GiB, got '{g[1]}'");
                    break;
                default:
                    custom[kv[0]] = double.TryParse(kv[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
                        ? v : throw new FormatException($"inventory resource '{kv[0]}' must be a number, got '{kv[1]}'");
                    break;
            }
        }
        return Simulated(cpus, gpus, gib, custom);
    }

    /// <summary>Everything this machine offers, as one resource bundle.</summary>
    public Resources Total =>
        new(cpu: CpuCores, gpu: Gpus.Length, memory: HostMemoryBytes, gpuMemory: Gpus.Sum(g => g.TotalMemoryBytes),
            custom: Custom.ToDictionary(kv => kv.Key, kv => kv.Value.ToDouble()));

    /// <summary>A multi-line human description, as `torchtrials devices` prints it.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"CPU: {CpuCores} cores, {HostMemoryBytes / (double)(1L << 30):0.0} GiB memory");
        if (Gpus.Length == 0)
            sb.AppendLine("GPU: none");
        foreach (var gpu in Gpus)
        {
            string use = gpu.Source switch
            {
                GpuSource.Cuda => "CUDA",
                GpuSource.Nvml => "NVML only: CUDA backend not loaded, trials run on CPU",
                _ => "simulated",
            };
            sb.AppendLine(CultureInfo.InvariantCulture, $"GPU {gpu.Index}: {gpu.Name}, {gpu.TotalMemoryGiB:0.0} GiB ({use})");
        }
        foreach (var (name, amount) in Custom)
            sb.AppendLine(CultureInfo.InvariantCulture, $"{name}: {amount}");
        return sb.ToString().TrimEnd();
    }

    private static long HostMemory()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    }
}
