using System.Buffers.Binary;
using System.IO.Compression;

namespace TorchTrials.Trainables.Data;

/// <summary>An IDX array of unsigned bytes: its dimensions (outermost first) and its values, row-major.</summary>
public sealed record IdxArray(int[] Dimensions, byte[] Values)
{
    /// <summary>The outermost dimension: images or labels.</summary>
    public int Count => Dimensions[0];

    /// <summary>Values per item: the product of every dimension but the first (1 for labels).</summary>
    public int ItemSize => Dimensions.Skip(1).Aggregate(1, (a, b) => a * b);
}

/// <summary>
/// Reads IDX files, the format of MNIST and Fashion-MNIST (LeCun et al., "THE MNIST DATABASE", file formats section):
/// two zero bytes, a type byte (0x08 = unsigned byte, the only type those data sets use and the only one read here),
/// a byte giving the number of dimensions, each dimension as a big-endian 32-bit integer, then the values.
/// A file starting with the gzip magic (1f 8b) is decompressed on the fly, so the .gz files are read as shipped.
/// </summary>
public static class IdxFile
{
    private const byte UnsignedByte = 0x08;

    public static IdxArray Read(string path)
    {
        using var file = File.OpenRead(path);
        try
        {
            return Read(file);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Reads an IDX array from a seekable stream (gzipped or not); the stream is left open.</summary>
    public static IdxArray Read(Stream stream)
    {
        if (!stream.CanSeek) throw new ArgumentException("an IDX stream must be seekable (to tell gzip from raw IDX)", nameof(stream));
        long start = stream.Position;
        bool gzip = stream.ReadByte() == 0x1f && stream.ReadByte() == 0x8b;
        stream.Position = start;
        if (!gzip) return ReadIdx(new BufferedStream(stream, 1 << 16));
        using var body = new GZipStream(stream, CompressionMode.Decompress, leaveOpen: true);
        return ReadIdx(body);
    }

    private static IdxArray ReadIdx(Stream body)
    {
        var header = new byte[4];
        ReadExactly(body, header, "the header");
        if (header[0] != 0 || header[1] != 0) throw new InvalidDataException("not an IDX file (its first two bytes are not zero)");
        if (header[2] != UnsignedByte) throw new InvalidDataException($"IDX value type 0x{header[2]:x2} is not supported (only 0x08, unsigned byte)");
        int rank = header[3];
        if (rank < 1) throw new InvalidDataException("an IDX file needs at least one dimension");
        var dims = new int[rank];
        var word = new byte[4];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            ReadExactly(body, word, $"dimension {i}");
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(word);
            if (dims[i] < 0) throw new InvalidDataException($"dimension {i} is negative ({dims[i]})");
            total *= dims[i];
        }
        if (total > Array.MaxLength) throw new InvalidDataException($"{total} values are more than one array holds");
        var values = new byte[total];
        ReadExactly(body, values, $"{total} values ({string.Join("x", dims)})");
        if (body.ReadByte() != -1) throw new InvalidDataException($"more data follows the {total} values ({string.Join("x", dims)})");
        return new IdxArray(dims, values);
    }

    private static void ReadExactly(Stream stream, byte[] buffer, string what)
    {
        int read = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (read < buffer.Length) throw new InvalidDataException($"the file ends inside {what}: {read} of {buffer.Length} bytes");
    }
}
