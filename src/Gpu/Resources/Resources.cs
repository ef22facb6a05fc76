using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TorchTrials.Gpu;

/// <summary>
/// What a trial asks for: CPUs, GPUs (fractional), host memory, GPU memory, custom resources, and the
/// extra_* amounts reserved for helpers the trainable starts (Ray's Resources). CPU, GPU and custom
/// amounts are fixed point (<see cref="ResourceAmount"/>); memory is whole bytes. Immutable.
/// </summary>
[JsonConverter(typeof(ResourcesJsonConverter))]
public sealed class Resources : IEquatable<Resources>
{
    private static readonly ImmutableSortedDictionary<string, ResourceAmount> NoCustom = ImmutableSortedDictionary<string, ResourceAmount>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>Validates every amount and names the field when one is negative, NaN or infinite.</summary>
    public Resources(
        double cpu = 1,
        double gpu = 0,
        long memory = 0,
        long gpuMemory = 0,
        IReadOnlyDictionary<string, double>? custom = null,
        double extraCpu = 0,
        double extraGpu = 0,
        long extraMemory = 0,
        IReadOnlyDictionary<string, double>? extraCustom = null)
        : this(
            ResourceAmount.From(cpu, "cpu"),
            ResourceAmount.From(gpu, "gpu"),
            CheckBytes(memory, "memory"),
            CheckBytes(gpuMemory, "gpu_memory"),
            ToCustom(custom, ""),
            ResourceAmount.From(extraCpu, "extra_cpu"),
            ResourceAmount.From(extraGpu, "extra_gpu"),
            CheckBytes(extraMemory, "extra_memory"),
            ToCustom(extraCustom, "extra_"))
    {
    }

    private Resources(
        ResourceAmount cpu, ResourceAmount gpu, long memory, long gpuMemory,
        ImmutableSortedDictionary<string, ResourceAmount> custom,
        ResourceAmount extraCpu, ResourceAmount extraGpu, long extraMemory,
        ImmutableSortedDictionary<string, ResourceAmount> extraCustom)
    {
        Cpu = cpu;
        Gpu = gpu;
        Memory = memory;
        GpuMemory = gpuMemory;
        Custom = custom;
        ExtraCpu = extraCpu;
        ExtraGpu = extraGpu;
        ExtraMemory = extraMemory;
        ExtraCustom = extraCustom;
    }

    /// <summary>Nothing at all; the identity of <see cref="Add"/>.</summary>
    public static Resources None { get; } = new(0, 0);

    public ResourceAmount Cpu { get; }

    public ResourceAmount Gpu { get; }

    /// <summary>Host memory in bytes.</summary>
    public long Memory { get; }

    /// <summary>GPU memory in bytes; 0 means "the GPU fraction's share of the device".</summary>
    public long GpuMemory { get; }

    public ImmutableSortedDictionary<string, ResourceAmount> Custom { get; }

    public ResourceAmount ExtraCpu { get; }

    public ResourceAmount ExtraGpu { get; }

    public long ExtraMemory { get; }

    public ImmutableSortedDictionary<string, ResourceAmount> ExtraCustom { get; }

    public ResourceAmount CpuTotal => Cpu + ExtraCpu;

    public ResourceAmount GpuTotal => Gpu + ExtraGpu;

    public long MemoryTotal => Memory + ExtraMemory;

    public IEnumerable<string> CustomNames => Custom.Keys.Union(ExtraCustom.Keys, StringComparer.Ordinal);

    public ResourceAmount CustomTotal(string name) =>
        Custom.GetValueOrDefault(name) + ExtraCustom.GetValueOrDefault(name);

    /// <summary>True when no amount is below zero (differences may be negative; requests never are).</summary>
    public bool IsNonNegative =>
        Cpu.Units >= 0 && Gpu.Units >= 0 && Memory >= 0 && GpuMemory >= 0 &&
        ExtraCpu.Units >= 0 && ExtraGpu.Units >= 0 && ExtraMemory >= 0 &&
        Custom.Values.All(v => v.Units >= 0) && ExtraCustom.Values.All(v => v.Units >= 0);

    public static Resources Add(Resources a, Resources b) => Combine(a, b, +1);

    /// <summary>Exact difference, field by field; the result may be negative (see <see cref="IsNonNegative"/>).</summary>
    public static Resources Subtract(Resources a, Resources b) => Combine(a, b, -1);

    public Resources WithCpu(double cpu) => new(ResourceAmount.From(cpu, "cpu"), Gpu, Memory, GpuMemory, Custom, ExtraCpu, ExtraGpu, ExtraMemory, ExtraCustom);

    public Resources WithGpu(double gpu) => new(Cpu, ResourceAmount.From(gpu, "gpu"), Memory, GpuMemory, Custom, ExtraCpu, ExtraGpu, ExtraMemory, ExtraCustom);

    private static Resources Combine(Resources a, Resources b, int sign)
    {
        ResourceAmount Op(ResourceAmount x, ResourceAmount y) => sign > 0 ? x + y : x - y;
        ImmutableSortedDictionary<string, ResourceAmount> OpMap(ImmutableSortedDictionary<string, ResourceAmount> x, ImmutableSortedDictionary<string, ResourceAmount> y)
        {
            var builder = x.ToBuilder();
            foreach (var (key, value) in y)
                builder[key] = Op(x.GetValueOrDefault(key), value);
            return builder.ToImmutable();
        }

        return new Resources(
            Op(a.Cpu, b.Cpu), Op(a.Gpu, b.Gpu), a.Memory + sign * b.Memory, a.GpuMemory + sign * b.GpuMemory,
            OpMap(a.Custom, b.Custom),
            Op(a.ExtraCpu, b.ExtraCpu), Op(a.ExtraGpu, b.ExtraGpu), a.ExtraMemory + sign * b.ExtraMemory,
            OpMap(a.ExtraCustom, b.ExtraCustom));
    }

    private static long CheckBytes(long value, string field) =>
        value >= 0 ? value : throw new ArgumentException($"resource '{field}' must not be negative, got {value}", field);

    private static ImmutableSortedDictionary<string, ResourceAmount> ToCustom(IReadOnlyDictionary<string, double>? values, string prefix)
    {
        if (values is null || values.Count == 0) return NoCustom;
        var builder = NoCustom.ToBuilder();
        foreach (var (name, value) in values)
        {
            if (string.IsNullOrWhiteSpace(name))
                throw new ArgumentException($"resource '{prefix}custom_resources' has an empty name", prefix + "custom_resources");
            builder[name] = ResourceAmount.From(value, $"{prefix}custom_resources.{name}");
        }
        return builder.ToImmutable();
    }

    public bool Equals(Resources? other) =>
        other is not null &&
        Cpu == other.Cpu && Gpu == other.Gpu && Memory == other.Memory && GpuMemory == other.GpuMemory &&
        ExtraCpu == other.ExtraCpu && ExtraGpu == other.ExtraGpu && ExtraMemory == other.ExtraMemory &&
        SameMap(Custom, other.Custom) && SameMap(ExtraCustom, other.ExtraCustom);

    private static bool SameMap(ImmutableSortedDictionary<string, ResourceAmount> a, ImmutableSortedDictionary<string, ResourceAmount> b) =>
        a.Where(kv => !kv.Value.IsZero).SequenceEqual(b.Where(kv => !kv.Value.IsZero));

    public override bool Equals(object? obj) => Equals(obj as Resources);

    public override int GetHashCode() => HashCode.Combine(Cpu, Gpu, Memory, GpuMemory, ExtraCpu, ExtraGpu, ExtraMemory);

    public static bool operator ==(Resources? a, Resources? b) => a?.Equals(b) ?? b is null;

    public static bool operator !=(Resources? a, Resources? b) => !(a == b);

    /// <summary>Compact human form, e.g. "1 CPU, 0.5 GPU, a: 2".</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{CpuTotal} CPU");
        if (!GpuTotal.IsZero) sb.Append(CultureInfo.InvariantCulture, $", {GpuTotal} GPU");
        if (GpuMemory > 0) sb.Append(CultureInfo.InvariantCulture, $", {GpuMemory / (double)(1L << 30):0.##} GiB GPU memory");
        if (MemoryTotal > 0) sb.Append(CultureInfo.InvariantCulture, $", {MemoryTotal / (double)(1L << 30):0.##} GiB memory");
        foreach (var name in CustomNames)
            sb.Append(CultureInfo.InvariantCulture, $", {name}: {CustomTotal(name)}");
        return sb.ToString();
    }

    /// <summary>Writes this request as a JSON object.</summary>
    public void WriteTo(Utf8JsonWriter writer) => new ResourcesJsonConverter().Write(writer, this, JsonSerializerOptions.Default);

    /// <summary>JSON without reflection (works in trimmed and AOT-compiled apps).</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
            new ResourcesJsonConverter().Write(writer, this, JsonSerializerOptions.Default);
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static Resources FromJson(string json)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json));
        if (!reader.Read()) throw new JsonException("resources JSON is empty");
        return new ResourcesJsonConverter().Read(ref reader, typeof(Resources), JsonSerializerOptions.Default);
    }

    internal sealed class ResourcesJsonConverter : JsonConverter<Resources>
    {
        public override Resources Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new JsonException("resources must be a JSON object");
            var known = new HashSet<string> { "cpu", "gpu", "memory", "gpu_memory", "extra_cpu", "extra_gpu", "extra_memory", "custom_resources", "extra_custom_resources" };
            foreach (var p in root.EnumerateObject())
                if (!known.Contains(p.Name)) throw new JsonException($"unknown resource field '{p.Name}'");

            double Num(string name) => root.TryGetProperty(name, out var v) ? v.GetDouble() : 0;
            long Bytes(string name) => root.TryGetProperty(name, out var v) ? v.GetInt64() : 0;
            Dictionary<string, double>? Map(string name) =>
                root.TryGetProperty(name, out var v) ? v.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble()) : null;

            return new Resources(Num("cpu"), Num("gpu"), Bytes("memory"), Bytes("gpu_memory"), Map("custom_resources"),
                Num("extra_cpu"), Num("extra_gpu"), Bytes("extra_memory"), Map("extra_custom_resources"));
        }

        public override void Write(Utf8JsonWriter writer, Resources value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            writer.WriteNumber("cpu", value.Cpu.ToDouble());
            writer.WriteNumber("gpu", value.Gpu.ToDouble());
            writer.WriteNumber("memory", value.Memory);
            writer.WriteNumber("gpu_memory", value.GpuMemory);
            writer.WriteNumber("extra_cpu", value.ExtraCpu.ToDouble());
            writer.WriteNumber("extra_gpu", value.ExtraGpu.ToDouble());
            writer.WriteNumber("extra_memory", value.ExtraMemory);
            WriteMap(writer, "custom_resources", value.Custom);
            WriteMap(writer, "extra_custom_resources", value.ExtraCustom);
            writer.WriteEndObject();
        }

        private static void WriteMap(Utf8JsonWriter writer, string name, ImmutableSortedDictionary<string, ResourceAmount> map)
        {
            writer.WriteStartObject(name);
            foreach (var (key, amount) in map) writer.WriteNumber(key, amount.ToDouble());
            writer.WriteEndObject();
        }
    }
}
