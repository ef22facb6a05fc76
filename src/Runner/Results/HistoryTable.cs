using System.Collections;
using System.Collections.Immutable;
using System.Globalization;
using Microsoft.Data.Analysis;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Results;

/// <summary>One result of one trial: who reported it, with which config, at which iteration, and its values.</summary>
/// <param name="Values">The result's metrics and auto-filled fields (time_total_s, ...) by name, without trial_id and training_iteration.</param>
public sealed record HistoryRow(
    string TrialId,
    TrialStatus Status,
    TrialConfig Config,
    long Iteration,
    IReadOnlyDictionary<string, object?> Values)
{
    /// <summary>The cell of <paramref name="column"/> as the table names it ("trial_id", "config/lr", "loss"); null when absent.</summary>
    public object? this[string column] => column switch
    {
        HistoryTable.TrialIdColumn => TrialId,
        HistoryTable.StatusColumn => Status.ToString().ToUpperInvariant(),
        HistoryTable.IterationColumn => Iteration,
        _ when column.StartsWith(HistoryTable.ConfigPrefix, StringComparison.Ordinal) =>
            Config.TryGetValue(column[HistoryTable.ConfigPrefix.Length..], out var c) ? c : null,
        _ => Values.GetValueOrDefault(column),
    };
}

/// <summary>
/// Every trial's full per-iteration history as one table (Ray's ResultGrid.get_dataframe() of every Result.metrics_dataframe,
/// Optuna's trials_dataframe() per step): one row per stored result, in trial order then iteration order. Columns are
/// trial_id, status, config/NAME for each config value, training_iteration, then every metric and auto-filled field.
/// Deviation: Ray's columns are "config/lr" too, but its status is not on every row; here it is, so one table filters by it.
/// </summary>
[TypeFormatterSource(typeof(ResultFormatterSource))]
public sealed class HistoryTable : IReadOnlyList<HistoryRow>
{
    public const string TrialIdColumn = TrialResult.TrialIdKey;
    public const string StatusColumn = "status";
    public const string IterationColumn = TrialResult.TrainingIterationKey;
    public const string ConfigPrefix = "config/";

    private readonly IReadOnlyList<HistoryRow> _rows;

    public HistoryTable(IEnumerable<HistoryRow> rows)
    {
        var list = rows.ToList();
        // The store's JSON reads a fractional metric's whole values (1.0) back as integers: a column with any fractional
        // value is made all doubles, so a metric keeps one type down its column.
        var fractional = list.SelectMany(r => r.Values).Where(kv => kv.Value is double).Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
        _rows = fractional.Count == 0 ? list : list.Select(r => r.Values.Any(kv => kv.Value is long && fractional.Contains(kv.Key))
            ? r with { Values = r.Values.ToDictionary(kv => kv.Key, kv => kv.Value is long l && fractional.Contains(kv.Key) ? (object?)(double)l : kv.Value, StringComparer.Ordinal) }
            : r).ToList();
        var configKeys = _rows.SelectMany(r => r.Config.Keys).Distinct(StringComparer.Ordinal).Select(k => ConfigPrefix + k);
        var valueKeys = _rows.SelectMany(r => r.Values.Keys).Distinct(StringComparer.Ordinal);
        Columns = new[] { TrialIdColumn, StatusColumn }.Concat(configKeys).Append(IterationColumn).Concat(valueKeys).ToList();
    }

    /// <summary>The column names, in order.</summary>
    public IReadOnlyList<string> Columns { get; }

    public int Count => _rows.Count;

    public HistoryRow this[int index] => _rows[index];

    public IEnumerator<HistoryRow> GetEnumerator() => _rows.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The rows of trial <paramref name="trialId"/> (Ray's Result.metrics_dataframe), oldest first.</summary>
    public HistoryTable OfTrial(string trialId) => new(_rows.Where(r => r.TrialId == trialId));

    /// <summary>
    /// Writes the table as CSV (RFC 4180, a header line, invariant culture, numbers round-trip exactly): an absent value is
    /// an empty cell, a list is its JSON-like text ("[1,2]").
    /// </summary>
    public void WriteCsv(TextWriter writer)
    {
        writer.Write(string.Join(",", Columns.Select(Quote)));
        writer.Write("\r\n");
        foreach (var row in _rows)
        {
            writer.Write(string.Join(",", Columns.Select(c => Quote(Cell(row[c])))));
            writer.Write("\r\n");
        }
    }

    /// <summary>The table as CSV text (see <see cref="WriteCsv(TextWriter)"/>).</summary>
    public string ToCsv()
    {
        var sw = new StringWriter(CultureInfo.InvariantCulture);
        WriteCsv(sw);
        return sw.ToString();
    }

    /// <summary>Writes the table as CSV to <paramref name="path"/>.</summary>
    public void WriteCsv(string path)
    {
        using var writer = new StreamWriter(path);
        WriteCsv(writer);
    }

    /// <summary>
    /// The table as a Microsoft.Data.Analysis DataFrame: a column whose values are all numbers is a DoubleDataFrameColumn
    /// (an integer one an Int64DataFrameColumn, a true/false one a BooleanDataFrameColumn), anything else a
    /// StringDataFrameColumn; an absent value is null.
    /// </summary>
    public DataFrame ToDataFrame()
    {
        var columns = new List<DataFrameColumn>(Columns.Count);
        foreach (var name in Columns)
        {
            var values = _rows.Select(r => r[name]).ToList();
            var present = values.Where(v => v is not null).ToList();
            if (present.Count > 0 && present.All(v => v is long))
                columns.Add(new Int64DataFrameColumn(name, values.Select(v => (long?)v)));
            else if (present.Count > 0 && present.All(v => v is long or double))
                columns.Add(new DoubleDataFrameColumn(name, values.Select(v => v is null ? (double?)null : Convert.ToDouble(v, CultureInfo.InvariantCulture))));
            else if (present.Count > 0 && present.All(v => v is bool))
                columns.Add(new BooleanDataFrameColumn(name, values.Select(v => (bool?)v)));
            else
                columns.Add(new StringDataFrameColumn(name, values.Select(v => v is null ? null : Cell(v))));
        }
        return new DataFrame(columns);
    }

    /// <summary>A value as one CSV cell: numbers in round-trip form, null as empty.</summary>
    internal static string Cell(object? value) => value switch
    {
        null => "",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        ImmutableArray<object?> a => "[" + string.Join(",", a.Select(Cell)) + "]",
        _ => TrialConfig.Format(value),
    };

    private static string Quote(string cell) =>
        cell.AsSpan().IndexOfAny(",\"\r\n") < 0 ? cell : "\"" + cell.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"HistoryTable<{Count} rows of {_rows.Select(r => r.TrialId).Distinct().Count()} trials, {Columns.Count} columns>");
}
