using System.Globalization;
using System.Net;
using System.Text;
using ScottPlot;

namespace TorchTrials.Runner.Report;

/// <summary>One picture of the report: its file name in the report folder, its heading, and how it is drawn (null: it does not apply).</summary>
public sealed record ReportPicture(string FileName, string Title, Func<SweepData, Plot?> Draw);

/// <summary>What <see cref="SweepReport.Write(string)"/> wrote: the folder, its index.html and the pictures in report order.</summary>
public sealed record ReportFiles(string Folder, string Index, IReadOnlyList<string> Pictures);

/// <summary>
/// The report of a sweep (issue 13, <c>torchtrials report DIR</c>): every picture that applies as a PNG and an
/// <c>index.html</c> with the sweep's summary (best trial, counts by status, the top trials) and each picture under its
/// heading, written into <c>DIR/report/</c> from the experiment's store alone (read-only, so a running sweep goes on).
/// </summary>
public static class SweepReport
{
    public const string FolderName = "report";

    /// <summary>How many of the best trials the summary lists.</summary>
    public const int TopTrials = 10;

    /// <summary>
    /// The pictures in report order. A new picture is one line here: <c>new("name.png", "Heading", Plot.Draw)</c>,
    /// whose Draw returns null when the picture does not apply to the sweep (it is then skipped).
    /// </summary>
    public static IReadOnlyList<ReportPicture> Pictures(SweepData data)
    {
        var pictures = new List<ReportPicture>
        {
            new("history.png", "Optimisation history by trial", HistoryPlot.Draw),
            new("history_time.png", "Optimisation history over wall time", HistoryPlot.DrawOverTime),
            new("learning_curves.png", "Learning curves and scheduler decisions", LearningCurvesPlot.Draw),
            new("parallel_coordinates.png", "Parallel coordinates", ParallelCoordinatesPlot.Draw),
        };
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var domain in data.Domains)
        {
            var file = UniqueName($"slice_{SafeName(domain.Name)}", used) + ".png";
            pictures.Add(new(file, $"Slice: {domain.Name}", d => SlicePlot.Draw(d, domain)));
        }
        pictures.Add(new("importance.png", "Parameter importance", ImportancePlot.Draw));
        pictures.Add(new("timeline.png", "Timeline of trials per slot", TimelinePlot.Draw));
        pictures.Add(new("lineage.png", "Lineage: who exploited whom, when", LineagePlot.Draw));
        foreach (var param in SchedulePlot.ChangedParams(data))
        {
            var file = UniqueName($"schedule_{SafeName(param)}", used) + ".png";
            pictures.Add(new(file, $"Schedule: {param}", d => SchedulePlot.Draw(d, param)));
        }
        return pictures;
    }

    /// <summary>Reads the sweep in <paramref name="experimentDir"/> and writes its report into <c>experimentDir/report/</c>.</summary>
    public static ReportFiles Write(string experimentDir) => Write(SweepData.Load(experimentDir), Path.Combine(experimentDir, FolderName));

    /// <summary>
    /// Writes the report of <paramref name="data"/> into <paramref name="folder"/>: each picture that applies (PNGs of an
    /// earlier report that no longer apply are removed) and index.html.
    /// </summary>
    public static ReportFiles Write(SweepData data, string folder)
    {
        Directory.CreateDirectory(folder);
        var written = new List<(string File, string Title)>();
        foreach (var picture in Pictures(data))
        {
            var plot = picture.Draw(data);
            if (plot is null) continue;
            File.WriteAllBytes(Path.Combine(folder, picture.FileName), ReportStyle.Png(plot));
            written.Add((picture.FileName, picture.Title));
        }
        var keep = written.Select(w => w.File).ToHashSet(StringComparer.Ordinal);
        foreach (var old in Directory.EnumerateFiles(folder, "*.png"))
            if (!keep.Contains(Path.GetFileName(old))) File.Delete(old);
        var index = Path.Combine(folder, "index.html");
        File.WriteAllText(index, Html(data, written));
        return new ReportFiles(Path.GetFullPath(folder), Path.GetFullPath(index), written.Select(w => Path.GetFullPath(Path.Combine(folder, w.File))).ToList());
    }

    /// <summary>A file-name-safe form of a hyperparameter name.</summary>
    internal static string SafeName(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (var c in name) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_');
        return sb.Length == 0 ? "param" : sb.ToString();
    }

    private static string UniqueName(string name, HashSet<string> used)
    {
        var candidate = name;
        for (int i = 2; !used.Add(candidate); i++) candidate = $"{name}_{i}";
        return candidate;
    }

    private static string H(object? text) => WebUtility.HtmlEncode(text switch
    {
        null => "",
        double d => ReportStyle.Format(d),
        _ => Convert.ToString(text, CultureInfo.InvariantCulture) ?? "",
    });

    /// <summary>The summary as the CLI's status shows it: counts by status, the best trial, the top trials; then the pictures.</summary>
    private static string Html(SweepData data, List<(string File, string Title)> pictures)
    {
        var name = Path.GetFileName(data.Directory.TrimEnd(Path.DirectorySeparatorChar));
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(H(name)).Append(" - TorchTrials report</title>\n")
          .Append("<style>body{font-family:'DejaVu Sans',sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}")
          .Append("td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd}</style></head><body>\n");
        sb.Append("<h1>").Append(H(name)).Append("</h1>\n<p>").Append(H(data.Directory)).Append("</p>\n");

        var counts = data.Trials.GroupBy(t => t.StoppedBy is not null ? $"stopped by {ReportStyle.ShortSource(t.StoppedBy)}" : t.Status.ToString().ToLowerInvariant())
            .Select(g => $"{g.Count()} {g.Key}");
        sb.Append("<p><b>").Append(data.Trials.Count).Append(" trials</b>: ").Append(H(string.Join(", ", counts))).Append("</p>\n");
        if (data.Metric is not null)
            sb.Append("<p>Metric: <b>").Append(H(data.Metric)).Append("</b> (").Append(data.Mode == MetricMode.Min ? "min" : "max").Append(")</p>\n");

        var ranked = data.Trials.Where(t => t.Status != TrialStatus.Error)
            .Select(t => (Trial: t, Value: ReportStyle.FinalMetric(data, t))).Where(x => x.Value is not null)
            .OrderBy(x => data.Mode == MetricMode.Min ? x.Value!.Value : -x.Value!.Value).Take(TopTrials).ToList();
        if (ranked.Count > 0)
        {
            var best = ranked[0];
            sb.Append("<p>Best trial: <b>").Append(H(best.Trial.Id)).Append("</b> with ").Append(H(data.Metric)).Append(" = <b>").Append(H(best.Value)).Append("</b> (")
              .Append(H(string.Join(", ", best.Trial.Params.Select(p => $"{p.Key}={Value(p.Value)}")))).Append(")</p>\n");
            var keys = data.Domains.Select(d => d.Name).Where(k => ranked.Any(r => r.Trial.Params.ContainsKey(k))).ToList();
            sb.Append("<h2>Top trials</h2>\n<table><tr><th>#</th><th>trial</th><th>status</th><th>").Append(H(data.Metric)).Append("</th><th>iterations</th>");
            foreach (var k in keys) sb.Append("<th>").Append(H(k)).Append("</th>");
            sb.Append("</tr>\n");
            int rank = 1;
            foreach (var (trial, value) in ranked)
            {
                sb.Append("<tr><td>").Append(rank++).Append("</td><td>").Append(H(trial.Id)).Append("</td><td>")
                  .Append(H(trial.StoppedBy is not null ? $"stopped by {ReportStyle.ShortSource(trial.StoppedBy)}" : trial.Status.ToString().ToLowerInvariant()))
                  .Append("</td><td>").Append(H(value)).Append("</td><td>").Append(trial.Results.Count == 0 ? 0 : trial.Results[^1].TrainingIteration).Append("</td>");
                foreach (var k in keys) sb.Append("<td>").Append(H(trial.Params.TryGetValue(k, out var v) ? Value(v) : "")).Append("</td>");
                sb.Append("</tr>\n");
            }
            sb.Append("</table>\n");
        }
        foreach (var (file, title) in pictures)
            sb.Append("<h2>").Append(H(title)).Append("</h2>\n<img src=\"").Append(H(file)).Append("\" alt=\"").Append(H(title)).Append("\" width=\"")
              .Append(ReportStyle.Width).Append("\" height=\"").Append(ReportStyle.Height).Append("\">\n");
        sb.Append("</body></html>\n");
        return sb.ToString();
    }

    private static string Value(object? v) => v is double d ? ReportStyle.Format(d) : Trainables.TrialConfig.Format(v);
}
