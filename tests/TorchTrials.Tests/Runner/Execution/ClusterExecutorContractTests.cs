using Orleans.TestingHost;
using TorchTrials.Cluster;
using TorchTrials.Gpu;
using TorchTrials.Runner.Execution;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner.Execution;

/// <summary>One Orleans silo in this process whose node each scenario swaps for its own (the silo stays up across them).</summary>
public sealed class SingleNodeCluster : IAsyncLifetime
{
    private readonly List<ClusterNode> _nodes = new();

    public ClusterNodeHost Host { get; } = new();

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public ClusterNode Serve(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions options)
    {
        var node = new ClusterNode(allocator, registry, "contract", options);
        _nodes.Add(node);
        Host.Node = node;
        return node;
    }

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) => silo.AddTorchTrialsNode(Host));
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.DisposeAsync();
        foreach (var node in _nodes) node.Dispose();
    }
}

/// <summary>
/// The contract on the cluster executor: the controller in this process is an Orleans client, the trials run on the
/// node of one silo built on the scenario's allocator, so the slots the scenarios count are the node's own.
/// </summary>
[Collection(ForcedCollections.Name)]
public sealed class ClusterExecutorContractTests(SingleNodeCluster cluster) : ExecutorContractTests, IClassFixture<SingleNodeCluster>
{
    private const string NoReuse = "trainable reuse is off across a cluster: each start builds its trainable on the node";

    protected override ITrialExecutor CreateExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions options)
    {
        cluster.Serve(allocator, registry, options);
        return new ClusterTrialExecutor(cluster.Cluster.Client, registry, options, new ClusterExecutorOptions { JoinTimeout = TimeSpan.FromSeconds(20) });
    }

    [Fact(Skip = NoReuse)]
    public override void A_reused_trainable_keeps_its_slot_and_starts_the_next_trial_from_iteration_one() { }

    [Fact(Skip = NoReuse)]
    public override void A_reused_trainable_that_cannot_reset_fails_the_start_and_frees_its_slot() { }

    [Fact(Skip = NoReuse)]
    public override void A_failed_trial_is_not_kept_for_reuse() { }

    [Fact]
    public override void Disposing_the_executor_frees_every_slot_of_running_and_cached_trials()
    {
        var (executor, allocator) = Executor(cpus: 3);
        foreach (var trial in new[] { Fake("r1"), Fake("r2"), Fake("r3") })
        {
            Assert.True(executor.Start(trial, null, Context));
            executor.ContinueTraining(trial, 1000);
        }
        executor.Dispatch();
        Assert.Equal(3, allocator.LiveSlots);

        executor.Dispose();
        executor.Dispose();

        Assert.Equal(0, allocator.LiveSlots);
    }
}

/// <summary>
/// The contract on the cluster executor for a sweep that fuses: every trial is a lane of a fused array on the node
/// (LaneToy in place of <c>__fake</c> and <c>synthetic_regression</c>, one lane per array, so the slot scenarios apply
/// unchanged), as <see cref="FusedExecutorContractTests"/> runs it in one process.
/// </summary>
[Collection(ForcedCollections.Name)]
public sealed class FusedClusterExecutorContractTests(SingleNodeCluster cluster) : ExecutorContractTests, IClassFixture<SingleNodeCluster>
{
    private const string NoReuse = "reuse resets a trial-alone trainable; a fused lane is refilled instead, and reuse is off across a cluster";

    protected override ITrialExecutor CreateExecutor(DeviceSlotAllocator allocator, TrainableRegistry registry, ExecutorOptions options)
    {
        LaneToy.Register(registry, "__fake");
        LaneToy.Register(registry, "synthetic_regression");
        cluster.Serve(allocator, registry, options);
        return new ClusterTrialExecutor(cluster.Cluster.Client, registry, options, new ClusterExecutorOptions { JoinTimeout = TimeSpan.FromSeconds(20) },
            fusion: new FusionOptions { MaxMembers = 1 });
    }

    [Fact(Skip = NoReuse)]
    public override void A_reused_trainable_keeps_its_slot_and_starts_the_next_trial_from_iteration_one() { }

    [Fact(Skip = NoReuse)]
    public override void A_reused_trainable_that_cannot_reset_fails_the_start_and_frees_its_slot() { }

    [Fact(Skip = NoReuse)]
    public override void A_failed_trial_is_not_kept_for_reuse() { }
}
