using SkiaSharp;

namespace TorchTrials.Tests.Report;

/// <summary>What a rendered picture must be: a PNG that decodes, at the expected size, with a real drawing on it.</summary>
internal static class PictureChecks
{
    public static SKBitmap Decode(byte[] png) => SKBitmap.Decode(png) ?? throw new Xunit.Sdk.XunitException("the PNG does not decode");

    /// <summary>Decodes, checks the size, and checks it is not blank: many colours, and neither empty nor filled.</summary>
    public static void AssertPicture(byte[] png, int width, int height, string name)
    {
        using var bitmap = Decode(png);
        Assert.True(bitmap.Width == width && bitmap.Height == height, $"{name}: {bitmap.Width}x{bitmap.Height}, expected {width}x{height}");
        var (colours, inked) = Ink(bitmap, 0, bitmap.Height);
        Assert.True(colours >= 20, $"{name}: only {colours} distinct colours");
        Assert.True(inked is > 0.01 and < 0.5, $"{name}: {inked:P1} of the pixels are not white");
    }

    /// <summary>Distinct colours and the fraction of non-white pixels in rows [<paramref name="top"/>, <paramref name="bottom"/>).</summary>
    public static (int Colours, double Inked) Ink(SKBitmap bitmap, int top, int bottom)
    {
        var colours = new HashSet<uint>();
        long inked = 0;
        for (int y = top; y < bottom; y++)
        {
            for (int x = 0; x < bitmap.Width; x++)
            {
                var c = bitmap.GetPixel(x, y);
                colours.Add((uint)c);
                if (c.Red < 245 || c.Green < 245 || c.Blue < 245) inked++;
            }
        }
        return (colours.Count, inked / (double)((bottom - top) * bitmap.Width));
    }
}
