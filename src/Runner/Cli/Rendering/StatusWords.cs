using Spectre.Console;
using TorchTrials.Runner;

namespace TorchTrials.Cli.Rendering;

/// <summary>
/// How a person reads a trial's status: a word (STOPPED for a terminated trial a scheduler or stopper cut short), who
/// stopped it, and the counts by status ("20 trials: 2 running, 5 pending, 9 terminated, 3 stopped by ASHA, 1 error").
/// </summary>
internal static class StatusWords
{
    // Short names of the built-in schedulers and stoppers; others show their type name without its suffix.
    private static readonly Dictionary<string, string> ShortNames = new(StringComparer.Ordinal)
    {
        ["AshaScheduler"] = "ASHA",
        ["AshaPromotionScheduler"] = "ASHA",
        ["HyperBandScheduler"] = "HyperBand",
        ["MedianStoppingRule"] = "median stopping",
        ["PopulationBasedTraining"] = "PBT",
        ["Pb2"] = "PB2",
        ["MaximumIterationStopper"] = "max_iter",
        ["TrialPlateauStopper"] = "plateau",
        ["ExperimentPlateauStopper"] = "plateau",
        ["TimeoutStopper"] = "timeout",
    };

    /// <summary>The status word of a table row: RUNNING, PENDING, PAUSED, TERMINATED, STOPPED or ERROR.</summary>
    public static string Word(TrialStatus status, string? stoppedBy) =>
        status == TrialStatus.Terminated && stoppedBy is not null ? "STOPPED" : status.ToString().ToUpperInvariant();

    /// <summary>The word with who stopped the trial, where there is one ("STOPPED by ASHA").</summary>
    public static string WordWithReason(TrialStatus status, string? stoppedBy) =>
        Word(status, stoppedBy) + (status == TrialStatus.Terminated && stoppedBy is not null ? $" by {Source(stoppedBy)}" : "");

    /// <summary>A scheduler's or stopper's name as a person knows it ("AshaScheduler" is ASHA).</summary>
    public static string Source(string stoppedBy)
    {
        if (ShortNames.TryGetValue(stoppedBy, out var name)) return name;
        foreach (var suffix in new[] { "Scheduler", "Stopper", "Rule" })
            if (stoppedBy.Length > suffix.Length && stoppedBy.EndsWith(suffix, StringComparison.Ordinal)) return stoppedBy[..^suffix.Length];
        return stoppedBy;
    }

    /// <summary>The style of a status word.</summary>
    public static string Style(string word) => word switch
    {
        "RUNNING" => "green",
        "TERMINATED" => "blue",
        "STOPPED" => "cyan",
        "ERROR" => "red",
        "PAUSED" => "yellow",
        _ => "default",
    };

    public static string Markup(string text, string word) => $"[{Style(word)}]{Spectre.Console.Markup.Escape(text)}[/]";

    /// <summary>"N trials" and one "count status" part per status present, in lifecycle order; stopped trials by who stopped them.</summary>
    public static IReadOnlyList<string> Counts(IReadOnlyCollection<(TrialStatus Status, string? StoppedBy)> trials)
    {
        var parts = new List<string> { $"{trials.Count} {(trials.Count == 1 ? "trial" : "trials")}:" };
        void Add(int n, string what)
        {
            if (n > 0) parts.Add($"{n} {what}");
        }
        Add(trials.Count(t => t.Status == TrialStatus.Running), "running");
        Add(trials.Count(t => t.Status == TrialStatus.Paused), "paused");
        Add(trials.Count(t => t.Status == TrialStatus.Pending), "pending");
        Add(trials.Count(t => t.Status == TrialStatus.Terminated && t.StoppedBy is null), "terminated");
        foreach (var group in trials.Where(t => t.Status == TrialStatus.Terminated && t.StoppedBy is not null)
                     .GroupBy(t => Source(t.StoppedBy!)).OrderBy(g => g.Key, StringComparer.Ordinal))
            Add(group.Count(), $"stopped by {group.Key}");
        int errors = trials.Count(t => t.Status == TrialStatus.Error);
        Add(errors, errors == 1 ? "error" : "errors");
        if (parts.Count == 1) parts[0] = parts[0].TrimEnd(':');
        return parts;
    }

    /// <summary>The counts as one line: "20 trials: 2 running, 5 pending, 9 terminated, 3 stopped by ASHA, 1 error".</summary>
    public static string CountsLine(IReadOnlyCollection<(TrialStatus Status, string? StoppedBy)> trials)
    {
        var parts = Counts(trials);
        return parts.Count == 1 ? parts[0] : parts[0] + " " + string.Join(", ", parts.Skip(1));
    }

    /// <summary>The counts line broken between parts (never inside one) into lines of at most <paramref name="width"/> cells.</summary>
    public static IReadOnlyList<string> CountsLines(IReadOnlyCollection<(TrialStatus Status, string? StoppedBy)> trials, int width)
    {
        var parts = Counts(trials);
        var lines = new List<string>();
        var line = parts[0];
        for (int i = 1; i < parts.Count; i++)
        {
            var piece = parts[i] + (i < parts.Count - 1 ? "," : "");
            if (FittedTable.Width(line) + 1 + FittedTable.Width(piece) <= width) line += " " + piece;
            else
            {
                lines.Add(line);
                line = "  " + piece;
            }
        }
        lines.Add(line);
        return lines.Select(l => FittedTable.Truncate(l, width)).ToList();
    }
}
