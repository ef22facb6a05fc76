using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Spectre.Console.Testing;
using TorchTrials.Cli;
using TorchTrials.Cli.Commands;
using TorchTrials.Runner.Store;

namespace TorchTrials.IntegrationTests.Cli;

/// <summary>One process owns an experiment at a time: real `torchtrials` processes against one folder.</summary>
public class ExperimentOwnershipTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-owner", Guid.NewGuid().ToString("N")[..12]);
    private readonly List<Process> _started = new();

    public ExperimentOwnershipTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        foreach (var p in _started)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.Dispose();
        }
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string Results => Path.Combine(_dir, "results");

    private string Spec(string yaml)
    {
        var path = Path.Combine(_dir, "spec.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private static (int Code, string Output) Cli(params string[] args)
    {
        var console = new TestConsole();
        console.Profile.Width = 400;
        int code = CliApp.Run(args, console, plain: true);
        return (code, console.Output);
    }

    private Process StartCli(params string[] args)
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "torchtrials.dll");
        var process = Process.Start(new ProcessStartInfo("dotnet", new[] { cli }.Concat(args)) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        _started.Add(process);
        return process;
    }

    /// <summary>Waits until <paramref name="owner"/> holds the experiment's lock (its pid is in experiment.owner).</summary>
    private static void WaitUntilOwned(string experiment, Process owner)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (ExperimentLock.ReadOwner(experiment)?.Pid != owner.Id)
        {
            Assert.True(DateTime.UtcNow < deadline && !owner.HasExited, "the first run never took the experiment's lock");
            Thread.Sleep(50);
        }
    }

    [Fact]
    public async Task Of_two_runs_started_together_one_is_refused_naming_the_owner_and_the_other_is_unaffected()
    {
        // Given a run of four trials of 30 iterations, 50 ms each, two at a time (about 3 s)
        var spec = Spec("""
            name: live
            trainable: __fake
            params: {sleep: 0.05}
            search_space: {lr: {grid: [1, 2, 3, 4]}}
            stop: {training_iteration: 30}
            resources_per_trial: {cpu: 1}
            """);
        var experiment = Path.Combine(Results, "live");

        // When two processes run it at the same moment (both find no folder, both create it, race for the lock)
        var runs = new[] { StartCli("run", spec, "--results-dir", Results, "--plain"), StartCli("run", spec, "--results-dir", Results, "--plain") };
        var outputs = await Task.WhenAll(runs.Select(p => Task.Run(() => p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd())));
        Assert.All(runs, p => Assert.True(p.WaitForExit(60_000)));

        // Then one finishes and the other exits 2 with one line naming the winner's pid
        var winner = Array.FindIndex(runs, p => p.ExitCode == ExitCodes.Success);
        Assert.True(winner >= 0, string.Join("\n---\n", outputs));
        var loser = 1 - winner;
        Assert.True(runs[loser].ExitCode == ExitCodes.BadInput, outputs[loser]);
        var line = Assert.Single(outputs[loser].Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Contains($"in use by process {runs[winner].Id}", line);

        // And the winner's experiment holds one history per trial
        using var connection = new SqliteConnection($"Data Source={Path.Combine(experiment, SqliteExperimentStore.FileName)};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*), COUNT(DISTINCT trial_id || '/' || iteration) FROM results";
        using var reader = cmd.ExecuteReader();
        Assert.True(reader.Read());
        Assert.Equal(4 * 30, reader.GetInt64(0));
        Assert.Equal(4 * 30, reader.GetInt64(1));
    }

    [Fact]
    public void While_a_run_is_live_resume_is_refused_naming_the_owner_and_status_reads_it_without_changing_a_file()
    {
        // Given a live run whose one trial sleeps 10 s per step, so that nothing is written between its results (a wide
        // window: status and resume are two process starts, slow on a loaded machine)
        var spec = Spec("""
            name: quiet
            trainable: __fake
            params: {sleep: 10}
            stop: {training_iteration: 2}
            resources_per_trial: {cpu: 1}
            """);
        var experiment = Path.Combine(Results, "quiet");
        var owner = StartCli("run", spec, "--results-dir", Results, "--plain");
        WaitUntilOwned(experiment, owner);
        // Once the first result is in and written out (the loggers flush every second) nothing changes until the next one.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (CliTests.ResultCount(experiment) < 1 && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Thread.Sleep(1300);
        // -shm is SQLite's shared-memory index, which every reader updates: it is left out of the comparison.
        var before = CliTests.FileHashes(experiment, f => !f.EndsWith("-shm", StringComparison.Ordinal));

        // When status and resume are asked for while it runs
        var (statusCode, status) = Cli("status", experiment);
        var (resumeCode, resumeOutput) = Cli("resume", experiment);

        // Then status shows the live trial, resume is refused with one line naming the owner, and no file changed
        var after = CliTests.FileHashes(experiment, f => !f.EndsWith("-shm", StringComparison.Ordinal));
        Assert.True(statusCode == ExitCodes.Success, status);
        Assert.Contains("1 trial: 1 running", status);
        Assert.Equal(ExitCodes.BadInput, resumeCode);
        Assert.Contains($"in use by process {owner.Id}", Assert.Single(resumeOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        Assert.Equal(before, after);

        // and the owner, stopped with SIGTERM mid-step, stops as gracefully as ever
        using (var term = Process.Start("kill", new[] { "-TERM", owner.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) })!) term.WaitForExit();
        Assert.True(owner.WaitForExit(60_000));
        Assert.Equal(SweepRunner.Terminated, owner.ExitCode);
    }
}
