using System.Text;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace TorchTrials.Cli.Rendering;

/// <summary>A column of a <see cref="FittedTable"/>: its header, one cell per row, and how much it matters.</summary>
internal sealed record FitColumn(string Header, IReadOnlyList<string> Cells)
{
    /// <summary>0: always shown; otherwise columns are added by ascending priority while they fit.</summary>
    public int Priority { get; init; }

    public bool RightAligned { get; init; }

    /// <summary>Longer cells shown instead of <see cref="Cells"/> when they fit too (e.g. "STOPPED by ASHA" for "STOPPED").</summary>
    public IReadOnlyList<string>? WideCells { get; init; }

    /// <summary>The priority of <see cref="WideCells"/> among the other columns.</summary>
    public int WidePriority { get; init; } = int.MaxValue;

    /// <summary>The narrowest this column may be cut to (its cells then end in "…"); null: shown whole or not at all.</summary>
    public int? MinWidth { get; init; }

    /// <summary>The Spectre style of a row's cell (a status colour), or null.</summary>
    public Func<int, string?>? Style { get; init; }
}

/// <summary>
/// A table that fits a width: columns are chosen by priority and never wrap, one line per row, a bold header and a rule
/// under it. Lines are Spectre markup, each at most the given number of cells wide.
/// </summary>
internal static class FittedTable
{
    private const int Gap = 2;

    /// <summary>Cells a text takes on a terminal.</summary>
    public static int Width(string text) => new Segment(text).CellCount();

    /// <summary>The text cut to <paramref name="width"/> cells, ending in "…" when cut.</summary>
    public static string Truncate(string text, int width)
    {
        if (Width(text) <= width) return text;
        if (width <= 0) return "";
        var sb = new StringBuilder();
        foreach (var rune in text.EnumerateRunes())
        {
            var next = rune.ToString();
            if (Width(sb.ToString()) + Width(next) > width - 1) break;
            sb.Append(next);
        }
        return sb.Append('…').ToString();
    }

    /// <summary>A number with a fraction in four significant digits (0.001235), other values as they are.</summary>
    public static string Compact(string value) =>
        value.Contains('.') && double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d)
            ? d.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)
            : value;

    public static IReadOnlyList<string> Render(IReadOnlyList<FitColumn> columns, int rowCount, int width)
    {
        var plan = Fit(columns, width);
        var shown = Enumerable.Range(0, columns.Count).Where(i => plan[i] is not null).ToList();
        var lines = new List<string>(rowCount + 2);

        string Line(Func<int, string> text, Func<int, string?> style)
        {
            var plain = new StringBuilder();
            var markup = new StringBuilder();
            for (int k = 0; k < shown.Count; k++)
            {
                int i = shown[k];
                var w = plan[i]!.Value.Width;
                var cell = Truncate(text(i), w);
                var pad = new string(' ', w - Width(cell));
                var padded = columns[i].RightAligned ? pad + cell : cell + pad;
                if (k > 0)
                {
                    plain.Append(' ', Gap);
                    markup.Append(' ', Gap);
                }
                plain.Append(padded);
                markup.Append(style(i) is { } s && cell.Length > 0 ? $"[{s}]{Markup.Escape(padded)}[/]" : Markup.Escape(padded));
            }
            var line = plain.ToString().TrimEnd();
            // Only when even the columns that are always shown are wider than the terminal: cut the line, never wrap it.
            return Width(line) > width ? Markup.Escape(Truncate(line, width)) : markup.ToString().TrimEnd();
        }

        lines.Add(Line(i => columns[i].Header, _ => "bold"));
        int tableWidth = shown.Sum(i => plan[i]!.Value.Width) + Gap * Math.Max(0, shown.Count - 1);
        lines.Add($"[grey]{new string('─', Math.Min(tableWidth, width))}[/]");
        for (int r = 0; r < rowCount; r++)
        {
            int row = r;
            lines.Add(Line(i => Cells(columns[i], plan[i]!.Value.Wide)[row], i => columns[i].Style?.Invoke(row)));
        }
        return lines;
    }

    private static IReadOnlyList<string> Cells(FitColumn column, bool wide) => wide && column.WideCells is { } w ? w : column.Cells;

    private static int Natural(FitColumn column, bool wide) =>
        Math.Max(Width(column.Header), Cells(column, wide).Select(Width).DefaultIfEmpty(0).Max());

    /// <summary>For each column: null when dropped, else its width and whether its wide cells are shown.</summary>
    private static (int Width, bool Wide)?[] Fit(IReadOnlyList<FitColumn> columns, int width)
    {
        var plan = new (int Width, bool Wide)?[columns.Count];
        int Total() => plan.Where(p => p is not null).Sum(p => p!.Value.Width) + Gap * Math.Max(0, plan.Count(p => p is not null) - 1);

        for (int i = 0; i < columns.Count; i++)
            if (columns[i].Priority == 0) plan[i] = (Natural(columns[i], false), false);
        // The always-shown columns that may be cut give way first when even they do not fit.
        for (int i = 0; i < columns.Count && Total() > width; i++)
            if (plan[i] is not null && columns[i].MinWidth is { } min)
                plan[i] = (Math.Max(min, plan[i]!.Value.Width - (Total() - width)), false);

        var steps = Enumerable.Range(0, columns.Count)
            .Where(i => columns[i].Priority > 0).Select(i => (Priority: columns[i].Priority, Index: i, Wide: false))
            .Concat(Enumerable.Range(0, columns.Count).Where(i => columns[i].WideCells is not null).Select(i => (Priority: columns[i].WidePriority, Index: i, Wide: true)))
            .OrderBy(s => s.Priority).ThenBy(s => s.Index);
        foreach (var (_, i, wide) in steps)
        {
            if (wide && plan[i] is null) continue;
            var before = plan[i];
            plan[i] = (Natural(columns[i], wide), wide);
            if (Total() <= width) continue;
            if (!wide && columns[i].MinWidth is { } min && plan[i]!.Value.Width - (Total() - width) >= min)
            {
                plan[i] = (plan[i]!.Value.Width - (Total() - width), false);
                continue;
            }
            plan[i] = before;
        }
        return plan;
    }
}
