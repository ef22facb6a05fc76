using Microsoft.Data.Sqlite;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Report;

public sealed partial record SweepData
{
    /// <summary>
    /// The sweep in <paramref name="experimentDir"/>, read from its store only and without writing anything
    /// (<see cref="SqliteExperimentStore.OpenReadOnly"/>, one read snapshot): finished, running (its owner keeps writing,
    /// never blocked) or resumed. Throws <see cref="ExperimentOpenException"/> with a one-line message when the folder holds
    /// no experiment or its store is damaged.
    /// </summary>
    public static SweepData Load(string experimentDir)
    {
        if (!System.IO.Directory.Exists(experimentDir)) throw new ExperimentOpenException($"'{experimentDir}' does not exist");
        var path = Path.GetFullPath(experimentDir);
        var file = Path.Combine(path, SqliteExperimentStore.FileName);
        using var store = SqliteExperimentStore.OpenReadOnly(experimentDir);
        try
        {
            var (stored, results, decisions, changes, exploits) = store.ReadSnapshot(() =>
                (store.Load(), store.AllResults(), store.Decisions(), store.StatusChanges(), store.Exploits()));
            if (stored is null) throw new ExperimentOpenException($"'{file}' holds no experiment (no trials and no state)");

            var spans = RunningSpans(changes);
            var trials = new List<SweepTrial>(stored.Trials.Count);
            foreach (var s in stored.Trials)
            {
                // Checkpoints are not needed for pictures: decoding without them opens no checkpoint folder.
                var trial = TrialStateCodec.Decode(s with { Checkpoints = [] });
                trials.Add(new SweepTrial(
                    trial.Id, trial.Sequence, trial.Status, CurrentParams(trial.EvaluatedParams, trial.Config),
                    results.GetValueOrDefault(trial.Id) ?? [], spans.GetValueOrDefault(trial.Id) ?? [])
                {
                    StoppedBy = trial.Status == TrialStatus.Terminated ? trial.StoppedBy : null,
                    Lane = trial.Lane,
                    Slot = trial.Slot,
                    Error = trial.ErrorMessage,
                });
            }
            trials.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));

            var metric = stored.State["metric"]?.GetValue<string>();
            MetricMode? mode = stored.State["mode"]?.GetValue<string>() is { } m ? Enum.Parse<MetricMode>(m, ignoreCase: true) : null;
            var domains = ParamDomains.FromJson(stored.State[ParamDomains.StateKey]);
            if (domains.Count == 0) domains = ParamDomains.Infer(trials.Select(t => t.Params));
            return new SweepData
            {
                Directory = path,
                Metric = metric,
                Mode = mode,
                Trials = trials,
                Decisions = decisions.Select(d => new SweepDecision(d.TrialId, d.Iteration, d.Decision, d.Source, Time(d.At))).ToList(),
                Exploits = exploits.Select(x => new SweepExploit(x.TrialId, x.DonorId, x.Iteration, Time(x.At),
                    Flatten(TrialConfig.FromJson(x.OldConfig)), Flatten(TrialConfig.FromJson(x.NewConfig)))).ToList(),
                Domains = domains,
            };
        }
        catch (SqliteException e)
        {
            throw SqliteExperimentStore.Damaged(file, e);
        }
    }

    private static DateTimeOffset Time(double unixSeconds) => DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Round(unixSeconds * 1000));

    /// <summary>Each trial's stretches of running: from a change to RUNNING to that trial's next change (open while none follows).</summary>
    private static Dictionary<string, List<RunningSpan>> RunningSpans(IReadOnlyList<StoredStatusChange> changes)
    {
        var spans = new Dictionary<string, List<RunningSpan>>(StringComparer.Ordinal);
        var open = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        foreach (var c in changes)
        {
            if (open.Remove(c.TrialId, out var start))
                Add(c.TrialId, new RunningSpan(start, Time(c.At)));
            if (c.Status == nameof(TrialStatus.Running)) open[c.TrialId] = Time(c.At);
        }
        foreach (var (id, start) in open) Add(id, new RunningSpan(start, null));
        foreach (var list in spans.Values) list.Sort((a, b) => a.Start.CompareTo(b.Start));
        return spans;

        void Add(string id, RunningSpan span)
        {
            if (!spans.TryGetValue(id, out var list)) spans[id] = list = new List<RunningSpan>();
            list.Add(span);
        }
    }

    /// <summary>The evaluated params with the values the trial's config holds now (a PBT exploit changes them).</summary>
    private static IReadOnlyDictionary<string, object?> CurrentParams(IReadOnlyDictionary<string, object?> evaluated, TrialConfig config)
    {
        var flat = Flatten(config);
        if (evaluated.Count == 0) return new Dictionary<string, object?>(StringComparer.Ordinal);
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in evaluated) result[key] = flat.TryGetValue(key, out var now) ? now : value;
        return result;
    }

    /// <summary>A config as flat keys, nested configs joined with '/' (as evaluated params name them).</summary>
    internal static Dictionary<string, object?> Flatten(TrialConfig config)
    {
        var flat = new Dictionary<string, object?>(StringComparer.Ordinal);
        Add("", config);
        return flat;

        void Add(string prefix, TrialConfig c)
        {
            foreach (var (key, value) in c)
            {
                if (value is TrialConfig nested) Add(prefix + key + "/", nested);
                else flat[prefix + key] = value;
            }
        }
    }
}
