using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Spectre.Console.Testing;
using TorchTrials.Cli;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using Xunit.Abstractions;

namespace TorchTrials.IntegrationTests.Cli;

/// <summary>
/// The real CLI in child processes, killed with SIGKILL at random points and resumed, or stopped with SIGTERM: the store
/// and the per-trial files must end exactly as in an uninterrupted run, and at every kill the store's checkpoint index
/// must name only complete checkpoints.
/// </summary>
public class KillResumeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-kill", Guid.NewGuid().ToString("N")[..12]);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private const int Trials = 4;
    private int _iterations = 20;

    /// <summary>Deterministic: the fake trainable's values depend only on the iteration; keep 1 makes every save retire one.</summary>
    private string Spec(string name)
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, name + ".yaml");
        File.WriteAllText(path, $$$"""
            name: {{{name}}}
            trainable: __fake
            params: {sleep: 0.03}
            search_space: {lr: {grid: [1, 2, 3, 4]}}
            stop: {training_iteration: {{{_iterations}}}}
            checkpoint: {frequency: 3, num_to_keep: 1}
            resources_per_trial: {cpu: 1}
            """);
        return path;
    }

    private string Results => Path.Combine(_dir, "results");

    [Fact]
    public void A_run_killed_at_random_points_and_resumed_ends_exactly_as_an_uninterrupted_run()
    {
        int rounds = int.TryParse(Environment.GetEnvironmentVariable("TORCHTRIALS_KILL_ROUNDS"), out var r) ? r : 3;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("TORCHTRIALS_KILL_SEED"), out var s) ? s : Random.Shared.Next();
        // More rounds need a longer run, so that every kill still lands mid-run.
        _iterations = Math.Max(20, rounds * 8);
        output.WriteLine($"rounds {rounds}, {_iterations} iterations, seed {seed} (TORCHTRIALS_KILL_ROUNDS / TORCHTRIALS_KILL_SEED)");
        var random = new Random(seed);
        var clock = Stopwatch.StartNew();

        var reference = Path.Combine(Results, "reference");
        var (code, text) = InProcess("run", Spec("reference"), "--results-dir", Results);
        Assert.True(code == ExitCodes.Success, text);
        output.WriteLine($"uninterrupted run: {clock.Elapsed.TotalSeconds:F1} s");

        var experiment = Path.Combine(Results, "killed");
        var spec = Spec("killed");
        int kills = 0;
        for (int round = 0; round < rounds; round++)
        {
            var child = Child(round == 0 ? new[] { "run", spec, "--results-dir", Results, "--plain" } : new[] { "resume", experiment, "--plain" });
            // Kill at a random moment after the child has committed something of its own.
            long before = ResultCount(experiment);
            var deadline = Stopwatch.StartNew();
            while (!child.Process.HasExited && ResultCount(experiment) <= before && deadline.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(10);
            Thread.Sleep(random.Next(0, 400));
            if (child.Process.HasExited)
            {
                output.WriteLine($"round {round}: the run ended (exit {child.Process.ExitCode}) before the kill");
                break;
            }
            child.Process.Kill(entireProcessTree: true);
            child.Process.WaitForExit();
            kills++;
            output.WriteLine($"round {round}: killed at {ResultCount(experiment)} committed results ({clock.Elapsed.TotalSeconds:F1} s)");
            AssertIndexNamesOnlyCompleteCheckpoints(experiment);
            AssertNoDuplicateResults(experiment);
        }

        var last = Child(new[] { "resume", experiment, "--plain" });
        Assert.True(last.Process.WaitForExit(TimeSpan.FromSeconds(60)), "the final resume did not end");
        last.Process.WaitForExit();
        Assert.True(last.Process.ExitCode == ExitCodes.Success, last.Output());
        output.WriteLine($"{kills} kills; final resume exit {last.Process.ExitCode} ({clock.Elapsed.TotalSeconds:F1} s)");

        var expected = StoredHistories(reference);
        Assert.Equal(Trials, expected.Count);
        Assert.All(expected.Values, h => Assert.Equal(Enumerable.Range(1, _iterations).Select(i => (long)i), h.Select(x => x.Iteration)));
        var actual = StoredHistories(experiment);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (lr, history) in expected) Assert.Equal(history, actual[lr]);
        AssertFilesMatchStore(reference);
        AssertFilesMatchStore(experiment);
        AssertIndexNamesOnlyCompleteCheckpoints(experiment);
        AssertNoDuplicateResults(experiment);
        Assert.Empty(Directory.EnumerateDirectories(experiment, "*.tmp-*", SearchOption.AllDirectories));
    }

    [Fact]
    public void Sigterm_stops_the_run_like_ctrl_c_and_the_resume_completes_it_warning_of_a_damaged_checkpoint()
    {
        var experiment = Path.Combine(Results, "terminated");
        var child = Child(new[] { "run", Spec("terminated"), "--results-dir", Results, "--plain" });
        var deadline = Stopwatch.StartNew();
        while (!child.Process.HasExited && CheckpointPaths(experiment).Count == 0 && deadline.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(10);
        Assert.False(child.Process.HasExited, child.Output());

        using (var kill = Process.Start("kill", new[] { "-TERM", child.Process.Id.ToString(CultureInfo.InvariantCulture) })!) kill.WaitForExit();
        Assert.True(child.Process.WaitForExit(TimeSpan.FromSeconds(30)), "SIGTERM did not stop the run");
        child.Process.WaitForExit();

        Assert.Equal(143, child.Process.ExitCode);
        Assert.Contains($"Resume with: torchtrials resume {experiment}", child.Output());
        AssertFilesMatchStore(experiment);

        // A checkpoint damaged meanwhile is skipped on resume, with a warning that names it.
        var damaged = CheckpointPaths(experiment)[0];
        File.WriteAllBytes(Path.Combine(damaged, PersistentCheckpoint.TensorFile), new byte[] { 1, 2, 3 });
        var (code, text) = InProcess("resume", experiment);
        Assert.True(code == ExitCodes.Success, text);
        Assert.Contains($"skipping damaged checkpoint {damaged}", text);
        var histories = StoredHistories(experiment);
        Assert.Equal(Trials, histories.Count);
        Assert.All(histories.Values, h => Assert.Equal(Enumerable.Range(1, _iterations).Select(i => (long)i), h.Select(x => x.Iteration)));
        AssertFilesMatchStore(experiment);
    }

    private sealed record Row(long Iteration, double Reward, double Timesteps, bool Done);

    private static (int Code, string Output) InProcess(params string[] args)
    {
        var console = new TestConsole();
        console.Profile.Width = 400;
        int code = CliApp.Run(args, console, plain: true);
        return (code, console.Output);
    }

    private static CliProcess Child(string[] args) => CliProcess.Start("torchtrials", args);

    private static SqliteConnection ReadOnly(string experiment)
    {
        var connection = new SqliteConnection($"Data Source={Path.Combine(experiment, SqliteExperimentStore.FileName)};Mode=ReadOnly;Pooling=False");
        connection.Open();
        return connection;
    }

    private static long ResultCount(string experiment)
    {
        if (!File.Exists(Path.Combine(experiment, SqliteExperimentStore.FileName))) return 0;
        try
        {
            using var connection = ReadOnly(experiment);
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT COUNT(*) FROM results";
            return (long)cmd.ExecuteScalar()!;
        }
        catch (SqliteException)
        {
            return 0;
        }
    }

    private static List<string> CheckpointPaths(string experiment)
    {
        if (!File.Exists(Path.Combine(experiment, SqliteExperimentStore.FileName))) return new List<string>();
        try
        {
            using var connection = ReadOnly(experiment);
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT path FROM checkpoints ORDER BY iteration DESC";
            using var reader = cmd.ExecuteReader();
            var paths = new List<string>();
            while (reader.Read()) paths.Add(reader.GetString(0));
            return paths;
        }
        catch (SqliteException)
        {
            return new List<string>();
        }
    }

    /// <summary>What a resume would find: every checkpoint the committed index names is complete on disk.</summary>
    private static void AssertIndexNamesOnlyCompleteCheckpoints(string experiment)
    {
        using var connection = ReadOnly(experiment);
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT trial_id, path, iteration FROM checkpoints";
        using var reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            var (trial, path, iteration) = (reader.GetString(0), reader.GetString(1), reader.GetInt64(2));
            Assert.True(Directory.Exists(path), $"the store names checkpoint {path} of trial {trial}, which is not on disk");
            Assert.Equal(iteration, PersistentCheckpoint.Open(path).TrainingIteration);
        }
    }

    private static void AssertNoDuplicateResults(string experiment)
    {
        using var connection = ReadOnly(experiment);
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM (SELECT trial_id, iteration FROM results GROUP BY trial_id, iteration HAVING COUNT(*) > 1)";
        Assert.Equal(0L, (long)cmd.ExecuteScalar()!);
    }

    /// <summary>Each trial's stored history keyed by its config (trial ids differ between runs), ordered as stored.</summary>
    private static Dictionary<double, List<Row>> StoredHistories(string experiment)
    {
        using var store = SqliteExperimentStore.Open(experiment);
        var stored = store.Load()!;
        Assert.All(stored.Trials, t => Assert.Equal(TorchTrials.Runner.TrialStatus.Terminated, t.Status));
        return stored.Trials.ToDictionary(
            t => t.State["config"]!["lr"]!.GetValue<double>(),
            t => store.ResultsOf(t.Id).Select(x => new Row(x.TrainingIteration, Convert.ToDouble(x["episode_reward_mean"], CultureInfo.InvariantCulture),
                Convert.ToDouble(x[TrialResult.TimestepsTotalKey], CultureInfo.InvariantCulture), x.Done)).ToList());
    }

    /// <summary>progress.csv and result.json of every trial equal its stored history, row for row.</summary>
    private static void AssertFilesMatchStore(string experiment)
    {
        using var store = SqliteExperimentStore.Open(experiment);
        foreach (var trial in store.Load()!.Trials)
        {
            if (trial.State["logdir"]?.GetValue<string>() is not { } dir) continue; // never started: no files
            var expected = store.ResultsOf(trial.Id).Select(x => new Row(x.TrainingIteration, Convert.ToDouble(x["episode_reward_mean"], CultureInfo.InvariantCulture),
                Convert.ToDouble(x[TrialResult.TimestepsTotalKey], CultureInfo.InvariantCulture), x.Done)).ToList();

            var json = File.ReadAllLines(Path.Combine(dir, TrialFileLogger.ResultFile)).Select(line =>
            {
                using var doc = JsonDocument.Parse(line);
                var e = doc.RootElement;
                return new Row(e.GetProperty("training_iteration").GetInt64(), e.GetProperty("episode_reward_mean").GetDouble(),
                    e.GetProperty(TrialResult.TimestepsTotalKey).GetDouble(), e.GetProperty("done").GetBoolean());
            }).ToList();
            Assert.Equal(expected, json);

            var csv = File.ReadAllLines(Path.Combine(dir, TrialFileLogger.ProgressFile));
            var header = csv[0].Split(',');
            int Col(string name) => Array.IndexOf(header, name);
            var rows = csv.Skip(1).Select(line => line.Split(',')).Select(c => new Row(
                long.Parse(c[Col("training_iteration")], CultureInfo.InvariantCulture),
                double.Parse(c[Col("episode_reward_mean")], CultureInfo.InvariantCulture),
                double.Parse(c[Col(TrialResult.TimestepsTotalKey)], CultureInfo.InvariantCulture),
                c[Col("done")] == "True")).ToList();
            Assert.Equal(expected, rows);
        }
    }
}
