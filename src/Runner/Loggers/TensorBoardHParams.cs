using TorchTrials.Runner.Report;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Loggers;

/// <summary>
/// What TensorBoard's HParams dashboard is told about the sweep: its hyperparameters with their domains and the metric
/// the sweep optimises. Written as <c>_hparams_/experiment</c> into <paramref name="Directory"/> (the experiment's folder,
/// whose sub-folders are the trial runs).
/// </summary>
public sealed record TensorBoardExperiment(string Directory, IReadOnlyList<ParamDomain> Domains, string? Metric);

/// <summary>
/// Keeps the HParams plugin's records (see <see cref="HParamsSummaries"/>) for <see cref="TrialFileLogger"/>, on its thread.
/// A trial's session start and end records go into the trial's own scalar event file, as TensorFlow's summary writer puts
/// them: TensorBoard reads only the newest file of a run live, so a separate file would hide later scalars or the end.
/// TensorBoard keeps the first record of each tag in a run and ignores the rest, as it must when a training job restarts,
/// so: a trial's files reopened after a pause or a resume get one more start record (ignored; after a PBT exploit it holds
/// the new config, the dashboard keeps the first); an end record is written once the trial is TERMINATED (success) or
/// ERROR (failure), and a restarted errored trial has its old end record cut from the end of its files, so a TensorBoard
/// started afterwards shows how the rerun ended (one already running keeps showing the failure).
/// The experiment record lives in its own file (<see cref="ExperimentFileSuffix"/>), rewritten at the end of a run when
/// the run found metrics or varying config keys the first record did not list; again only a TensorBoard started afterwards
/// reads the new one.
/// </summary>
internal sealed class TensorBoardHParams(TimeProvider time)
{
    public const string ExperimentFileSuffix = ".hparams";

    private static readonly byte[] EndTag = System.Text.Encoding.UTF8.GetBytes(HParamsSummaries.SessionEndTag);

    private readonly Dictionary<Trial, IReadOnlyDictionary<string, object?>> _sessions = new();
    private readonly HashSet<string> _metricKeys = new(StringComparer.Ordinal);
    private readonly List<string> _metricTags = new();
    private TensorBoardExperiment? _experiment;
    private HashSet<string> _textKeys = new(StringComparer.Ordinal);
    private (int HParams, int Metrics) _written = (-1, -1);

    public void ExperimentStarted(TensorBoardExperiment experiment)
    {
        _experiment = experiment;
        _textKeys = experiment.Domains.Where(d => HParamsSummaries.TypeOf(d) == HParamsSummaries.DataType.String)
            .Select(d => d.Name).ToHashSet(StringComparer.Ordinal);
        if (experiment.Metric is { } metric) SawMetric(metric);
        if (experiment.Domains.Count > 0) WriteExperiment(experiment.Domains);
    }

    /// <summary>Writes the start record into the trial's newly opened <paramref name="events"/> file.</summary>
    public void SessionStarted(Trial trial, TfEventWriter events, TrialConfig config)
    {
        var hparams = SweepData.Flatten(config);
        if (!_sessions.ContainsKey(trial)) CutEndRecords(trial.LogDirectory!, except: events.Path);
        _sessions[trial] = hparams;
        double start = trial.StartTime is { } at ? at.ToUnixTimeMilliseconds() / 1000.0 : Now();
        events.AddSummary(0, start, HParamsSummaries.SessionStart(hparams, trial.Id, start, _textKeys));
    }

    /// <summary>True when the trial ran in this process: its end is worth a record.</summary>
    public bool HasSession(Trial trial) => _sessions.ContainsKey(trial);

    public void SessionEnded(TfEventWriter events, TrialStatus status)
    {
        double end = Now();
        events.AddSummary(0, end, HParamsSummaries.SessionEnd(status == TrialStatus.Terminated ? HParamsSessionStatus.Success : HParamsSessionStatus.Failure, end));
    }

    /// <summary>Notes a numeric result key; the first sighting adds it to the experiment's metrics.</summary>
    public void SawMetric(string key)
    {
        if (_metricKeys.Add(key)) _metricTags.Add(TrialFileLogger.ScalarPrefix + key);
    }

    /// <summary>Rewrites the experiment record when the run found metrics or varying keys the written one lacks.</summary>
    public void ExperimentEnded()
    {
        if (_experiment is null) return;
        var known = _experiment.Domains.Select(d => d.Name).ToHashSet(StringComparer.Ordinal);
        var varying = ParamDomains.Infer(_sessions.Values.Select(h => h.Where(p => !known.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value)))
            .Where(d => d.Kind != ParamKind.Categorical ? d.Low < d.High : d.Categories.Count > 1);
        var domains = _experiment.Domains.Concat(varying).ToList();
        if ((domains.Count, _metricTags.Count) != _written) WriteExperiment(domains);
    }

    private void WriteExperiment(IReadOnlyList<ParamDomain> domains)
    {
        var directory = _experiment!.Directory;
        if (Directory.Exists(directory))
        {
            foreach (var old in Directory.EnumerateFiles(directory, TfEventWriter.FilePrefix + "*" + ExperimentFileSuffix)) File.Delete(old);
        }
        using var writer = new TfEventWriter(directory, ExperimentFileSuffix);
        double now = Now();
        writer.AddSummary(0, now, HParamsSummaries.Experiment(domains, _metricTags, now));
        _written = (domains.Count, _metricTags.Count);
    }

    /// <summary>Cuts a session end record that is the last record of one of the trial's event files.</summary>
    private static void CutEndRecords(string directory, string except)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var path in Directory.EnumerateFiles(directory, TfEventWriter.FilePrefix + "*"))
        {
            if (path == except) continue;
            using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            if (LastRecord(file) is not { } last) continue;
            file.Position = last;
            var record = new byte[file.Length - last];
            file.ReadExactly(record);
            if (record.AsSpan().IndexOf(EndTag) >= 0) file.SetLength(last);
        }
    }

    /// <summary>Where the last whole TFRecord begins; null when the file is empty or ends in a torn record.</summary>
    private static long? LastRecord(FileStream file)
    {
        Span<byte> length = stackalloc byte[8];
        long at = 0;
        long? last = null;
        while (at + 12 <= file.Length)
        {
            file.Position = at;
            file.ReadExactly(length);
            long next = at + 12 + (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(length) + 4;
            if (next > file.Length) return null;
            last = at;
            at = next;
        }
        return at == file.Length ? last : null;
    }

    private double Now() => time.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0;
}
