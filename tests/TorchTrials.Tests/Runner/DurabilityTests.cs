using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Store;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Tests.Runner;

/// <summary>
/// DESIGN.md's durability rules as scenarios: a checkpoint is deleted only after the store committed its replacement, a
/// trial's stored results form one history, the per-trial files follow the store, and a pause never strands a save.
/// </summary>
public class DurabilityTests
{
    private static Trial Fake(int stopAt, int checkpointFreq = 0, int? keep = null, int maxFailures = 0) =>
        new("__fake", stop: Stop.AfterIterations(stopAt), checkpoint: new CheckpointConfig { Frequency = checkpointFreq, NumToKeep = keep }, maxFailures: maxFailures);

    /// <summary>An inline controller on a SQLite store that commits only when told (no periodic commit).</summary>
    private static TrialController Controller(string dir, SqliteExperimentStore store, TrainableRegistry? registry = null, IEnumerable<ITrialCallback>? callbacks = null)
    {
        registry ??= TrainableRegistry.CreateDefault();
        var executor = new InlineTrialExecutor(new DeviceSlotAllocator(DeviceInventory.Simulated(1)), registry,
            new ExecutorOptions { SpillDirectory = Path.Combine(dir, "spill") });
        return new TrialController(executor, registry, callbacks: callbacks, store: store, options: new ControllerOptions
        {
            ExperimentDirectory = dir,
            EventWait = TimeSpan.Zero,
            StoreFlushInterval = TimeSpan.FromHours(1),
        });
    }

    private static void StepUntil(TrialController controller, Func<bool> condition, int maxSteps = 200)
    {
        for (int i = 0; i < maxSteps && !condition(); i++) controller.Step();
        Assert.True(condition(), "the condition was not reached within the step budget");
    }

    /// <summary>The checkpoint index as another process (a resume after kill -9) would read it: committed rows only.</summary>
    private static List<string> CommittedCheckpoints(string dir)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dir, SqliteExperimentStore.FileName)};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT path FROM checkpoints ORDER BY iteration";
        using var reader = cmd.ExecuteReader();
        var paths = new List<string>();
        while (reader.Read()) paths.Add(reader.GetString(0));
        return paths;
    }

    [Fact]
    public void A_checkpoint_is_deleted_only_after_the_store_committed_its_replacement()
    {
        using var dir = new TempDir();
        var store = SqliteExperimentStore.Open(dir.Path);
        using var controller = Controller(dir.Path, store);
        var trial = Fake(stopAt: 6, checkpointFreq: 1, keep: 1);
        controller.AddTrial(trial);

        // Given checkpoint 1 saved and committed,
        StepUntil(controller, () => trial.Checkpoints.NewestPersistent?.TrainingIteration == 1);
        store.Flush();
        var first = Assert.Single(CommittedCheckpoints(dir.Path));

        // when checkpoint 2 replaces it but the store has not committed that yet (a kill here must still find a checkpoint),
        StepUntil(controller, () => trial.Checkpoints.NewestPersistent?.TrainingIteration == 2);
        Assert.Equal(new[] { first }, CommittedCheckpoints(dir.Path));

        // then the checkpoint the committed index names is still complete on disk,
        Assert.Equal(1, PersistentCheckpoint.Open(first).TrainingIteration);

        // and once the replacement is committed, retention deletes it and the index names only the new one.
        store.Flush();
        var second = Assert.Single(CommittedCheckpoints(dir.Path));
        Assert.Equal(2, PersistentCheckpoint.Open(second).TrainingIteration);
        Assert.False(Directory.Exists(first));
    }

    [Fact]
    public void A_trial_restarted_from_scratch_after_a_failure_keeps_one_history_in_the_store_and_its_files()
    {
        // Given a trainable whose first attempt fails at iteration 3, with max_failures 1 and no checkpoint,
        int attempts = 0;
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("flaky", Flaky);
        IEnumerable<Metrics> Flaky(TrialConfig config, FunctionContext context)
        {
            int attempt = Interlocked.Increment(ref attempts);
            for (int i = 1; i <= 5; i++)
            {
                if (attempt == 1 && i == 3) throw new InvalidOperationException("the first attempt fails at iteration 3");
                yield return new Metrics { { "score", attempt * 100.0 + i } };
            }
        }
        using var dir = new TempDir();
        var files = new TrialFileLogger();
        var trial = new Trial("flaky", stop: Stop.AfterIterations(5), maxFailures: 1);
        using (var h = new Harness(cpus: 1, directory: dir.Path, sqlite: true, registry: registry, callbacks: new[] { files }))
        {
            // when it fails, restarts from scratch and finishes,
            h.Add(trial);
            h.RunToEnd();
            files.Dispose();
            Assert.Equal(TrialStatus.Terminated, trial.Status);
            Assert.Equal(1, trial.NumFailures);

            // then the store holds only the second attempt (iterations 1..5, scores 201..205), and so do the files.
            var expected = Enumerable.Range(1, 5).Select(i => ((long)i, 200.0 + i)).ToList();
            var stored = ((SqliteExperimentStore)h.Store).ResultsOf(trial.Id);
            Assert.Equal(expected, stored.Select(r => (r.TrainingIteration, Convert.ToDouble(r["score"], CultureInfo.InvariantCulture))));
            Assert.Equal(expected, JsonRows(trial.LogDirectory!).Select(r => (r.Iteration, r.Values["score"])));
            Assert.Equal(expected, CsvRows(trial.LogDirectory!).Select(r => (r.Iteration, r.Values["score"])));
        }
    }

    [Fact]
    public void A_trial_whose_checkpoint_cannot_be_restored_restarts_from_scratch_with_one_history()
    {
        // Given a trial that fails at iteration 2 unless restored, with a checkpoint each iteration and max_failures 3,
        using var dir = new TempDir();
        var trial = new Trial("__fake", TrialConfig.From(("mock_error", true)), stop: Stop.AfterIterations(4),
            checkpoint: new CheckpointConfig { Frequency = 1 }, maxFailures: 3);
        using var h = new Harness(cpus: 1, directory: dir.Path, sqlite: true);
        h.Add(trial);
        StepUntil(h.Controller, () => trial.NumFailures == 1);

        // when the checkpoint it would recover from is damaged (the restore fails, so it starts again from scratch,
        // fails once more and then recovers from its new checkpoint),
        var checkpoint = (PersistentCheckpoint)trial.Checkpoint!;
        File.WriteAllBytes(Path.Combine(checkpoint.Directory, PersistentCheckpoint.TensorFile), new byte[] { 1, 2, 3 });
        h.RunToEnd(maxSteps: 200);

        // then the store holds one history, 1..4, not the attempts' overlapping rows.
        Assert.Equal(TrialStatus.Terminated, trial.Status);
        Assert.Equal(3, trial.NumFailures);
        Assert.Equal(new long[] { 1, 2, 3, 4 }, ((SqliteExperimentStore)h.Store).ResultsOf(trial.Id).Select(r => r.TrainingIteration));
    }

    [Fact]
    public void Pausing_a_trial_while_its_save_is_in_flight_lets_it_finish_after_unpausing()
    {
        using var h = new Harness(cpus: 1);
        var trial = Fake(stopAt: 5, checkpointFreq: 2);
        h.Add(trial);

        // Given a persistent save in flight (iteration 2),
        StepUntil(h.Controller, () => trial.IsSaving);

        // when the trial is paused (an API user or a custom scheduler) and unpaused,
        h.Controller.PauseTrial(trial);
        Assert.Equal(TrialStatus.Paused, trial.Status);
        h.Controller.UnpauseTrial(trial);

        // then it trains on to its end instead of waiting forever for the dropped save.
        h.RunToEnd(maxSteps: 200);
        Assert.Equal(TrialStatus.Terminated, trial.Status);
        Assert.Equal(5, trial.LastResult!.TrainingIteration);
    }

    [Fact]
    public void Resume_completes_per_trial_files_that_lost_rows_from_the_store()
    {
        using var dir = new TempDir();
        Trial[] trials;
        var files = new TrialFileLogger();
        using (var h = new Harness(cpus: 2, directory: dir.Path, sqlite: true, callbacks: new[] { files }))
        {
            trials = new[] { Fake(stopAt: 4), Fake(stopAt: 4) };
            h.Add(trials);
            h.RunToEnd();
        }
        files.Dispose();

        // Given what kill -9 leaves: one finished trial with 0-byte files, another with a torn last line and a short CSV,
        var (empty, torn) = (trials[0].LogDirectory!, trials[1].LogDirectory!);
        File.WriteAllText(Path.Combine(empty, TrialFileLogger.ProgressFile), "");
        File.WriteAllText(Path.Combine(empty, TrialFileLogger.ResultFile), "");
        var json = File.ReadAllLines(Path.Combine(torn, TrialFileLogger.ResultFile));
        File.WriteAllText(Path.Combine(torn, TrialFileLogger.ResultFile), json[0] + "\n" + json[1][..(json[1].Length / 2)]);
        var csv = File.ReadAllLines(Path.Combine(torn, TrialFileLogger.ProgressFile));
        File.WriteAllLines(Path.Combine(torn, TrialFileLogger.ProgressFile), csv.Take(2));

        // when the experiment is resumed,
        var registry = TrainableRegistry.CreateDefault();
        var resumedFiles = new TrialFileLogger();
        using (var store = SqliteExperimentStore.Open(dir.Path))
        using (var resumed = TrialController.Resume(store, new InlineTrialExecutor(new DeviceSlotAllocator(DeviceInventory.Simulated(2)), registry), registry,
                   callbacks: new[] { resumedFiles }, options: new ControllerOptions { EventWait = TimeSpan.Zero }))
        {
            resumedFiles.Dispose();

            // then both trials' result.json and progress.csv match the store row for row.
            foreach (var trial in resumed.Trials)
            {
                var stored = store.ResultsOf(trial.Id).Select(r => (r.TrainingIteration, Convert.ToDouble(r[TrialResult.TimestepsTotalKey], CultureInfo.InvariantCulture))).ToList();
                Assert.Equal(Enumerable.Range(1, 4).Select(i => (long)i), stored.Select(s => s.TrainingIteration));
                Assert.Equal(stored, JsonRows(trial.LogDirectory!).Select(r => (r.Iteration, r.Values[TrialResult.TimestepsTotalKey])));
                Assert.Equal(stored, CsvRows(trial.LogDirectory!).Select(r => (r.Iteration, r.Values[TrialResult.TimestepsTotalKey])));
            }
        }
    }

    [Fact]
    public void Resume_skips_a_damaged_checkpoint_with_a_warning_naming_it_and_removes_half_written_ones()
    {
        using var dir = new TempDir();
        var trial = Fake(stopAt: 8, checkpointFreq: 2);
        using (var h = new Harness(cpus: 1, directory: dir.Path, sqlite: true))
        {
            h.Add(trial);
            StepUntil(h.Controller, () => trial.Checkpoints.NewestPersistent?.TrainingIteration == 4);
            h.Controller.Checkpoint(force: true);
        }

        // Given the newest checkpoint damaged (its tensor file cut short) and a half-written one beside it,
        var newest = Path.Combine(trial.LogDirectory!, "checkpoint_000004");
        var tensors = Path.Combine(newest, PersistentCheckpoint.TensorFile);
        File.WriteAllBytes(tensors, File.ReadAllBytes(tensors)[..5]);
        var halfWritten = Path.Combine(trial.LogDirectory!, "checkpoint_000006.tmp-424242");
        Directory.CreateDirectory(halfWritten);
        File.WriteAllText(Path.Combine(halfWritten, PersistentCheckpoint.TensorFile), "torn");

        // when the experiment resumes,
        var warnings = new RecordingLogger();
        var registry = TrainableRegistry.CreateDefault();
        using var store = SqliteExperimentStore.Open(dir.Path);
        using var resumed = TrialController.Resume(store, new InlineTrialExecutor(new DeviceSlotAllocator(DeviceInventory.Simulated(1)), registry), registry,
            options: new ControllerOptions { EventWait = TimeSpan.Zero }, logger: warnings);

        // then a warning names the damaged checkpoint, the half-written folder is gone, and the trial continues from
        // checkpoint 2 to its end with one history.
        Assert.Contains(warnings.Warnings, w => w.Contains(newest, StringComparison.Ordinal));
        Assert.False(Directory.Exists(halfWritten));
        var resumedTrial = resumed.Trials.Single();
        Assert.Equal(2, resumedTrial.Checkpoint!.TrainingIteration);
        for (int i = 0; i < 200 && !resumed.IsFinished; i++) resumed.Step();
        Assert.Equal(TrialStatus.Terminated, resumedTrial.Status);
        Assert.Equal(Enumerable.Range(1, 8).Select(i => (long)i), store.ResultsOf(resumedTrial.Id).Select(r => r.TrainingIteration));
    }

    private sealed record Row(long Iteration, Dictionary<string, double> Values);

    private static List<Row> JsonRows(string trialDir) =>
        File.ReadAllLines(Path.Combine(trialDir, TrialFileLogger.ResultFile)).Select(line =>
        {
            using var doc = JsonDocument.Parse(line);
            var values = doc.RootElement.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Number)
                .ToDictionary(p => p.Name, p => p.Value.GetDouble());
            return new Row((long)values[TrialResult.TrainingIterationKey], values);
        }).ToList();

    private static List<Row> CsvRows(string trialDir)
    {
        var lines = File.ReadAllLines(Path.Combine(trialDir, TrialFileLogger.ProgressFile));
        var header = lines[0].Split(',');
        return lines.Skip(1).Select(line =>
        {
            var cells = line.Split(',');
            Assert.Equal(header.Length, cells.Length);
            var values = new Dictionary<string, double>();
            for (int i = 0; i < header.Length; i++)
                if (double.TryParse(cells[i], NumberStyles.Float, CultureInfo.InvariantCulture, out var v)) values[header[i]] = v;
            return new Row((long)values[TrialResult.TrainingIterationKey], values);
        }).ToList();
    }

    /// <summary>Keeps the warnings logged to it.</summary>
    private sealed class RecordingLogger : ILogger
    {
        public List<string> Warnings { get; } = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning) lock (Warnings) Warnings.Add(formatter(state, exception));
        }
    }
}
