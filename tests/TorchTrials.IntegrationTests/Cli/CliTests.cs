using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Spectre.Console.Testing;
using TorchTrials.Cli;
using TorchTrials.Runner.Store;

namespace TorchTrials.IntegrationTests.Cli;

public class CliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-cli", Guid.NewGuid().ToString("N")[..12]);

    public CliTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private (int Code, string Output) Cli(params string[] args)
    {
        var console = new TestConsole();
        console.Profile.Width = 400;
        int code = CliApp.Run(args, console, plain: true);
        return (code, console.Output);
    }

    private string Spec(string yaml, string name = "spec.yaml")
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, yaml);
        return path;
    }

    private const string FakeSweep = """
        name: fake
        trainable: __fake
        search_space:
          lr: {grid: [0.1, 0.2, 0.3]}
        metric: episode_reward_mean
        mode: max
        stop: {training_iteration: 3}
        resources_per_trial: {cpu: 1}
        """;

    [Fact]
    public void Run_executes_a_sweep_prints_the_best_trial_and_exits_0()
    {
        var (code, output) = Cli("run", Spec(FakeSweep), "--results-dir", Path.Combine(_dir, "results"));
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("3 trials: 3 terminated", output);
        Assert.Contains("Best trial:", output);
        var experiment = Path.Combine(_dir, "results", "fake");
        Assert.True(File.Exists(Path.Combine(experiment, "spec.yaml")));
        using var store = SqliteExperimentStore.Open(experiment);
        Assert.Equal(9, store.Count("results"));

        var (statusCode, status) = Cli("status", experiment);
        Assert.Equal(ExitCodes.Success, statusCode);
        Assert.Contains("3 trials: 3 terminated", status);
    }

    public static TheoryData<string, string> BadSpecs => new()
    {
        { "trainable: __fake\nnum_sample: 3\n", "line 2: num_sample: unknown key (did you mean 'num_samples'?)" },
        { "num_samples: 3\n", "trainable: is required" },
        { "trainable: mlp_digit\n", "trainable: 'mlp_digit' is not a registered trainable" },
        { "trainable: __fake\nnum_samples: ten\n", "num_samples: must be a whole number, got \"ten\"" },
        { "trainable: __fake\nnum_samples: 0\n", "num_samples: must be at least 1, got 0" },
        { "trainable: __fake\nmode: max\n", "metric: is required when mode is set" },
        { "trainable: __fake\nmetric: x\nmode: biggest\n", "mode: must be one of max, min, got 'biggest'" },
        { "trainable: __fake\nsearch_space:\n  lr: {uniform: [1.0, 0.1]}\n", "search_space.lr:" },
        { "trainable: __fake\nscheduler: {type: asha_typo}\n", "scheduler.type: must be one of" },
        { "trainable: __fake\nresources_per_trial: {cpu: -1}\n", "resources_per_trial.cpu: must be at least 0, got -1" },
        { "trainable: __fake\ninventory: \"cpus=2\"\nresources_per_trial: {cpu: 4}\n", "resources_per_trial: a trial requests 4 CPUs but this machine has 2" },
        { "trainable: __fake\ncheckpoint: {num_to_keep: 0}\n", "checkpoint.num_to_keep: must be at least 1, got 0" },
        { "trainable: __fake\ncheckpoint: {keep: 1}\n", "checkpoint.keep: unknown key (did you mean 'num_to_keep'?)" },
        { "trainable: __fake\nfailure: {fail_fast: sometimes}\n", "failure.fail_fast: must be true, false or raise" },
        { "trainable: __fake\nstop: {training_iteration: soon}\n", "stop.training_iteration: must be a number" },
        { "trainable: [__fake\n", "not valid YAML" },
        { "trainable: __fake\nparams: {lr: 0.1}\nsearch_space: {lr: {uniform: [0, 1]}}\n", "search_space.lr: is also set in params" },
        { "trainable: __fake\nsearch_space: {lr: {loguniform: [0.001, 0.01]}\nmetric: x\nmode: max\n", "line 2: search_space: not valid YAML: the flow mapping '{' opened here is never closed" },
        { "trainable: __fake\nresources_per_trial: {cpu: 1000}\n", "resources_per_trial: a trial requests 1000 CPUs but this machine has" },
        { "trainable: __fake\nresources_per_trial: {gpu: 64}\n", "resources_per_trial: a trial requests 64 GPUs but this machine has" },
        { "trainable: __fake\nscheduler: {type: asha}\n", "scheduler: needs a metric and a mode" },
        { "trainable: __fake\ninventory: \"cpus=2,gpus=2x16GiB\"\nresources_per_trial: {gpu: 1.5}\n", "resources_per_trial: a trial requests 1.5 GPUs: a request above one GPU must be a whole number" },
        { "trainable: __fake\nmetric: x\nmode: maximize\n", "mode: must be one of max, min, got 'maximize'" },
        { "trainable: __fake\nsearch_space: {lr: {loguniorm: [0.001, 0.01]}}\n", "search_space.lr: unknown spec keyword 'loguniorm' (did you mean 'loguniform'?)" },
        { "trainable: __fake\nstoppers: [{type: maximum_iteratoin, max_iter: 3}]\n", "got 'maximum_iteratoin' (did you mean 'maximum_iteration'?)" },
    };

    [Theory]
    [MemberData(nameof(BadSpecs))]
    public void Bad_input_exits_2_with_a_line_naming_the_problem_and_creates_nothing(string yaml, string expected)
    {
        var results = Path.Combine(_dir, "results");
        var (code, output) = Cli("run", Spec(yaml), "--results-dir", results);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains(expected, Assert.Single(ErrorLines(output)));
        Assert.False(Directory.Exists(results));
    }

    private static List<string> ErrorLines(string output) =>
        output.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ToList();

    private static List<string> Lines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    [Fact]
    public void An_unwritable_storage_path_is_bad_input_naming_it()
    {
        var (code, output) = Cli("run", Spec("name: x\ntrainable: __fake\nstorage_path: /proc/torchtrials-x\n"));
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("storage_path '/proc/torchtrials-x' is not writable", Assert.Single(Lines(output)));
    }

    [Fact]
    public void A_start_refused_for_resources_leaves_nothing_that_blocks_the_corrected_rerun()
    {
        var results = Path.Combine(_dir, "results");
        var tooBig = FakeSweep.Replace("resources_per_trial: {cpu: 1}", "resources_per_trial: {cpu: 1000}", StringComparison.Ordinal);
        Assert.Equal(ExitCodes.BadInput, Cli("run", Spec(tooBig), "--results-dir", results).Code);

        var (code, output) = Cli("run", Spec(FakeSweep), "--results-dir", results);
        Assert.True(code == ExitCodes.Success, output);
        Assert.Contains("3 trials: 3 terminated", output);
    }

    public static TheoryData<string> Damages => new() { "empty", "truncated", "garbage" };

    [Theory]
    [MemberData(nameof(Damages))]
    public void A_damaged_store_is_bad_input_for_run_resume_and_status_and_no_file_changes(string damage)
    {
        var results = Path.Combine(_dir, "results");
        Assert.Equal(ExitCodes.Success, Cli("run", Spec(FakeSweep), "--results-dir", results).Code);
        var experiment = Path.Combine(results, "fake");
        var db = Path.Combine(experiment, SqliteExperimentStore.FileName);
        switch (damage)
        {
            case "empty": File.WriteAllBytes(db, Array.Empty<byte>()); break;
            case "truncated": File.WriteAllBytes(db, File.ReadAllBytes(db)[..5000]); break;
            default: File.WriteAllBytes(db, Enumerable.Range(0, 20000).Select(i => (byte)(i * 7919 % 251)).ToArray()); break;
        }
        var before = FileHashes(experiment);

        foreach (var args in new[] { new[] { "status", experiment }, new[] { "resume", experiment }, new[] { "run", Spec(FakeSweep), "--results-dir", results } })
        {
            var (code, output) = Cli(args);
            Assert.True(code == ExitCodes.BadInput, $"{args[0]}: {output}");
            var line = Assert.Single(Lines(output));
            Assert.StartsWith("error:", line, StringComparison.Ordinal);
            Assert.Contains(args[0] == "run" ? "an experiment already exists" : "is damaged", line);
        }
        Assert.Equal(before, FileHashes(experiment));
    }

    /// <summary>
    /// Every file under <paramref name="dir"/> by relative path, with a hash of its bytes; the lock file holds no bytes and
    /// cannot be opened while its owner lives, so only its presence counts.
    /// </summary>
    internal static SortedDictionary<string, string> FileHashes(string dir, Func<string, bool>? include = null) =>
        new(Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Where(f => include?.Invoke(f) ?? true)
            .ToDictionary(f => Path.GetRelativePath(dir, f), f => Path.GetFileName(f) == ExperimentLock.LockFileName
                ? $"{new FileInfo(f).Length} bytes"
                : Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))), StringComparer.Ordinal);

    [Fact]
    public void Every_problem_of_a_spec_is_reported_at_once()
    {
        var (code, output) = Cli("run", Spec("trainable: nope\nnum_samples: 0\ncolour: blue\nmode: max\n"));
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Equal(4, output.Split('\n').Count(l => l.StartsWith("error:", StringComparison.Ordinal)));
    }

    [Fact]
    public void Running_into_an_existing_experiment_is_refused_and_loses_nothing()
    {
        var results = Path.Combine(_dir, "results");
        Assert.Equal(ExitCodes.Success, Cli("run", Spec(FakeSweep), "--results-dir", results).Code);
        var db = Path.Combine(results, "fake", SqliteExperimentStore.FileName);
        var before = File.GetLastWriteTimeUtc(db);
        var (code, output) = Cli("run", Spec(FakeSweep), "--results-dir", results);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("an experiment already exists", output);
        Assert.Equal(before, File.GetLastWriteTimeUtc(db));
    }

    [Fact]
    public void An_experiment_saved_before_keep_became_num_to_keep_still_resumes_and_keeps_that_many()
    {
        // Given a finished run whose saved spec still says keep (as every experiment started before the rename does)
        var results = Path.Combine(_dir, "results");
        var spec = FakeSweep + "\ncheckpoint: {frequency: 1, num_to_keep: 1}\n";
        Assert.Equal(ExitCodes.Success, Cli("run", Spec(spec), "--results-dir", results).Code);
        var experiment = Path.Combine(results, "fake");
        var saved = Path.Combine(experiment, "spec.yaml");
        File.WriteAllText(saved, File.ReadAllText(saved).Replace("num_to_keep: 1", "keep: 1"));

        // When it is resumed, Then the saved spec is read in its old meaning (a new spec with keep is still refused)
        var (code, output) = Cli("resume", experiment);
        Assert.True(code == ExitCodes.Success, output);
        Assert.Equal(ExitCodes.BadInput, Cli("run", Spec(spec.Replace("num_to_keep", "keep"), "new.yaml"), "--results-dir", results).Code);
    }

    [Fact]
    public void Missing_files_and_arguments_are_bad_input()
    {
        Assert.Equal(ExitCodes.BadInput, Cli("run", Path.Combine(_dir, "missing.yaml")).Code);
        Assert.Equal(ExitCodes.BadInput, Cli("run").Code);
        Assert.Equal(ExitCodes.BadInput, Cli("status", Path.Combine(_dir, "nothing")).Code);
        Assert.Equal(ExitCodes.BadInput, Cli("resume", _dir).Code);
        Assert.Equal(ExitCodes.BadInput, Cli("frobnicate").Code);
        Assert.Equal(ExitCodes.BadInput, Cli("devices", "--inventory", "gpus=lots").Code);
    }

    [Fact]
    public void A_failed_run_exits_1()
    {
        var yaml = """
            trainable: __fake
            params: {mock_error: true, persistent_error: true}
            num_samples: 2
            failure: {fail_fast: true}
            resources_per_trial: {cpu: 1}
            """;
        var (code, output) = Cli("run", Spec(yaml), "--results-dir", Path.Combine(_dir, "results"), "--name", "failing");
        Assert.Equal(ExitCodes.RunFailed, code);
        Assert.Contains("ERROR", output);
    }

    [Fact]
    public void Devices_lists_the_machine()
    {
        var (code, output) = Cli("devices", "--inventory", "cpus=4,gpus=2x16GiB,a=2");
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("CPU: 4 cores", output);
        Assert.Contains("GPU 1: Simulated GPU, 16.0 GiB", output);
        Assert.Contains("a: 2", output);
    }

    [Fact]
    public void A_run_killed_mid_way_resumes_to_the_same_trials_without_duplicate_results()
    {
        var yaml = """
            name: killed
            trainable: __fake
            params: {sleep: 0.05}
            search_space: {lr: {grid: [1, 2, 3, 4]}}
            stop: {training_iteration: 20}
            checkpoint: {frequency: 4}
            resources_per_trial: {cpu: 1}
            """;
        var results = Path.Combine(_dir, "results");
        var experiment = Path.Combine(results, "killed");
        var cli = Path.Combine(AppContext.BaseDirectory, "torchtrials.dll");
        var process = Process.Start(new ProcessStartInfo("dotnet", new[] { cli, "run", Spec(yaml), "--results-dir", results, "--plain" })
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline && ResultCount(experiment) < 12) Thread.Sleep(100);
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
        long before = ResultCount(experiment);
        Assert.InRange(before, 12, 79);
        // The killed owner left its lock file and pid behind; the OS released the lock itself, so resume is not refused.
        Assert.True(File.Exists(Path.Combine(experiment, ExperimentLock.LockFileName)));
        Assert.Equal(process.Id, ExperimentLock.ReadOwner(experiment)?.Pid);

        var (code, output) = Cli("resume", experiment);
        Assert.True(code == ExitCodes.Success, output);
        Assert.Contains("4 trials: 4 terminated", output);
        using var store = SqliteExperimentStore.Open(experiment);
        var stored = store.Load()!;
        Assert.Equal(4, stored.Trials.Count);
        foreach (var trial in stored.Trials)
            Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), store.ResultsOf(trial.Id).Select(r => r.TrainingIteration));
    }

    [Theory]
    [InlineData("80")]
    [InlineData(null)]
    public void Piped_output_fits_the_width_columns_asks_for_and_is_never_wrapped_without_it(string? columns)
    {
        // `COLUMNS=80 torchtrials run s.yaml | tee log`: the progress lines and the results table as a person reads them in
        // an 80-column terminal (seen at 103-165 columns before); without COLUMNS, scripts get whole lines.
        var yaml = """
            name: wide
            trainable: __fake
            search_space: {learning_rate: {grid: [0.001, 0.01]}, momentum_value: {grid: [0.5, 0.9]}, weight_decay_value: {grid: [0.0, 0.0001]}}
            stop: {training_iteration: 3}
            resources_per_trial: {cpu: 1}
            """;
        var child = CliProcess.Start("wide", new[] { "run", Spec(yaml), "--results-dir", Path.Combine(_dir, "results") },
            environment: new Dictionary<string, string?> { ["COLUMNS"] = columns });
        Assert.True(child.Process.WaitForExit(120_000), "the sweep did not finish in time");
        child.Process.WaitForExit();
        var output = child.Output();
        Assert.True(child.Process.ExitCode == ExitCodes.Success, output);
        var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Contains(lines, l => l.Contains("8 trials: 8 terminated", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("trial", StringComparison.Ordinal));
        if (columns is null)
            Assert.Contains(lines, l => l.Length > 80);
        else
            // Paths (log directory, checkpoint) print whole, so they can be copied, however deep the temp folder is.
            Assert.All(lines.Where(l => !l.Contains(_dir, StringComparison.Ordinal)), l => Assert.True(l.Length <= 80, $"{l.Length} columns: {l}"));
    }

    internal static long ResultCount(string experiment)
    {
        var db = Path.Combine(experiment, SqliteExperimentStore.FileName);
        if (!File.Exists(db)) return 0;
        try
        {
            using var connection = new SqliteConnection($"Data Source={db};Mode=ReadOnly;Pooling=False");
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT COUNT(*) FROM results";
            return (long)cmd.ExecuteScalar()!;
        }
        catch (SqliteException)
        {
            return 0;
        }
    }
}
