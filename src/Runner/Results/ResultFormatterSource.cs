using System.Net;
using TorchTrials.Runner.Report;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Results;

/// <summary>
/// .NET Interactive finds formatters by convention: an attribute named TypeFormatterSourceAttribute whose
/// FormatterSourceType has CreateTypeFormatters(), returning objects with MimeType and Format(object, TextWriter).
/// Declaring it here (as TorchSharp does for tensors) needs no dependency on the notebook packages.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
internal sealed class TypeFormatterSourceAttribute(Type formatterSourceType) : Attribute
{
    public Type FormatterSourceType { get; } = formatterSourceType;

    public string[] PreferredMimeTypes { get; set; } = { "text/html", "text/plain" };
}

internal sealed class ResultFormatterSource
{
    public IEnumerable<object> CreateTypeFormatters()
    {
        yield return new HtmlFormatter(typeof(ResultGrid));
        yield return new HtmlFormatter(typeof(TrialSummary));
        yield return new PlainTextFormatter(typeof(ResultGrid));
        yield return new PlainTextFormatter(typeof(TrialSummary));
        yield return new HtmlFormatter(typeof(HistoryTable));
        yield return new PlainTextFormatter(typeof(HistoryTable));
        yield return new HtmlFormatter(typeof(PlotImage));
        yield return new PlainTextFormatter(typeof(PlotImage));
    }

    internal sealed class HtmlFormatter(Type type)
    {
        public string MimeType => "text/html";

        public Type Type { get; } = type;

        public bool Format(object instance, TextWriter writer)
        {
            switch (instance)
            {
                case ResultGrid grid:
                    writer.Write(ResultHtml.Grid(grid));
                    return true;
                case TrialSummary trial:
                    writer.Write(ResultHtml.Grid(new ResultGrid(new[] { trial }, trial.LogDirectory ?? "")));
                    return true;
                case HistoryTable table:
                    writer.Write(ResultHtml.History(table));
                    return true;
                case PlotImage image:
                    writer.Write(image.ToHtml());
                    return true;
                default:
                    return false;
            }
        }
    }

    internal sealed class PlainTextFormatter(Type type)
    {
        public string MimeType => "text/plain";

        public Type Type { get; } = type;

        public bool Format(object instance, TextWriter writer)
        {
            if (instance is not (ResultGrid or TrialSummary or HistoryTable or PlotImage)) return false;
            writer.Write(instance.ToString());
            return true;
        }
    }
}

/// <summary>HTML tables of results.</summary>
public static class ResultHtml
{
    /// <summary>A table with one row per trial: id, status, the config values and the last result's metrics.</summary>
    public static string Grid(ResultGrid grid)
    {
        var configKeys = grid.SelectMany(t => t.Config.Keys).Distinct(StringComparer.Ordinal).ToList();
        var metricKeys = grid.Where(t => t.LastResult is not null)
            .SelectMany(t => t.LastResult!.Metrics.Select(m => m.Key)).Distinct(StringComparer.Ordinal).ToList();
        var sw = new StringWriter();
        sw.Write("<table>");
        // Errors are said above the rows, so a notebook never shows a failed run as a plain table of numbers.
        if (grid.NumErrors > 0)
            sw.Write(grid.AllErrored ? $"<caption>all {grid.Count} trials errored</caption>" : $"<caption>{grid.NumErrors} of {grid.Count} trials errored</caption>");
        sw.Write("<thead><tr><th>trial</th><th>status</th>");
        foreach (var k in configKeys) sw.Write($"<th>{Enc(k)}</th>");
        sw.Write("<th>iter</th>");
        foreach (var k in metricKeys) sw.Write($"<th>{Enc(k)}</th>");
        sw.Write("</tr></thead><tbody>");
        foreach (var t in grid)
        {
            sw.Write($"<tr><td>{Enc(t.TrialId)}</td><td>{Enc(t.Status.ToString().ToUpperInvariant())}</td>");
            foreach (var k in configKeys) sw.Write($"<td>{Enc(t.Config.TryGetValue(k, out var v) ? TrialConfig.Format(v) : "")}</td>");
            sw.Write($"<td>{t.LastResult?.TrainingIteration}</td>");
            foreach (var k in metricKeys) sw.Write($"<td>{Enc(t.LastResult?[k] is { } m ? TrialConfig.Format(m) : "")}</td>");
            sw.Write("</tr>");
        }
        sw.Write("</tbody></table>");
        return sw.ToString();
    }

    /// <summary>
    /// A table with one row per result (every column of <see cref="HistoryTable.Columns"/>); past <paramref name="maxRows"/>
    /// rows the first and last halves are shown with a row saying how many were left out, so a long sweep stays readable.
    /// </summary>
    public static string History(HistoryTable table, int maxRows = 50)
    {
        var sw = new StringWriter();
        sw.Write($"<table><caption>{Enc(table.ToString())}</caption><thead><tr>");
        foreach (var c in table.Columns) sw.Write($"<th>{Enc(c)}</th>");
        sw.Write("</tr></thead><tbody>");
        int head = table.Count <= maxRows ? table.Count : maxRows / 2;
        int tail = table.Count <= maxRows ? 0 : maxRows - head;
        void Row(HistoryRow row)
        {
            sw.Write("<tr>");
            foreach (var c in table.Columns) sw.Write($"<td>{Enc(row[c] is { } v ? TrialConfig.Format(v) : "")}</td>");
            sw.Write("</tr>");
        }
        for (int i = 0; i < head; i++) Row(table[i]);
        if (tail > 0)
        {
            sw.Write($"<tr><td colspan=\"{table.Columns.Count}\">... {table.Count - head - tail} more rows ...</td></tr>");
            for (int i = table.Count - tail; i < table.Count; i++) Row(table[i]);
        }
        sw.Write("</tbody></table>");
        return sw.ToString();
    }

    private static string Enc(string text) => WebUtility.HtmlEncode(text);
}
