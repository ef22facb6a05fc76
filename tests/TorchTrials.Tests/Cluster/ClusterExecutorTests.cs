using Microsoft.Data.Sqlite;
using TorchTrials.Cluster;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Cluster;

/// <summary>The cluster executor on three in-process silos, each a worker with a simulated machine of its own.</summary>
[Collection(ClusterFailover.Name)]
public sealed class ClusterExecutorTests
{
    private static TrainableContext Context(Trial trial, DeviceSlot slot) => new() { TrialId = trial.Id, Slot = slot };

    private static ClusterTrialExecutor Executor(TestCluster cluster, int nodes)
    {
        var executor = new ClusterTrialExecutor(cluster.Client, TrainableRegistry.CreateDefault(), new ExecutorOptions(),
            new ClusterExecutorOptions { MembershipInterval = TimeSpan.FromMilliseconds(100) });
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (executor.Nodes.Count < nodes)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{executor.Nodes.Count} of {nodes} workers joined");
            Thread.Sleep(50);
        }
        return executor;
    }

    [Fact]
    public async Task Fractional_requests_pack_onto_one_node_at_a_time_and_a_request_is_never_split_across_nodes()
    {
        await using var cluster = await TestCluster.StartAsync(3, "cpus=4,gpus=2x16GiB");
        using var executor = Executor(cluster, 3);
        var half = new Resources(cpu: 1, gpu: 0.5);

        var trials = Enumerable.Range(0, 12).Select(i => new Trial("__fake", trialId: $"h{i}", resources: half)).ToList();
        foreach (var trial in trials) Assert.True(executor.Start(trial, null, Context), $"{trial.Id} did not start");

        // First fit in node order: four half-GPU trials fill a node (2 GPUs, 4 CPUs) before the next one gets any.
        Assert.All(cluster.Nodes.Values, node => Assert.Equal(4, node.Allocator.LiveSlots));
        // The progress line sums the workers, not one machine's share.
        Assert.Equal("Resources requested: 12/12 CPUs, 6/6 GPUs on 3 workers", executor.DescribeUsage());
        var extra = new Trial("__fake", trialId: "extra", resources: half);
        Assert.False(executor.HasResourcesFor(extra));
        Assert.False(executor.Start(extra, null, Context));

        // Six GPUs in the cluster, but no machine has three: refused, not split.
        var wide = new Trial("__fake", trialId: "wide", resources: new Resources(cpu: 1, gpu: 3));
        Assert.Throws<ResourceRequestException>(() => executor.Start(wide, null, Context));

        // Free the node of the first four trials: a two-GPU trial fits there only, whole.
        foreach (var trial in trials.Take(4)) executor.Stop(trial, error: false);
        var two = new Trial("__fake", trialId: "two", resources: new Resources(cpu: 1, gpu: 2));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!executor.HasResourcesFor(two))
        {
            Assert.True(DateTime.UtcNow < deadline, "the stopped trials' slots were not freed");
            executor.NextEvent(TimeSpan.FromMilliseconds(20));
        }
        Assert.True(executor.Start(two, null, Context));
        Assert.Equal(new[] { 1, 4, 4 }, cluster.Nodes.Values.Select(n => n.Allocator.LiveSlots).Order());
        var holder = cluster.Nodes.Values.Single(n => n.Allocator.LiveSlots == 1);
        Assert.Equal(0, holder.Allocator.Committed.GpuTotal.CompareTo(new Resources(gpu: 2).GpuTotal));
    }

    /// <summary>The leaving worker held two trials: both went back to the queue and resumed elsewhere.</summary>
    [Fact]
    public Task A_sweep_whose_worker_leaves_mid_trial_finishes_every_trial_elsewhere_with_each_result_stored_once() =>
        TwoTrialsOfOneWorkerAreRequeued(3, (cluster, _) => cluster.StopAsync(cluster.Cluster.Silos[1]), new ClusterExecutorOptions());

    /// <summary>
    /// A node stops a controller's trials when no poll reaches it for its lease (seen on PostgreSQL membership: polls sent
    /// through a just-killed worker's gateway waited out their timeout), and no event says so: the controller must learn
    /// it from the node's orphan epoch and requeue them, or the sweep waits on them for ever.
    /// </summary>
    [Fact]
    public Task A_worker_that_stopped_our_trials_for_want_of_polls_gets_them_requeued_and_the_sweep_finishes() =>
        TwoTrialsOfOneWorkerAreRequeued(2, (_, node) => Broken(node.ExpireControllerLease), new ClusterExecutorOptions());

    /// <summary>
    /// A worker every poll of which fails while membership still lists it (a partition, or a death the membership has not
    /// voted yet): after <see cref="ClusterExecutorOptions.UnreachableAfter"/> the controller takes it as lost.
    /// </summary>
    [Fact]
    public Task A_worker_that_no_poll_reaches_is_taken_as_lost_and_its_trials_finish_elsewhere() =>
        TwoTrialsOfOneWorkerAreRequeued(2, (_, node) => Broken(node.RefusePolls), new ClusterExecutorOptions { UnreachableAfter = TimeSpan.FromSeconds(1) });

    private static Task Broken(Action breakIt)
    {
        breakIt();
        return Task.CompletedTask;
    }

    /// <summary>
    /// A sweep of two trials per worker (2 CPUs each, trials of 1 CPU) whose second worker is broken by
    /// <paramref name="breakIt"/> once it runs two trials: every trial still ends with iterations 1..30 stored once each,
    /// and exactly the two of that worker were requeued.
    /// </summary>
    private static async Task TwoTrialsOfOneWorkerAreRequeued(int workers, Func<TestCluster, ClusterNode, Task> breakIt, ClusterExecutorOptions options)
    {
        await using var cluster = await TestCluster.StartAsync(workers, "cpus=2");
        using var dir = new TempDir();
        var tuner = new Tuner("__fake",
            new SearchSpace { ["x"] = Domain.Grid([.. Enumerable.Range(0, 2 * workers).Cast<object>()]), ["sleep"] = 0.05 },
            new TuneConfig { Metric = "episode_reward_mean", Mode = MetricMode.Max },
            OnCluster(cluster, dir, "exp", 30, options) with { Checkpoint = new CheckpointConfig { Frequency = 5 }, MaxFailures = 3 },
            loggerFactory: cluster.Logs);
        var run = Task.Run(() => tuner.Fit());

        var node = cluster.NodeOf(cluster.Cluster.Silos[1]);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (node.RunningTrials < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the worker never ran two trials");
            await Task.Delay(20);
        }
        await Task.Delay(800);
        await breakIt(cluster, node);

        var patience = TimeSpan.FromSeconds(120);
        var finished = await Task.WhenAny(run, Task.Delay(patience));
        Assert.True(finished == run, $"the sweep did not finish in {patience.TotalSeconds:0} s: {Stored(Path.Combine(dir.Path, "exp"))}{Environment.NewLine}{cluster.Describe()}");
        var grid = await run;
        Assert.Equal(2 * workers, grid.Count);
        Assert.Equal(0, grid.NumErrors);
        using var store = SqliteExperimentStore.Open(Path.Combine(dir.Path, "exp"));
        foreach (var trial in grid)
            Assert.Equal(Enumerable.Range(1, 30).Select(i => (long)i), store.ResultsOf(trial.TrialId).Select(r => r.TrainingIteration));
        Assert.Equal(2, grid.Count(t => t.NumFailures > 0));
    }

    /// <summary>What the store of a sweep that is still running holds so far: each trial's status, results and status changes.</summary>
    private static string Stored(string experiment)
    {
        try
        {
            using var connection = new SqliteConnection($"Data Source={Path.Combine(experiment, SqliteExperimentStore.FileName)};Mode=ReadOnly;Pooling=False");
            connection.Open();
            using var query = connection.CreateCommand();
            query.CommandText = """
                SELECT t.trial_id, t.status,
                       (SELECT COUNT(*) || ' results, last ' || IFNULL(MAX(iteration), 0) FROM results r WHERE r.trial_id = t.trial_id),
                       (SELECT GROUP_CONCAT(status || ' (' || IFNULL(reason, '') || ')', ' > ') FROM status_changes c WHERE c.trial_id = t.trial_id)
                FROM trials t ORDER BY t.sequence
                """;
            using var reader = query.ExecuteReader();
            var lines = new List<string>();
            while (reader.Read())
                lines.Add($"{reader.GetString(0)} {reader.GetString(1)}, {reader.GetString(2)}: {(reader.IsDBNull(3) ? "" : reader.GetString(3))}");
            return string.Join(Environment.NewLine, lines);
        }
        catch (SqliteException e)
        {
            return "the store cannot be read: " + e.Message;
        }
    }

    /// <summary>
    /// A sweep that fuses, on workers: trials of one key share an array on one slot of a node, up to max_members lanes,
    /// the next one opens an array on a node with a free slot, a freed lane is refilled in place, and each lane's results
    /// are those of the trial trained alone (LaneToy's closed form).
    /// </summary>
    [Fact]
    public async Task Fused_trials_share_an_array_on_one_slot_of_a_worker_and_a_freed_lane_is_refilled_there()
    {
        var registry = LaneToy.Register(TrainableRegistry.CreateDefault());
        await using var cluster = await TestCluster.StartAsync(2, "cpus=1", registry);
        using var executor = new ClusterTrialExecutor(cluster.Client, registry, new ExecutorOptions(),
            new ClusterExecutorOptions { MembershipInterval = TimeSpan.FromMilliseconds(100) }, fusion: new FusionOptions { MaxMembers = 3 });
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (executor.Nodes.Count < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the workers did not join");
            Thread.Sleep(50);
        }
        Trial Toy(string id, double lr) => new("lane_toy", TrialConfig.From(("lr", lr)), id, new Resources(cpu: 1));

        // Three lanes fill the first worker's only slot; the fourth opens an array on the other worker.
        var trials = new[] { Toy("a", 0.1), Toy("b", 0.2), Toy("c", 0.3), Toy("d", 0.05) };
        foreach (var trial in trials)
        {
            Assert.True(executor.HasResourcesFor(trial), $"no room for {trial.Id}");
            Assert.True(executor.Start(trial, null, Context), $"{trial.Id} did not start");
        }
        var first = trials[0].Lane!.Split('/')[0];
        Assert.All(trials.Take(3), t => Assert.StartsWith(first + "/a1.", t.Lane, StringComparison.Ordinal));
        Assert.NotEqual(first, trials[3].Lane!.Split('/')[0]);
        Assert.All(cluster.Nodes.Values, node => Assert.Equal((1, 1), (node.ArrayCount, node.Allocator.LiveSlots)));

        var results = Train(executor, trials, 5);
        foreach (var trial in trials)
        {
            double lr = trial.Config.GetDouble("lr", 0);
            Assert.Equal(Enumerable.Range(1, 5).Select(i => (long)i), results[trial].Select(r => r.TrainingIteration));
            for (int i = 0; i < 5; i++) Assert.Equal(LaneToy.LossAfter(0, lr, i + 1), Convert.ToDouble(results[trial][i]["loss"]), 9);
        }

        // A stopped lane is refilled in place: no new array, no new slot.
        executor.Stop(trials[1], error: false);
        var e = Toy("e", 0.25);
        Assert.True(executor.HasResourcesFor(e));
        Assert.True(executor.Start(e, null, Context));
        Assert.StartsWith(first + "/a1.", e.Lane, StringComparison.Ordinal);
        Assert.All(cluster.Nodes.Values, node => Assert.Equal((1, 1), (node.ArrayCount, node.Allocator.LiveSlots)));
        var refilled = Train(executor, new[] { e }, 3)[e];
        for (int i = 0; i < 3; i++) Assert.Equal(LaneToy.LossAfter(0, 0.25, i + 1), Convert.ToDouble(refilled[i]["loss"]), 9);

        // Every lane gone, every array closes and gives its slot back, on the node and on the controller's mirror.
        foreach (var trial in trials.Append(e)) executor.Stop(trial, error: false);
        var unfused = new Trial("__fake", trialId: "alone", resources: new Resources(cpu: 1));
        deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!executor.HasResourcesFor(unfused) || cluster.Nodes.Values.Any(n => n.Allocator.LiveSlots > 0) || executor.DescribeUsage() != "Resources requested: 0/2 CPUs, 0/0 GPUs on 2 workers")
        {
            Assert.True(DateTime.UtcNow < deadline, $"the arrays' slots were not freed: {executor.DescribeUsage()}");
            executor.NextEvent(TimeSpan.FromMilliseconds(20));
        }
    }

    /// <summary>A Tuner sweep with <c>executor: {fuse: auto}</c> on a cluster trains its trials as lanes on the workers.</summary>
    [Fact]
    public async Task A_fused_sweep_on_a_cluster_runs_its_trials_as_lanes_with_the_results_of_each_trained_alone()
    {
        var registry = LaneToy.Register(TrainableRegistry.CreateDefault());
        await using var cluster = await TestCluster.StartAsync(2, "cpus=1", registry);
        using var dir = new TempDir();
        var grid = new Tuner("lane_toy",
            new SearchSpace { ["lr"] = Domain.Grid(0.05, 0.1, 0.15, 0.2, 0.25, 0.3) },
            new TuneConfig { Metric = "loss", Mode = MetricMode.Min, Fusion = new FusionOptions { MaxMembers = 3 } },
            OnCluster(cluster, dir, "exp", 20),
            registry).Fit();

        Assert.Equal(0, grid.NumErrors);
        Assert.Equal(6, grid.Count);
        // Two workers of one CPU, three lanes an array: the six trials ran three to an array, one array on each worker.
        Assert.All(grid, t => Assert.Matches(@"^.+/a\d+\.[0-2]$", t.Lane));
        Assert.Equal(2, grid.Select(t => t.Lane!.Split('/')[0]).Distinct().Count());
        using var store = SqliteExperimentStore.Open(Path.Combine(dir.Path, "exp"));
        foreach (var trial in grid)
        {
            double lr = trial.Config.GetDouble("lr", 0);
            var losses = store.ResultsOf(trial.TrialId).Select(r => Convert.ToDouble(r["loss"])).ToList();
            // From the trial's own seed (w_0 = seed % 7), each step scales w - 3 by (1 - 2 lr): the loss by its square.
            Assert.Equal(Enumerable.Range(1, 20).Select(i => losses[0] * Math.Pow(1 - 2 * lr, 2 * (i - 1))), losses, new ToleranceComparer(1e-9));
        }
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(double obj) => 0;
    }

    /// <summary>
    /// The run config of a Tuner sweep on <paramref name="cluster"/>: one CPU a trial, <paramref name="iterations"/> each,
    /// no trial files, quiet, membership looked at every 100 ms.
    /// </summary>
    private static RunConfig OnCluster(TestCluster cluster, TempDir dir, string name, int iterations, ClusterExecutorOptions? options = null) => new()
    {
        Name = name,
        StoragePath = dir.Path,
        Stop = Stop.AfterIterations(iterations),
        ResourcesPerTrial = new Resources(cpu: 1),
        Loggers = TrialFileOptions.None,
        Quiet = true,
        ExecutorFactory = ClusterExecutorFactory.For(cluster.Client, (options ?? new ClusterExecutorOptions()) with { MembershipInterval = TimeSpan.FromMilliseconds(100) }),
    };

    /// <summary>Trains <paramref name="trials"/> for <paramref name="steps"/> iterations each and gathers their results.</summary>
    private static Dictionary<Trial, List<TrialResult>> Train(ITrialExecutor executor, IReadOnlyList<Trial> trials, int steps)
    {
        var results = trials.ToDictionary(t => t, _ => new List<TrialResult>());
        foreach (var trial in trials) executor.ContinueTraining(trial, steps);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (results.Values.Any(r => r.Count < steps))
        {
            Assert.True(DateTime.UtcNow < deadline, "the trials did not train in time");
            switch (executor.NextEvent(TimeSpan.FromMilliseconds(50)))
            {
                case ResultEvent r when results.ContainsKey(r.Trial):
                    results[r.Trial].AddRange(r.Results);
                    break;
                case FailureEvent f:
                    throw new Xunit.Sdk.XunitException($"trial {f.Trial.Id} failed: {f.Error}");
            }
        }
        return results;
    }

    [Fact]
    public async Task A_worker_that_joins_mid_sweep_receives_trials()
    {
        await using var cluster = await TestCluster.StartAsync(1, "cpus=1");
        using var dir = new TempDir();
        var tuner = new Tuner("__fake",
            new SearchSpace { ["x"] = Domain.Grid(0, 1, 2, 3, 4, 5), ["sleep"] = 0.02 },
            new TuneConfig { Metric = "episode_reward_mean", Mode = MetricMode.Max },
            OnCluster(cluster, dir, "exp", 20));
        var first = cluster.Nodes.Values.Single();
        var run = Task.Run(() => tuner.Fit());
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (first.RunningTrials == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the first worker never ran a trial");
            await Task.Delay(20);
        }

        var joined = await cluster.AddAsync();
        int most = 0;
        while (!run.IsCompleted)
        {
            most = Math.Max(most, joined.RunningTrials);
            await Task.Delay(5);
        }
        var grid = await run;

        Assert.Equal(0, grid.NumErrors);
        Assert.All(grid, t => Assert.Equal(20, t.LastResult!.TrainingIteration));
        Assert.Equal(1, most);
    }

    [Fact]
    public async Task A_pbt_exploit_across_workers_moves_the_donors_state_to_the_recipients_worker()
    {
        // One CPU per worker and two trials: each runs on its own worker, so every exploit crosses machines. Each step
        // sleeps 20 ms so the two trials overlap: a toy step takes microseconds, and under load the first trial could
        // finish before the second reported, leaving PBT a population of one and nothing to exploit.
        await using var cluster = await TestCluster.StartAsync(2, "cpus=1", LaneToy.Register(TrainableRegistry.CreateDefault()));
        using var dir = new TempDir();
        var pbt = new PopulationBasedTraining(new PbtOptions
        {
            Metric = "loss",
            Mode = MetricMode.Min,
            TimeAttr = "training_iteration",
            PerturbationInterval = 3,
            QuantileFraction = 0.5,
            HyperparamMutations = new Dictionary<string, PbtMutation> { ["lr"] = PbtMutation.Uniform(0.01, 0.3) },
            Seed = 3,
        });
        var tuner = new Tuner("lane_toy",
            new SearchSpace { ["lr"] = Domain.Grid(0.02, 0.2), ["step_ms"] = 20 },
            new TuneConfig { Metric = "loss", Mode = MetricMode.Min, Scheduler = pbt },
            OnCluster(cluster, dir, "pbt", 12),
            LaneToy.Register(TrainableRegistry.CreateDefault()));

        var grid = await Task.Run(() => tuner.Fit()).WaitAsync(TimeSpan.FromSeconds(120));

        Assert.Equal(0, grid.NumErrors);
        using var store = SqliteExperimentStore.Open(Path.Combine(dir.Path, "pbt"));
        var exploits = store.Exploits();
        Assert.NotEmpty(exploits);
        foreach (var exploit in exploits)
        {
            // The recipient's next step starts from the donor's w at the exploit (w' = w - 2 lr (w - 3), its new lr):
            // the state came across, not the recipient's own.
            double donorW = W(store, exploit.DonorId, exploit.Iteration);
            double lr = System.Text.Json.Nodes.JsonNode.Parse(exploit.NewConfig)!["lr"]!.GetValue<double>();
            Assert.Equal(donorW - 2 * lr * (donorW - 3), W(store, exploit.TrialId, exploit.Iteration + 1), 9);
        }
    }

    private static double W(SqliteExperimentStore store, string trialId, long iteration) =>
        store.ResultsOf(trialId).Single(r => r.TrainingIteration == iteration).GetDouble("w");
}
