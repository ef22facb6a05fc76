using System.Collections;
using System.Globalization;
using Microsoft.Data.Sqlite;
using TorchTrials.Runner.Report;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Results;

/// <summary>Which value of a trial's metric ranks it (Ray's get_best_result scope).</summary>
public enum MetricScope
{
    /// <summary>The value in the trial's last result.</summary>
    Last,

    /// <summary>The best value the trial ever reported.</summary>
    All,

    /// <summary>The average of every value the trial reported.</summary>
    Average,
}

/// <summary>One trial's outcome: config, status, last result, best checkpoint and error.</summary>
[TypeFormatterSource(typeof(ResultFormatterSource))]
public sealed record TrialSummary
{
    public required string TrialId { get; init; }
    public required string TrainableName { get; init; }
    public required TrialStatus Status { get; init; }
    public required TrialConfig Config { get; init; }
    public string ExperimentTag { get; init; } = "";

    /// <summary>The fused array and lane the trial last trained in (<c>a3.5</c>); null when it trained alone.</summary>
    public string? Lane { get; init; }
    public TrialResult? LastResult { get; init; }
    public IReadOnlyDictionary<string, MetricSummary> Metrics { get; init; } = new Dictionary<string, MetricSummary>();
    public string? LogDirectory { get; init; }

    /// <summary>Directory of the best kept persistent checkpoint, or of the newest one; null when none was saved to disk.</summary>
    public string? CheckpointPath { get; init; }

    public string? Error { get; init; }
    public string? ErrorFile { get; init; }

    /// <summary>
    /// Loads the trial's checkpoint at <see cref="CheckpointPath"/> (its best kept one on disk) into <paramref name="model"/>
    /// in place, and into <paramref name="optimizer"/> when given (<see cref="Checkpoint.LoadInto"/>); returns the model:
    /// <c>using var model = grid.GetBestResult().LoadCheckpointInto(BuildModel(best.Config));</c>. Throws when the trial saved
    /// no checkpoint to disk, or when the model is not built as the trial's was.
    /// </summary>
    public TModel LoadCheckpointInto<TModel>(TModel model, TorchSharp.torch.optim.Optimizer? optimizer = null) where TModel : TorchSharp.torch.nn.Module
    {
        if (CheckpointPath is null)
            throw new InvalidOperationException($"trial {TrialId} has no checkpoint on disk: set RunConfig.Checkpoint = new CheckpointConfig {{ AtEnd = true }} (spec: checkpoint: {{at_end: true}})");
        using var checkpoint = PersistentCheckpoint.Open(CheckpointPath);
        return checkpoint.LoadInto(model, optimizer);
    }

    /// <summary>Who stopped a terminated trial before its own criteria (see <see cref="Trial.StoppedBy"/>); null otherwise.</summary>
    public string? StoppedBy { get; init; }
    public int NumFailures { get; init; }

    /// <summary>The value of <paramref name="metric"/> under <paramref name="scope"/>, signed so that larger is better for <paramref name="mode"/>.</summary>
    public double? Score(string metric, MetricMode mode, MetricScope scope)
    {
        double? value = scope switch
        {
            MetricScope.Last => LastResult is { } r && r.TryGetDouble(metric, out var v) ? v : null,
            MetricScope.All => Metrics.TryGetValue(metric, out var s) ? (mode == MetricMode.Max ? s.Max : s.Min) : null,
            _ => Metrics.TryGetValue(metric, out var a) ? a.Average : null,
        };
        if (value is null || double.IsNaN(value.Value)) return null;
        return mode == MetricMode.Max ? value : -value;
    }

    /// <summary>The first line of an error message (an exception's message may carry a native trace after it).</summary>
    internal static string FirstLine(string message)
    {
        var line = message.AsSpan().TrimStart();
        int end = line.IndexOfAny('\r', '\n');
        return (end < 0 ? line : line[..end]).TrimEnd().ToString();
    }

    public static TrialSummary Of(Trial trial) => new()
    {
        TrialId = trial.Id,
        TrainableName = trial.TrainableName,
        Status = trial.Status,
        Config = trial.Config,
        ExperimentTag = trial.ExperimentTag,
        Lane = trial.Lane,
        LastResult = trial.LastResult,
        Metrics = trial.MetricAnalysis.ToDictionary(kv => kv.Key, kv => kv.Value),
        LogDirectory = trial.LogDirectory,
        CheckpointPath = (trial.Checkpoints.Best.FirstOrDefault() ?? trial.Checkpoints.NewestPersistent as PersistentCheckpoint)?.Directory,
        Error = trial.ErrorMessage,
        ErrorFile = trial.ErrorFile,
        StoppedBy = trial.Status == TrialStatus.Terminated ? trial.StoppedBy : null,
        NumFailures = trial.NumFailures,
    };
}

/// <summary>
/// The outcome of a sweep (Ray's ResultGrid): every trial's summary, the best one by metric and mode, the errors, and
/// rows for tabular tools. Renders as an HTML table in .NET notebooks.
/// </summary>
[TypeFormatterSource(typeof(ResultFormatterSource))]
public sealed class ResultGrid : IReadOnlyList<TrialSummary>
{
    private readonly IReadOnlyList<TrialSummary> _trials;

    public ResultGrid(IEnumerable<TrialSummary> trials, string experimentPath, string? metric = null, MetricMode? mode = null)
    {
        _trials = trials.ToList();
        ExperimentPath = experimentPath;
        Metric = metric;
        Mode = mode;
    }

    public string ExperimentPath { get; }

    /// <summary>Each trial's stored results, oldest first, when the grid was read from the store; null for a live grid.</summary>
    private IReadOnlyDictionary<string, IReadOnlyList<TrialResult>>? _histories;

    /// <summary>
    /// The finished (or still running) experiment in <paramref name="directory"/>, read from its store without writing
    /// anything (Ray's ExperimentAnalysis / ResultGrid restored from a path), with every trial's full history. Throws
    /// <see cref="ExperimentOpenException"/> with a one-line message naming the folder or file when it holds no experiment
    /// or its store is damaged.
    /// </summary>
    public static ResultGrid Open(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new ExperimentOpenException($"'{directory}' does not exist");
        var path = Path.GetFullPath(directory);
        using var store = SqliteExperimentStore.OpenReadOnly(directory);
        try
        {
            // One snapshot for the trials and their results, so they agree even while the owner commits between the reads.
            var (stored, results) = store.ReadSnapshot(() => (store.Load(), store.AllResults()));
            if (stored is null) throw new ExperimentOpenException($"'{Path.Combine(path, SqliteExperimentStore.FileName)}' holds no experiment (no trials and no state)");
            var trials = stored.Trials.Select(TrialStateCodec.Decode).Select(TrialSummary.Of).ToList();
            var histories = trials.ToDictionary(t => t.TrialId, t => results.GetValueOrDefault(t.TrialId) ?? Array.Empty<TrialResult>(), StringComparer.Ordinal);
            var metric = stored.State["metric"]?.GetValue<string>();
            MetricMode? mode = stored.State["mode"]?.GetValue<string>() is { } m ? Enum.Parse<MetricMode>(m, ignoreCase: true) : null;
            return new ResultGrid(trials, path, metric, mode) { _histories = histories };
        }
        catch (SqliteException e)
        {
            throw SqliteExperimentStore.Damaged(Path.Combine(path, SqliteExperimentStore.FileName), e);
        }
    }

    /// <summary>
    /// The results trial <paramref name="trialId"/> reported, oldest first (Ray's Result.metrics_dataframe as records). A live
    /// grid (from FitAsync) reads them from the experiment's store on first use.
    /// </summary>
    public IReadOnlyList<TrialResult> HistoryOf(string trialId) =>
        Histories().TryGetValue(trialId, out var history) ? history : throw new KeyNotFoundException($"no trial '{trialId}' in the grid");

    /// <summary>
    /// Every trial's full per-iteration history as one table (Ray's get_dataframe() over every trial's metrics_dataframe,
    /// Optuna's trials_dataframe()), with CSV export and a DataFrame view. A live grid reads it from the experiment's store.
    /// </summary>
    public HistoryTable GetHistory()
    {
        var histories = Histories();
        return new HistoryTable(_trials.SelectMany(t => histories.GetValueOrDefault(t.TrialId) ?? Array.Empty<TrialResult>(),
            (t, r) => new HistoryRow(t.TrialId, t.Status, t.Config, r.TrainingIteration,
                r.Keys.Where(k => k is not (TrialResult.TrialIdKey or TrialResult.TrainingIterationKey))
                    .ToDictionary(k => k, k => r[k], StringComparer.Ordinal))));
    }

    private IReadOnlyDictionary<string, IReadOnlyList<TrialResult>> Histories()
    {
        if (_histories is not null) return _histories;
        if (!SqliteExperimentStore.Exists(ExperimentPath))
            throw new InvalidOperationException($"no history: '{ExperimentPath}' holds no experiment store (the run kept no record)");
        _histories = Open(ExperimentPath)._histories!;
        return _histories;
    }

    private SweepPlots? _plots;

    /// <summary>
    /// The sweep's pictures (issue 13), as <c>torchtrials report</c> draws them: <c>grid.Plots.History().Save("h.png")</c>;
    /// each shows inline in a notebook. Read from the experiment's store on first use.
    /// </summary>
    public SweepPlots Plots => _plots ??= SweepPlots.Of(this);

    /// <summary>True when the run was cancelled before every trial finished (resume it to go on).</summary>
    public bool WasInterrupted { get; init; }

    /// <summary>The experiment's metric and mode, used when <see cref="GetBestResult"/> is called without them.</summary>
    public string? Metric { get; }

    public MetricMode? Mode { get; }

    public int Count => _trials.Count;

    public TrialSummary this[int index] => _trials[index];

    public IReadOnlyList<TrialSummary> Errors => _trials.Where(t => t.Status == TrialStatus.Error).ToList();

    public int NumErrors => _trials.Count(t => t.Status == TrialStatus.Error);

    public int NumTerminated => _trials.Count(t => t.Status == TrialStatus.Terminated);

    /// <summary>True when the run had trials and every one of them errored: nothing trained to the end.</summary>
    public bool AllErrored => _trials.Count > 0 && NumErrors == _trials.Count;

    /// <summary>
    /// The trial whose <paramref name="metric"/> is best (Ray's get_best_result); the experiment's metric and mode by default.
    /// Only trials that did not error are ranked: an errored trial's last result is wherever it crashed. Throws naming what is
    /// missing when no metric is known, when every trial errored, or when no other trial reported the metric.
    /// </summary>
    public TrialSummary GetBestResult(string? metric = null, MetricMode? mode = null, MetricScope scope = MetricScope.Last)
    {
        metric ??= Metric ?? throw new InvalidOperationException("no metric given and the experiment has none: pass metric and mode");
        mode ??= Mode ?? throw new InvalidOperationException($"no mode given for metric '{metric}': pass mode (max or min)");
        if (AllErrored)
        {
            var first = _trials[0];
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"no best result: all {Count} trial(s) errored, none finished (trial {first.TrialId}: {TrialSummary.FirstLine(first.Error ?? "(no message)")}{(first.ErrorFile is null ? "" : $"; see {first.ErrorFile}")})"));
        }
        var best = _trials
            .Where(t => t.Status != TrialStatus.Error)
            .Select(t => (Trial: t, Score: t.Score(metric, mode.Value, scope)))
            .Where(x => x.Score is not null)
            .OrderByDescending(x => x.Score)
            .FirstOrDefault();
        return best.Trial ?? throw new InvalidOperationException(NumErrors == 0
            ? $"no trial reported the metric '{metric}'"
            : string.Create(CultureInfo.InvariantCulture, $"no trial that did not error reported the metric '{metric}' ({NumErrors} errored trial(s) are not ranked)"));
    }

    /// <summary>One row per trial: id, status, config values ("config/NAME") and the last result's values.</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, object?>> ToRows() =>
        _trials.Select(t =>
        {
            var row = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["trial_id"] = t.TrialId,
                ["status"] = t.Status.ToString().ToUpperInvariant(),
            };
            foreach (var (k, v) in t.Config) row["config/" + k] = v;
            if (t.LastResult is { } r)
                foreach (var key in r.Keys) row[key] = r[key];
            if (t.Error is not null) row["error"] = t.Error;
            return (IReadOnlyDictionary<string, object?>)row;
        }).ToList();

    public IEnumerator<TrialSummary> GetEnumerator() => _trials.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture,
            $"ResultGrid<{Count} trials: {NumTerminated} terminated, {NumErrors} errors{(AllErrored ? ": all trials errored" : "")}> at {ExperimentPath}");
}
