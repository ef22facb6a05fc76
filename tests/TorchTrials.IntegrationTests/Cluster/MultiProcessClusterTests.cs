using System.Diagnostics;
using TorchTrials.Cli;
using TorchTrials.IntegrationTests.Cli;
using TorchTrials.Runner.Store;
using TorchTrials.Runner;
using Xunit.Abstractions;

namespace TorchTrials.IntegrationTests.Cluster;

/// <summary>
/// A sweep across processes on loopback, as the README's cluster section runs it: `torchtrials worker` twice and
/// `torchtrials run --cluster`, each its own process. A worker killed with SIGKILL mid-sweep, or the controller killed and
/// resumed: every trial ends with its whole history stored exactly once.
/// </summary>
public sealed class MultiProcessClusterTests(ITestOutputHelper output) : IDisposable
{
    private const int Trials = 6;
    private const int Iterations = 30;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-cluster", Guid.NewGuid().ToString("N")[..12]);
    private readonly List<CliProcess> _children = new();

    public void Dispose()
    {
        foreach (var child in _children)
        {
            if (!child.Process.HasExited) child.Process.Kill(entireProcessTree: true);
            child.Process.WaitForExit();
            output.WriteLine($"--- {child.Name} (exit {child.Process.ExitCode})");
            output.WriteLine(child.Output());
            child.Process.Dispose();
        }
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>Localhost clustering on a port of this test's own (the first worker is the primary, so the second is killed).</summary>
    private static string Localhost() => $"localhost:{Random.Shared.Next(31000, 32000)}";

    [Fact]
    public void A_worker_killed_mid_sweep_leaves_every_trial_finished_elsewhere_with_its_history_intact() => WorkerKilled(Localhost());

    [Fact]
    public void A_controller_killed_mid_sweep_is_resumed_with_the_workers_still_up() => ControllerKilled(Localhost());

    /// <summary>As the issue's proof: PostgreSQL as the membership store (.ci/run starts one), the tables made by the workers.</summary>
    // It failed in 2 of 6 runs before polls had a 5 s timeout and the controller heard of trials a worker stopped on its
    // lease: a poll to the live worker went through the killed one's gateway, waited Orleans' 30 s, and the live worker
    // stopped our trials for want of polls without a word (ClusterExecutorTests has both on their own).
    [PostgresFact]
    public async Task On_postgres_a_worker_killed_mid_sweep_leaves_every_trial_finished_elsewhere()
    {
        await using var database = await ClusterDatabase.OpenAsync();
        WorkerKilled(database.ClusterText(database.NewClusterId()));
    }

    [PostgresFact]
    public async Task On_postgres_a_controller_killed_mid_sweep_is_resumed_with_the_workers_still_up()
    {
        await using var database = await ClusterDatabase.OpenAsync();
        ControllerKilled(database.ClusterText(database.NewClusterId()));
    }

    /// <summary>Redis clustering, the issue's other membership option (.ci/run starts a Redis server).</summary>
    [RedisFact]
    public void On_redis_a_worker_killed_mid_sweep_leaves_every_trial_finished_elsewhere() => WorkerKilled(ClusterRedis.ClusterText());

    private void WorkerKilled(string cluster)
    {
        StartWorkers(cluster, out _, out var second);
        var experiment = Path.Combine(_dir, "results", "killed-worker");
        var run = Start("controller", "run", Spec("killed-worker", cluster: null), "--cluster", cluster, "--results-dir", Path.Combine(_dir, "results"), "--plain");

        // Every trial that can run is running (4 slots), and each has stored results: kill a worker under two of them.
        WaitFor(() => CliTests.ResultCount(experiment) >= 4 * 6, run, "the sweep never got going");
        second.Process.Kill();
        output.WriteLine($"killed worker b at {CliTests.ResultCount(experiment)} results");

        Assert.True(run.Process.WaitForExit(TimeSpan.FromSeconds(180)), "the sweep did not finish: " + run.Output());
        Assert.True(run.Process.ExitCode == ExitCodes.Success, run.Output());
        AssertEveryHistoryIntact(experiment);
        Assert.True(FailureCount(experiment) >= 1, "no trial was requeued from the killed worker");
    }

    private void ControllerKilled(string cluster)
    {
        StartWorkers(cluster, out _, out _);
        var results = Path.Combine(_dir, "results");
        var experiment = Path.Combine(results, "killed-controller");
        // The spec names the cluster itself, so `torchtrials resume` finds it in the experiment's copy of the spec.
        var run = Start("controller", "run", Spec("killed-controller", cluster), "--results-dir", results, "--plain");
        WaitFor(() => CliTests.ResultCount(experiment) >= 4 * 8, run, "the sweep never got going");
        run.Process.Kill();
        run.Process.WaitForExit();
        output.WriteLine($"killed the controller at {CliTests.ResultCount(experiment)} results");

        var resume = Start("resume", "resume", experiment, "--plain");
        Assert.True(resume.Process.WaitForExit(TimeSpan.FromSeconds(180)), "the resumed sweep did not finish: " + resume.Output());
        Assert.True(resume.Process.ExitCode == ExitCodes.Success, resume.Output());
        AssertEveryHistoryIntact(experiment);
    }

    private void StartWorkers(string cluster, out CliProcess first, out CliProcess second)
    {
        first = Start("worker a", "worker", "--cluster", cluster, "--inventory", "cpus=2", "--name", "a");
        var a = first;
        WaitFor(() => a.Output().Contains("joined cluster", StringComparison.Ordinal), a, "worker a did not join");
        second = Start("worker b", "worker", "--cluster", cluster, "--inventory", "cpus=2", "--name", "b");
        var b = second;
        WaitFor(() => b.Output().Contains("joined cluster", StringComparison.Ordinal), b, "worker b did not join");
    }

    private string Spec(string name, string? cluster)
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, name + ".yaml");
        File.WriteAllText(path, $"""
            name: {name}
            trainable: __fake
            params: {"{"}sleep: 0.05{"}"}
            search_space: {"{"}x: {"{"}grid: [0, 1, 2, 3, 4, 5]{"}"}{"}"}
            metric: episode_reward_mean
            mode: max
            stop: {"{"}training_iteration: {Iterations}{"}"}
            checkpoint: {"{"}frequency: 5{"}"}
            failure: {"{"}max_failures: 3{"}"}
            resources_per_trial: {"{"}cpu: 1{"}"}
            {(cluster is null ? "" : "cluster: " + cluster)}
            """);
        return path;
    }

    /// <summary>Every trial terminated with iterations 1..N stored once each, in order: nothing lost, nothing twice.</summary>
    private static void AssertEveryHistoryIntact(string experiment)
    {
        using var store = SqliteExperimentStore.OpenReadOnly(experiment);
        var stored = store.Load()!;
        Assert.Equal(Trials, stored.Trials.Count);
        foreach (var trial in stored.Trials)
        {
            Assert.Equal(TrialStatus.Terminated, trial.Status);
            Assert.Equal(Enumerable.Range(1, Iterations).Select(i => (long)i), store.ResultsOf(trial.Id).Select(r => r.TrainingIteration));
        }
    }

    private static long FailureCount(string experiment)
    {
        using var store = SqliteExperimentStore.OpenReadOnly(experiment);
        return store.Load()!.Trials.Sum(t => t.State["num_failures"]?.GetValue<int>() ?? 0);
    }

    private static void WaitFor(Func<bool> condition, CliProcess child, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (child.Process.HasExited || deadline.Elapsed > TimeSpan.FromSeconds(90))
                throw new Xunit.Sdk.XunitException($"{what}: {child.Name} {(child.Process.HasExited ? $"exited {child.Process.ExitCode}" : "timed out")}\n{child.Output()}");
            Thread.Sleep(20);
        }
    }

    private CliProcess Start(string name, params string[] args)
    {
        var child = CliProcess.Start(name, args, Directory.CreateDirectory(_dir).FullName);
        _children.Add(child);
        return child;
    }
}
