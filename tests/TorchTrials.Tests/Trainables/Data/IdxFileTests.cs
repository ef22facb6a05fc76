using System.IO.Compression;
using TorchTrials.Trainables.Data;

namespace TorchTrials.Tests.Trainables.Data;

/// <summary>Issue 11, item 6: our IDX reader on hand-made files, raw and gzipped, and the ways a file can be broken.</summary>
public class IdxFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-idx", Guid.NewGuid().ToString("N")[..12]);

    public IdxFileTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>The bytes of an IDX file: 00 00, the type, the rank, big-endian dimensions, then the values.</summary>
    internal static byte[] Idx(int[] dims, byte[] values, byte type = 0x08)
    {
        var bytes = new List<byte> { 0, 0, type, (byte)dims.Length };
        foreach (var d in dims) bytes.AddRange(new[] { (byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d });
        bytes.AddRange(values);
        return bytes.ToArray();
    }

    internal static void WriteGzip(string path, byte[] bytes)
    {
        using var file = File.Create(path);
        using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        gzip.Write(bytes);
    }

    [Fact]
    public void A_raw_and_a_gzipped_file_read_as_the_same_array()
    {
        // Two 2x3 "images": dimensions 2, 2, 3 and the values 0..11 row-major.
        var values = Enumerable.Range(0, 12).Select(i => (byte)(i * 20)).ToArray();
        var bytes = Idx(new[] { 2, 2, 3 }, values);
        File.WriteAllBytes(Path.Combine(_dir, "raw-idx3-ubyte"), bytes);
        WriteGzip(Path.Combine(_dir, "zipped-idx3-ubyte.gz"), bytes);

        var raw = IdxFile.Read(Path.Combine(_dir, "raw-idx3-ubyte"));
        var zipped = IdxFile.Read(Path.Combine(_dir, "zipped-idx3-ubyte.gz"));

        Assert.Equal(new[] { 2, 2, 3 }, raw.Dimensions);
        Assert.Equal(2, raw.Count);
        Assert.Equal(6, raw.ItemSize);
        Assert.Equal(values, raw.Values);
        Assert.Equal(raw.Dimensions, zipped.Dimensions);
        Assert.Equal(raw.Values, zipped.Values);
    }

    [Fact]
    public void A_label_file_has_one_dimension_and_item_size_1()
    {
        var labels = IdxFile.Read(new MemoryStream(Idx(new[] { 4 }, new byte[] { 9, 0, 3, 7 })));
        Assert.Equal(4, labels.Count);
        Assert.Equal(1, labels.ItemSize);
        Assert.Equal(new byte[] { 9, 0, 3, 7 }, labels.Values);
    }

    [Theory]
    [InlineData("truncated", "the file ends inside 12 values (2x2x3): 11 of 12 bytes")]
    [InlineData("trailing", "more data follows the 12 values (2x2x3)")]
    [InlineData("float", "IDX value type 0x0d is not supported (only 0x08, unsigned byte)")]
    [InlineData("magic", "not an IDX file (its first two bytes are not zero)")]
    [InlineData("header", "the file ends inside dimension 1: 2 of 4 bytes")]
    public void A_broken_file_is_an_error_naming_the_file_and_the_fault(string fault, string expected)
    {
        var good = Idx(new[] { 2, 2, 3 }, new byte[12]);
        var bytes = fault switch
        {
            "truncated" => good[..^1],
            "trailing" => good.Append((byte)1).ToArray(),
            "float" => Idx(new[] { 2, 2, 3 }, new byte[12], type: 0x0d),
            "magic" => good.Select((b, i) => i == 1 ? (byte)8 : b).ToArray(),
            _ => good[..10],
        };
        var path = Path.Combine(_dir, fault + ".gz");
        WriteGzip(path, bytes);

        var error = Assert.Throws<InvalidDataException>(() => IdxFile.Read(path));
        Assert.Equal($"{path}: {expected}", error.Message);
    }
}
