using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Checkpoints;

/// <summary>
/// Reads and writes the safetensors format (an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw little-endian data), which PyTorch reads with
/// <c>safetensors.torch.load_file</c>.
/// </summary>
public static class SafeTensors
{
    private static readonly Dictionary<ScalarType, string> DtypeNames = new()
    {
        [ScalarType.Float64] = "F64", [ScalarType.Float32] = "F32", [ScalarType.Float16] = "F16", [ScalarType.BFloat16] = "BF16",
        [ScalarType.Int64] = "I64", [ScalarType.Int32] = "I32", [ScalarType.Int16] = "I16", [ScalarType.Int8] = "I8",
        [ScalarType.Byte] = "U8", [ScalarType.Bool] = "BOOL",
    };

    private static readonly Dictionary<string, ScalarType> DtypesByName = DtypeNames.ToDictionary(kv => kv.Value, kv => kv.Key);

    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var hostTensors = new List<(string Name, Tensor Tensor)>();
        // Spills and saves run outside any step: the scope keeps detach/to temporaries alive until their native calls return.
        using var scope = NewDisposeScope();
        try
        {
            var header = new JsonObject();
            if (metadata is { Count: > 0 })
                header["__metadata__"] = new JsonObject(metadata.Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, kv.Value)));
            long offset = 0;
            foreach (var (name, tensor) in tensors)
            {
                if (!DtypeNames.TryGetValue(tensor.dtype, out var dtype))
                    throw new NotSupportedException($"tensor '{name}' has dtype {tensor.dtype}, which safetensors does not store");
                var host = tensor.detach().to(CPU).contiguous();
                hostTensors.Add((name, host));
                long size = host.numel() * host.element_size();
                header[name] = new JsonObject
                {
                    ["dtype"] = dtype,
                    ["shape"] = new JsonArray(host.shape.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
                    ["data_offsets"] = new JsonArray(offset, offset + size),
                };
                offset += size;
            }

            var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
            int padded = (headerBytes.Length + 7) / 8 * 8;
            using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
            stream.Write(length);
            stream.Write(headerBytes);
            for (int i = headerBytes.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach (var (_, host) in hostTensors)
                if (host.numel() > 0) stream.Write(host.bytes);
            stream.Flush(flushToDisk: true);
        }
        finally
        {
            foreach (var (_, host) in hostTensors) host.Dispose();
        }
    }

    /// <summary>Reads every tensor onto <paramref name="device"/>, in file order, plus the string metadata.</summary>
    public static (List<KeyValuePair<string, Tensor>> Tensors, Dictionary<string, string> Metadata) Read(string path, Device? device = null)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var (header, dataStart) = ReadHeader(stream, path);

        var metadata = new Dictionary<string, string>();
        var entries = new List<(string Name, ScalarType Dtype, long[] Shape, long Begin, long End)>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                foreach (var (k, v) in node!.AsObject()) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            var o = node!.AsObject();
            var dtypeName = o["dtype"]!.GetValue<string>();
            if (!DtypesByName.TryGetValue(dtypeName, out var dtype))
                throw new InvalidDataException($"{path}: tensor '{name}' has unsupported dtype {dtypeName}");
            var offsets = o["data_offsets"]!.AsArray();
            entries.Add((name, dtype, o["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray(),
                offsets[0]!.GetValue<long>(), offsets[1]!.GetValue<long>()));
        }

        var result = new List<KeyValuePair<string, Tensor>>();
        try
        {
            foreach (var (name, dtype, shape, begin, end) in entries.OrderBy(e => e.Begin))
            {
                var host = empty(shape, dtype);
                long size = host.numel() * host.element_size();
                if (end - begin != size)
                    throw new InvalidDataException($"{path}: tensor '{name}' spans {end - begin} bytes, its shape needs {size}");
                stream.Position = dataStart + begin;
                if (size > 0) stream.ReadExactly(host.bytes);
                var placed = device is null || device.type == DeviceType.CPU ? host : host.to(device);
                if (!ReferenceEquals(placed, host)) host.Dispose();
                result.Add(new(name, placed.DetachFromDisposeScope()));
            }
        }
        catch
        {
            foreach (var (_, t) in result) t.Dispose();
            throw;
        }
        var byName = entries.Select(e => e.Name).ToList();
        result.Sort((a, b) => byName.IndexOf(a.Key).CompareTo(byName.IndexOf(b.Key)));
        return (result, metadata);
    }

    /// <summary>Throws <see cref="InvalidDataException"/> naming the file unless its header parses and its data is all there.</summary>
    public static void Verify(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 4096);
        var (header, dataStart) = ReadHeader(stream, path);
        long end = 0;
        foreach (var (name, node) in header)
            if (name != "__metadata__" && node?["data_offsets"] is JsonArray offsets && offsets.Count == 2)
                end = Math.Max(end, offsets[1]!.GetValue<long>());
        long data = stream.Length - dataStart;
        if (data != end) throw new InvalidDataException($"{path} holds {data} bytes of tensor data, its header needs {end}");
    }

    /// <summary>The JSON header of a safetensors file and where its tensor data starts; a damaged header is an <see cref="InvalidDataException"/> naming the file.</summary>
    private static (JsonObject Header, long DataStart) ReadHeader(FileStream stream, string path)
    {
        if (stream.Length < 8) throw new InvalidDataException($"{path} is truncated ({stream.Length} bytes)");
        Span<byte> length = stackalloc byte[8];
        stream.ReadExactly(length);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(length);
        if (headerLength > 100_000_000 || (long)headerLength > stream.Length - 8)
            throw new InvalidDataException($"{path} is not a safetensors file (header length {headerLength}, file {stream.Length} bytes)");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        try
        {
            var header = JsonNode.Parse(headerBytes) as JsonObject ?? throw new InvalidDataException($"{path} has no JSON header");
            return (header, 8 + (long)headerLength);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} has a damaged header: {e.Message}", e);
        }
    }

    internal static string MetadataJson(JsonObject metadata) => metadata.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
