using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchTrials.Runner;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Store;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Tests.Runner;

public class StoreAndLoggerTests
{
    [Fact]
    public void Nothing_reaches_the_database_until_a_flush_commits_it_all()
    {
        using var dir = new TempDir();
        var trial = new Trial("__fake", trialId: "a");
        var result = new TrialResult { Metrics = new List<KeyValuePair<string, object>> { new("x", 1.0) }, TrainingIteration = 1, TrialId = "a" };
        using (var store = SqliteExperimentStore.Open(dir.Path))
        {
            store.TrialAdded(trial);
            store.ResultReported(trial, result);
            Assert.Equal(2, store.PendingWrites);
            Assert.Equal(0, CommittedResults(dir.Path));
            store.Flush();
            Assert.Equal(1, CommittedResults(dir.Path));
            store.ResultReported(trial, result with { TrainingIteration = 2 });
        }
        using var reopened = SqliteExperimentStore.Open(dir.Path);
        Assert.Equal(2, reopened.Count("results"));
        Assert.Equal("a", reopened.Load()!.Trials.Single().Id);
    }

    /// <summary>What another process would see: rows committed to the database file.</summary>
    private static long CommittedResults(string directory)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(directory, SqliteExperimentStore.FileName)};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM results";
        return (long)cmd.ExecuteScalar()!;
    }

    [Fact]
    public void Each_kind_of_write_lands_in_its_own_table_and_columns()
    {
        // Given one write of every kind, a checkpoint saved and one saved then retired
        using var dir = new TempDir();
        var trial = new Trial("__fake", trialId: "a");
        using var state = new TrainableState();
        var kept = PersistentCheckpoint.Write(Path.Combine(dir.Path, "ck1"), state, null);
        var retired = PersistentCheckpoint.Write(Path.Combine(dir.Path, "ck2"), state, null);
        using (var store = SqliteExperimentStore.Open(dir.Path))
        {
            store.TrialAdded(trial);
            store.TrialChanged(trial, TrialStatus.Paused, "resumed");
            store.DecisionMade(trial, 3, "STOP", "AshaScheduler");
            store.CheckpointSaved(trial, kept);
            store.CheckpointSaved(trial, retired);
            store.CheckpointRetired(trial, retired);
            store.SaveExperimentState(new JsonObject { ["metric"] = "loss" });
        }

        // Then each row holds its values in the columns named for them, and the retired checkpoint's files are gone
        Assert.Equal(new[] { "a|Pending" }, Rows(dir.Path, "SELECT trial_id, status FROM trials"));
        Assert.Equal(new[] { "a|Paused|Pending|resumed" }, Rows(dir.Path, "SELECT trial_id, previous, status, reason FROM status_changes"));
        Assert.Equal(new[] { "a|3|STOP|AshaScheduler" }, Rows(dir.Path, "SELECT trial_id, iteration, decision, source FROM decisions"));
        Assert.Equal(new[] { $"a|{kept.Directory}|0" }, Rows(dir.Path, "SELECT trial_id, path, iteration FROM checkpoints"));
        Assert.Equal(new[] { "metric|\"loss\"" }, Rows(dir.Path, "SELECT key, value FROM experiment"));
        Assert.True(Directory.Exists(kept.Directory));
        Assert.False(Directory.Exists(retired.Directory));
    }

    private static List<string> Rows(string directory, string sql)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(directory, SqliteExperimentStore.FileName)};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        using var reader = cmd.ExecuteReader();
        var rows = new List<string>();
        while (reader.Read()) rows.Add(string.Join("|", Enumerable.Range(0, reader.FieldCount).Select(i => Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        return rows;
    }

    [Fact]
    public void A_rollback_removes_results_after_the_restored_checkpoint()
    {
        using var dir = new TempDir();
        var trial = new Trial("__fake", trialId: "a");
        using var store = SqliteExperimentStore.Open(dir.Path);
        store.TrialAdded(trial);
        for (int i = 1; i <= 5; i++)
            store.ResultReported(trial, new TrialResult { Metrics = Array.Empty<KeyValuePair<string, object>>(), TrainingIteration = i });
        store.ResultsRolledBack(trial, 3);
        store.ResultReported(trial, new TrialResult { Metrics = Array.Empty<KeyValuePair<string, object>>(), TrainingIteration = 4 });
        store.Flush();
        Assert.Equal(new long[] { 1, 2, 3, 4 }, store.ResultsOf("a").Select(r => r.TrainingIteration));
    }

    [Fact]
    public void A_run_writes_progress_csv_result_json_params_and_tensorboard_events_per_trial()
    {
        using var dir = new TempDir();
        var logger = new TrialFileLogger();
        using (var h = new Harness(cpus: 1, directory: dir.Path, callbacks: new[] { logger }))
        {
            var trial = new Trial("__fake", TrialConfig.From(("lr", 0.1)), stop: Stop.AfterIterations(3));
            h.Add(trial);
            h.RunToEnd();
            logger.Dispose();

            var csv = File.ReadAllLines(Path.Combine(trial.LogDirectory!, TrialFileLogger.ProgressFile));
            Assert.Equal(4, csv.Length);
            Assert.StartsWith("episode_reward_mean,episode_len_mean,timesteps_this_iter,training_iteration", csv[0]);
            Assert.Contains("config/lr", csv[0]);

            var json = File.ReadAllLines(Path.Combine(trial.LogDirectory!, TrialFileLogger.ResultFile));
            Assert.Equal(3, json.Length);
            using var last = JsonDocument.Parse(json[^1]);
            Assert.Equal(3, last.RootElement.GetProperty("training_iteration").GetInt64());
            Assert.True(last.RootElement.GetProperty("done").GetBoolean());
            Assert.Equal(0.1, last.RootElement.GetProperty("config").GetProperty("lr").GetDouble());

            Assert.Equal(0.1, JsonDocument.Parse(File.ReadAllText(Path.Combine(trial.LogDirectory!, TrialFileLogger.ParamsFile))).RootElement.GetProperty("lr").GetDouble());

            var events = Directory.GetFiles(trial.LogDirectory!, "events.out.tfevents.*").Single();
            var records = ReadTfRecords(File.ReadAllBytes(events));
            // file_version, the HParams session start, one event per result, the session end (TensorBoardHParamsTests decodes them)
            Assert.Equal(6, records.Count);
            Assert.Contains("brain.Event:2", Encoding.UTF8.GetString(records[0]));
            Assert.Contains("_hparams_/session_start_info", Encoding.UTF8.GetString(records[1]));
            Assert.Contains("torchtrials/episode_reward_mean", Encoding.UTF8.GetString(records[2]));
            Assert.Contains("_hparams_/session_end_info", Encoding.UTF8.GetString(records[5]));
        }
    }

    /// <summary>An independent TFRecord reader: checks both masked CRC32C values of every record.</summary>
    private static List<byte[]> ReadTfRecords(byte[] file)
    {
        var records = new List<byte[]>();
        int at = 0;
        while (at < file.Length)
        {
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(at));
            Assert.Equal(TfEventWriter.MaskedCrc(file.AsSpan(at, 8)), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 8)));
            var data = file.AsSpan(at + 12, (int)length).ToArray();
            Assert.Equal(TfEventWriter.MaskedCrc(data), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 12 + (int)length)));
            records.Add(data);
            at += 12 + (int)length + 4;
        }
        return records;
    }

    [Fact]
    public void Crc32c_matches_the_published_check_value()
    {
        Assert.Equal(0xE3069283u, TfEventWriter.Crc32C(Encoding.ASCII.GetBytes("123456789")));
    }

    [Fact]
    public void Result_grids_render_as_html_through_the_notebook_convention()
    {
        var grid = new ResultGrid(new[]
        {
            new TrialSummary { TrialId = "a", TrainableName = "x", Status = TrialStatus.Terminated, Config = TrialConfig.From(("lr", 0.1)),
                LastResult = new TrialResult { Metrics = new List<KeyValuePair<string, object>> { new("acc", 0.9) }, TrainingIteration = 3 } },
            new TrialSummary { TrialId = "b", TrainableName = "x", Status = TrialStatus.Error, Config = TrialConfig.From(("lr", 1.0)), Error = "boom" },
        }, "/tmp/exp", "acc", MetricMode.Max);

        // What .NET Interactive does: find an attribute named TypeFormatterSourceAttribute, build its source, ask for text/html.
        var attribute = typeof(ResultGrid).GetCustomAttributes(true).Single(a => a.GetType().Name == "TypeFormatterSourceAttribute");
        var sourceType = (Type)attribute.GetType().GetProperty("FormatterSourceType")!.GetValue(attribute)!;
        var source = Activator.CreateInstance(sourceType, nonPublic: true)!;
        var formatters = ((IEnumerable<object>)sourceType.GetMethod("CreateTypeFormatters")!.Invoke(source, null)!).ToList();
        var html = formatters.First(f => (string)f.GetType().GetProperty("MimeType")!.GetValue(f)! == "text/html"
                                         && (Type)f.GetType().GetProperty("Type")!.GetValue(f)! == typeof(ResultGrid));
        var writer = new StringWriter();
        Assert.True((bool)html.GetType().GetMethod("Format")!.Invoke(html, new object[] { grid, writer })!);

        var text = writer.ToString();
        Assert.StartsWith("<table>", text);
        Assert.Contains("<td>a</td><td>TERMINATED</td><td>0.1</td><td>3</td><td>0.9</td>", text);
        Assert.Contains("<td>b</td><td>ERROR</td>", text);
        Assert.Equal("a", grid.GetBestResult().TrialId);
        Assert.Single(grid.Errors);
    }
}
