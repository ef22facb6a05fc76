using TorchTrials.Runner.Results;

namespace TorchTrials.Runner.Report;

/// <summary>
/// A rendered picture of a sweep as PNG bytes (from <see cref="SweepPlots"/>): <see cref="Save"/> writes it, and .NET
/// notebooks show it inline as an <c>&lt;img src="data:image/png;base64,..."&gt;</c> through the project's HTML formatters.
/// </summary>
[TypeFormatterSource(typeof(ResultFormatterSource))]
public sealed class PlotImage(byte[] png, int width, int height, string title)
{
    public byte[] Png { get; } = png;

    public int Width { get; } = width;

    public int Height { get; } = height;

    public string Title { get; } = title;

    /// <summary>Writes the PNG to <paramref name="path"/> (its folder is created) and returns the full path.</summary>
    public string Save(string path)
    {
        var full = Path.GetFullPath(path);
        if (Path.GetDirectoryName(full) is { Length: > 0 } folder) Directory.CreateDirectory(folder);
        File.WriteAllBytes(full, Png);
        return full;
    }

    /// <summary>The picture as an HTML image with the PNG inline.</summary>
    public string ToHtml() =>
        $"<img src=\"data:image/png;base64,{Convert.ToBase64String(Png)}\" width=\"{Width}\" height=\"{Height}\" alt=\"{System.Net.WebUtility.HtmlEncode(Title)}\">";

    public override string ToString() => $"PlotImage<{Title}: {Width}x{Height} PNG, {Png.Length} bytes>";
}
