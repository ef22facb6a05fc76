using ScottPlot;
using SkiaSharp;
using TorchTrials.Runner;
using TorchTrials.Runner.Report;

namespace TorchTrials.Tests.Runner.Report;

/// <summary>The importance and parallel-coordinates pictures render non-blank PNGs of the asked size, and decline when they do not apply.</summary>
public class ImportancePicturesTests
{
    private static readonly ParamDomain[] Domains =
    [
        new("lr", ParamKind.Float) { Low = 1e-4, High = 1e-1, Log = true },
        new("width", ParamKind.Integer) { Low = 16, High = 128 },
        new("optimizer", ParamKind.Categorical) { Categories = ["sgd", "adam"] },
    ];

    private static SweepData Sweep(int count) => ParameterImportanceTests.Sweep(count, 11,
        r => new() { ["lr"] = Math.Pow(10, -4 + 3 * r.NextDouble()), ["width"] = (long)r.Next(16, 129), ["optimizer"] = r.Next(2) == 0 ? "sgd" : "adam" },
        p => -Math.Log10((double)p["lr"]!) + ((string)p["optimizer"]! == "adam" ? 1 : 0) + 0.001 * (long)p["width"]!, Domains);

    private static void AssertPicture(Plot plot, int width, int height, string name)
    {
        var bytes = plot.GetImageBytes(width, height, ImageFormat.Png);
        // TT_PICTURES=DIR keeps the rendered pictures for a look.
        if (Environment.GetEnvironmentVariable("TT_PICTURES") is { Length: > 0 } dir) File.WriteAllBytes(Path.Combine(dir, name + ".png"), bytes);
        using var bitmap = SKBitmap.Decode(bytes);
        Assert.NotNull(bitmap);
        Assert.Equal(width, bitmap.Width);
        Assert.Equal(height, bitmap.Height);
        var colors = new HashSet<uint>();
        for (int y = 0; y < height; y += 4)
            for (int x = 0; x < width; x += 4) colors.Add((uint)bitmap.GetPixel(x, y));
        Assert.True(colors.Count > 20, $"only {colors.Count} colours: blank picture");
    }

    [Fact]
    public void ImportancePlotNamesTheMethodAndRenders()
    {
        var plot = ImportancePlot.Draw(Sweep(80));
        Assert.NotNull(plot);
        Assert.Contains(ParameterImportance.Method, plot.Axes.Title.Label.Text, StringComparison.Ordinal);
        AssertPicture(plot, 800, 500, "importance");
    }

    /// <summary>Its speed is the report benchmark's (`--only report`), not a timed test's: CI machines are shared.</summary>
    [Fact]
    public void ParallelCoordinatesRendersAThousandTrials()
    {
        var plot = ParallelCoordinatesPlot.Draw(Sweep(1000));
        Assert.NotNull(plot);
        AssertPicture(plot, 1200, 700, "parallel");
    }

    [Fact]
    public void PicturesDeclineWithoutScoredTrials()
    {
        var data = Sweep(10) with { Metric = "missing" };
        Assert.Null(ImportancePlot.Draw(data));
        Assert.Null(ParallelCoordinatesPlot.Draw(data));
        Assert.Null(ImportancePlot.Draw(new SweepData { Metric = "loss", Mode = MetricMode.Min }));
    }
}
