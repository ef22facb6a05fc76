using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Loggers;

/// <summary>Which per-trial files to write.</summary>
public sealed record TrialFileOptions
{
    /// <summary>progress.csv: one row per result, columns fixed by the first result (as Ray's CSVLogger).</summary>
    public bool Csv { get; init; } = true;

    /// <summary>result.json: one JSON object per line, with the config (as Ray's JsonLogger).</summary>
    public bool Json { get; init; } = true;

    /// <summary>
    /// TensorBoard event files with every numeric value of each result, and the HParams dashboard's records (each trial a
    /// session with its config and how it ended; the experiment's hyperparameters and metrics in the experiment folder).
    /// </summary>
    public bool TensorBoard { get; init; } = true;

    /// <summary>How often buffered rows are pushed to disk.</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromSeconds(1);

    public static TrialFileOptions None { get; } = new() { Csv = false, Json = false, TensorBoard = false };
}

/// <summary>
/// Writes the files Ray Tune users read with their usual tools, in each trial's directory: params.json, progress.csv,
/// result.json and TensorBoard events. The controller only queues what happened (results are immutable); a dedicated
/// logger thread formats and writes, in order, buffered and flushed on an interval and when a trial stops. When a trial
/// resumes from a checkpoint older than its last result, rows after the checkpoint are removed so each file tells the
/// trial's actual history.
/// </summary>
public sealed class TrialFileLogger : ITrialCallback, IDisposable
{
    private static readonly System.Buffers.SearchValues<char> CsvSpecial = System.Buffers.SearchValues.Create(",\"\n\r");

    public const string ParamsFile = "params.json";
    public const string ProgressFile = "progress.csv";
    public const string ResultFile = "result.json";

    /// <summary>Begins the TensorBoard tag of each result value.</summary>
    public const string ScalarPrefix = "torchtrials/";

    private static readonly Encoding NoBom = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);

    private readonly TrialFileOptions _options;
    private readonly ILogger _logger;
    private readonly Dictionary<Trial, Files> _open = new();
    private readonly Dictionary<Trial, long> _lastLogged = new();
    private readonly TensorBoardHParams? _hparams;
    private readonly TimeProvider _time;
    private long _lastFlush = Stopwatch.GetTimestamp();

    public TrialFileLogger(TrialFileOptions? options = null, ILogger? logger = null, TimeProvider? time = null)
    {
        _options = options ?? new TrialFileOptions();
        _logger = logger ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        _hparams = _options.TensorBoard ? new TensorBoardHParams(_time) : null;
        _thread = new Thread(Run) { IsBackground = true, Name = "torchtrials-files" };
        _thread.Start();
    }

    private readonly Queue<Action> _work = new();
    private readonly System.Buffers.ArrayBufferWriter<byte> _jsonBuffer = new(1024);
    private readonly Utf8JsonWriter _jsonWriter = new(new System.Buffers.ArrayBufferWriter<byte>());
    private readonly Thread _thread;
    private bool _stopping;
    private int _pending;

    public void OnTrialStart(int iteration, IReadOnlyList<Trial> trials, Trial trial)
    {
        if (trial.LogDirectory is null) return;
        long resumeAt = trial.Checkpoint?.TrainingIteration ?? 0;
        var config = trial.Config;
        Post(() => Started(trial, resumeAt, config));
    }

    public void OnTrialResult(int iteration, IReadOnlyList<Trial> trials, Trial trial, TrialResult result)
    {
        if (trial.LogDirectory is null) return;
        var config = trial.Config;
        Post(() => Write(trial, result, config));
    }

    /// <summary>
    /// Wakes the logger thread once enough work has queued; below that it writes on its flush interval, so a slow sweep
    /// costs one wake-up a second and a fast one a wake-up per batch, never one per result.
    /// </summary>
    public void OnStepEnd(int iteration, IReadOnlyList<Trial> trials)
    {
        if (Volatile.Read(ref _pending) >= 512) Signal();
    }

    public void OnTrialStatusChanged(Trial trial, TrialStatus previous, string reason)
    {
        var status = trial.Status;
        if (status is TrialStatus.Terminated or TrialStatus.Error && previous is not (TrialStatus.Terminated or TrialStatus.Error))
            Post(() => Ended(trial, previous, status));
        if (previous == TrialStatus.Running && status != TrialStatus.Running) Post(() => Close(trial));
    }

    public void OnExperimentEnd(IReadOnlyList<Trial> trials)
    {
        Post(() => WriteSafely(() => _hparams?.ExperimentEnded(), "the TensorBoard experiment record"));
        Flush();
    }

    /// <summary>
    /// Writes TensorBoard's experiment record for the HParams dashboard (<see cref="TensorBoardExperiment"/>); a run calls it
    /// once, before its first trial. Nothing when TensorBoard files are off.
    /// </summary>
    public void WriteExperiment(TensorBoardExperiment experiment) =>
        Post(() => WriteSafely(() => _hparams?.ExperimentStarted(experiment), "the TensorBoard experiment record"));

    /// <summary>The store is the source of truth: on resume each trial's files are completed or rebuilt to match its history.</summary>
    public void OnTrialResumed(Trial trial, IReadOnlyList<TrialResult> history)
    {
        if (trial.LogDirectory is null) return;
        var config = trial.Config;
        var tag = trial.ExperimentTag;
        Post(() => Reconcile(trial, history, config, tag));
    }

    /// <summary>Waits until everything queued so far is written and pushed to disk.</summary>
    public void Flush()
    {
        var done = new ManualResetEventSlim(false);
        Post(() =>
        {
            FlushFiles();
            done.Set();
        });
        Signal();
        done.Wait();
        done.Dispose();
    }

    public void Dispose()
    {
        lock (_work)
        {
            if (_stopping) return;
            _stopping = true;
            Monitor.Pulse(_work);
        }
        _thread.Join();
    }

    private void Post(Action action)
    {
        lock (_work)
        {
            if (_stopping) return;
            _work.Enqueue(action);
            _pending++;
        }
    }

    private void Signal()
    {
        lock (_work)
        {
            if (_work.Count > 0) Monitor.Pulse(_work);
        }
    }

    private void Run()
    {
        while (true)
        {
            Action? action = null;
            lock (_work)
            {
                while (_work.Count == 0 && !_stopping)
                {
                    if (!Monitor.Wait(_work, _options.FlushInterval)) break;
                }
                if (_work.Count > 0)
                {
                    action = _work.Dequeue();
                    _pending--;
                }
                else if (_stopping) break;
            }
            if (action is null)
            {
                FlushFiles();
                continue;
            }
            action();
            if (Stopwatch.GetElapsedTime(_lastFlush) >= _options.FlushInterval) FlushFiles();
        }
        FlushFiles();
        foreach (var trial in _open.Keys.ToList()) Close(trial);
    }

    private void Started(Trial trial, long resumeAt, TrialConfig config)
    {
        try
        {
            if (_lastLogged.TryGetValue(trial, out var last) ? last > resumeAt : ExistingRowsBeyond(trial, resumeAt))
            {
                Close(trial);
                Truncate(trial, resumeAt);
            }
            _lastLogged[trial] = Math.Min(_lastLogged.GetValueOrDefault(trial, resumeAt), resumeAt);
            Directory.CreateDirectory(trial.LogDirectory!);
            File.WriteAllText(Path.Combine(trial.LogDirectory!, ParamsFile), config.ToJsonObject().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            if (_hparams is not null) _hparams.SessionStarted(trial, EventsOf(trial), config);
        }
        catch (IOException e)
        {
            _logger.LogWarning(e, "Could not prepare the files of trial {TrialId}", trial.Id);
        }
    }

    private void Write(Trial trial, TrialResult result, TrialConfig config)
    {
        try
        {
            var files = Open(trial, result, config);
            if (files.Csv is not null) WriteCsvRow(files.Csv, files.Columns!, result, config);
            if (files.Json is not null)
            {
                // Into a reusable buffer, then into the buffered file: Utf8JsonWriter.Flush on a stream would flush the file too.
                _jsonBuffer.ResetWrittenCount();
                _jsonWriter.Reset(_jsonBuffer);
                ResultJson.Write(_jsonWriter, result, config);
                _jsonWriter.Flush();
                files.Json.Write(_jsonBuffer.WrittenSpan);
                files.Json.WriteByte((byte)'\n');
            }
            if (files.Events is not null)
            {
                files.Events.AddScalars(result.TrainingIteration, result.Timestamp, Scalars(result));
                foreach (var (key, value) in result.Metrics)
                    if (value is double or long) _hparams!.SawMetric(key);
            }
            _lastLogged[trial] = result.TrainingIteration;
        }
        catch (IOException e)
        {
            _logger.LogWarning(e, "Could not write the result of trial {TrialId}", trial.Id);
        }
    }

    private void FlushFiles()
    {
        _lastFlush = Stopwatch.GetTimestamp();
        foreach (var files in _open.Values) files.Flush();
    }

    private Files Open(Trial trial, TrialResult first, TrialConfig config)
    {
        if (_open.TryGetValue(trial, out var files) && files.RowsOpen) return files;
        var dir = trial.LogDirectory!;
        Directory.CreateDirectory(dir);
        files ??= new Files();
        files.RowsOpen = true;
        if (_options.Csv)
        {
            var path = Path.Combine(dir, ProgressFile);
            bool exists = File.Exists(path) && new FileInfo(path).Length > 0;
            files.Columns = exists ? ReadHeader(path) : Columns(first, config);
            files.Csv = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, 1 << 16), NoBom);
            if (!exists) files.Csv.WriteLine(string.Join(",", files.Columns.Select(Csv)));
        }
        if (_options.Json)
        {
            files.Json = new FileStream(Path.Combine(dir, ResultFile), FileMode.Append, FileAccess.Write, FileShare.Read, 1 << 16);
        }
        if (_options.TensorBoard)
            files.Events ??= new TfEventWriter(dir);
        _open[trial] = files;
        return files;
    }

    /// <summary>The trial's open event file, opened (alone) when it is not.</summary>
    private TfEventWriter EventsOf(Trial trial)
    {
        if (!_open.TryGetValue(trial, out var files)) _open[trial] = files = new Files();
        return files.Events ??= new TfEventWriter(trial.LogDirectory!);
    }

    /// <summary>A trial that ran in this process (or was running or paused when it ended) gets its session end record.</summary>
    private void Ended(Trial trial, TrialStatus previous, TrialStatus status)
    {
        if (_hparams is null || trial.LogDirectory is null) return;
        if (!_hparams.HasSession(trial) && previous is not (TrialStatus.Running or TrialStatus.Paused)) return;
        WriteSafely(() => _hparams.SessionEnded(EventsOf(trial), status), $"the TensorBoard session end of trial {trial.Id}");
    }

    private void WriteSafely(Action write, string what)
    {
        try
        {
            write();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(e, "Could not write {What}", what);
        }
    }

    private void Close(Trial trial)
    {
        if (!_open.Remove(trial, out var files)) return;
        try
        {
            files.Dispose();
        }
        catch (IOException e)
        {
            _logger.LogWarning(e, "Could not close the files of trial {TrialId}", trial.Id);
        }
    }

    /// <summary>
    /// Keeps the longest run of complete rows that agree with <paramref name="history"/> (same iterations, in order) and
    /// writes the stored rows after it: rows a killed process never flushed come back, rows past the store's history
    /// (never committed, or rolled back) and a torn last line go. Each file is replaced by rename, so it is never half-written.
    /// </summary>
    private void Reconcile(Trial trial, IReadOnlyList<TrialResult> history, TrialConfig config, string tag)
    {
        try
        {
            Close(trial);
            var dir = trial.LogDirectory!;
            var rows = history.Select(r => r with { TrialId = trial.Id, ExperimentTag = tag }).ToList();
            if (_options.Json) ReconcileJson(Path.Combine(dir, ResultFile), rows, config);
            if (_options.Csv) ReconcileCsv(Path.Combine(dir, ProgressFile), rows, config);
            _lastLogged[trial] = rows.Count > 0 ? rows[^1].TrainingIteration : 0;
        }
        catch (IOException e)
        {
            _logger.LogWarning(e, "Could not bring the files of trial {TrialId} in line with the store", trial.Id);
        }
    }

    private void ReconcileJson(string path, List<TrialResult> history, TrialConfig config)
    {
        var lines = CompleteLines(path);
        if (lines is null && history.Count == 0) return;
        lines ??= new List<string>();
        int keep = 0;
        while (keep < lines.Count && keep < history.Count && IterationOf(lines[keep]) == history[keep].TrainingIteration) keep++;
        if (keep == lines.Count && keep == history.Count) return;
        Replace(path, stream =>
        {
            for (int i = 0; i < keep; i++)
            {
                stream.Write(NoBom.GetBytes(lines[i]));
                stream.WriteByte((byte)'\n');
            }
            for (int i = keep; i < history.Count; i++)
            {
                _jsonBuffer.ResetWrittenCount();
                _jsonWriter.Reset(_jsonBuffer);
                ResultJson.Write(_jsonWriter, history[i], config);
                _jsonWriter.Flush();
                stream.Write(_jsonBuffer.WrittenSpan);
                stream.WriteByte((byte)'\n');
            }
        });
    }

    private static void ReconcileCsv(string path, List<TrialResult> history, TrialConfig config)
    {
        var lines = CompleteLines(path);
        if ((lines is null || lines.Count == 0) && history.Count == 0) return;
        string[] columns = lines is { Count: > 0 } ? SplitCsv(lines[0]) : Columns(history[0], config);
        int column = Array.IndexOf(columns, TrialResult.TrainingIterationKey);
        var rows = lines is { Count: > 0 } ? lines.Skip(1).ToList() : new List<string>();
        int keep = 0;
        while (column >= 0 && keep < rows.Count && keep < history.Count
               && SplitCsv(rows[keep]) is { } cells && cells.Length == columns.Length
               && long.TryParse(cells[column], NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) && i == history[keep].TrainingIteration)
            keep++;
        if (lines is { Count: > 0 } && keep == rows.Count && keep == history.Count) return;
        Replace(path, stream =>
        {
            using var writer = new StreamWriter(stream, NoBom, leaveOpen: true);
            writer.WriteLine(string.Join(",", columns.Select(Csv)));
            for (int r = 0; r < keep; r++) writer.WriteLine(rows[r]);
            for (int r = keep; r < history.Count; r++) WriteCsvRow(writer, columns, history[r], config);
        });
    }

    /// <summary>The file's lines that end in a newline (a torn last line is left out); null when there is no file.</summary>
    private static List<string>? CompleteLines(string path)
    {
        if (!File.Exists(path)) return null;
        var text = File.ReadAllText(path);
        var lines = text.Split('\n').ToList();
        lines.RemoveAt(lines.Count - 1);
        return lines.Select(l => l.TrimEnd('\r')).ToList();
    }

    private static void Replace(string path, Action<FileStream> write)
    {
        var temp = path + ".tmp-" + Environment.ProcessId;
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            write(stream);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    private static bool ExistingRowsBeyond(Trial trial, long iteration)
    {
        if (!Directory.Exists(trial.LogDirectory)) return false;
        var path = Path.Combine(trial.LogDirectory!, ResultFile);
        if (!File.Exists(path)) return false;
        return File.ReadLines(path).Any(line => IterationOf(line) > iteration);
    }

    private static void Truncate(Trial trial, long keepThrough)
    {
        var json = Path.Combine(trial.LogDirectory!, ResultFile);
        if (File.Exists(json))
            File.WriteAllLines(json, File.ReadAllLines(json).Where(line => IterationOf(line) is { } i && i <= keepThrough));
        var csv = Path.Combine(trial.LogDirectory!, ProgressFile);
        if (File.Exists(csv))
        {
            var lines = File.ReadAllLines(csv);
            if (lines.Length == 0) return;
            int column = Array.IndexOf(SplitCsv(lines[0]), TrialResult.TrainingIterationKey);
            File.WriteAllLines(csv, lines.Take(1).Concat(lines.Skip(1).Where(line =>
                column >= 0 && long.TryParse(SplitCsv(line).ElementAtOrDefault(column), NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) && i <= keepThrough)));
        }
    }

    private static long? IterationOf(string jsonLine)
    {
        if (string.IsNullOrWhiteSpace(jsonLine)) return null;
        try
        {
            using var doc = JsonDocument.Parse(jsonLine);
            return doc.RootElement.TryGetProperty(TrialResult.TrainingIterationKey, out var v) ? v.GetInt64() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string[] Columns(TrialResult result, TrialConfig config) =>
        result.Metrics.Select(m => m.Key)
            .Concat(TrialResult.AutoKeys.Where(k => result.TryGet(k, out _)))
            .Concat(config.Keys.Select(k => "config/" + k))
            .Distinct(StringComparer.Ordinal)
            .ToArray();

    private static void WriteCsvRow(StreamWriter writer, string[] columns, TrialResult result, TrialConfig config)
    {
        for (int i = 0; i < columns.Length; i++)
        {
            if (i > 0) writer.Write(',');
            var column = columns[i];
            object? value = column.StartsWith("config/", StringComparison.Ordinal)
                ? (config.TryGetValue(column[7..], out var c) ? c : null)
                : result[column];
            switch (value)
            {
                case null: break;
                case double d: writer.Write(d.ToString("R", CultureInfo.InvariantCulture)); break;
                case long l: writer.Write(l); break;
                case bool b: writer.Write(b ? "True" : "False"); break;
                default: writer.Write(Csv(TrialConfig.Format(value))); break;
            }
        }
        writer.WriteLine();
    }

    private static IEnumerable<KeyValuePair<string, double>> Scalars(TrialResult result)
    {
        foreach (var (key, value) in result.Metrics)
        {
            if (value is double d) yield return new(ScalarPrefix + key, d);
            else if (value is long l) yield return new(ScalarPrefix + key, l);
        }
        yield return new(ScalarPrefix + TrialResult.TimeTotalKey, result.TimeTotalS);
        yield return new(ScalarPrefix + TrialResult.TimeThisIterKey, result.TimeThisIterS);
    }

    private static string Csv(string text) =>
        text.AsSpan().IndexOfAny(CsvSpecial) < 0 ? text : "\"" + text.Replace("\"", "\"\"") + "\"";

    private static string[] ReadHeader(string path) => SplitCsv(File.ReadLines(path).First());

    private static string[] SplitCsv(string line)
    {
        var cells = new List<string>();
        var cell = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { cell.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else cell.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { cells.Add(cell.ToString()); cell.Clear(); }
            else cell.Append(c);
        }
        cells.Add(cell.ToString());
        return cells.ToArray();
    }

    private sealed class Files : IDisposable
    {
        /// <summary>True once the first result opened progress.csv and result.json (the event file may open before).</summary>
        public bool RowsOpen { get; set; }

        public string[]? Columns { get; set; }
        public StreamWriter? Csv { get; set; }
        public FileStream? Json { get; set; }
        public TfEventWriter? Events { get; set; }

        public void Flush()
        {
            Csv?.Flush();
            Json?.Flush();
            Events?.Flush();
        }

        public void Dispose()
        {
            Csv?.Dispose();
            Json?.Dispose();
            Events?.Dispose();
        }
    }
}
