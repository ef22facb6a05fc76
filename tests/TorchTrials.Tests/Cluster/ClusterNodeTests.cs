using TorchTrials.Cluster;
using TorchTrials.Gpu;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Cluster;

/// <summary>A worker's node on its own, driven as a controller would drive it (and as a dead one would not).</summary>
public sealed class ClusterNodeTests
{
    private static NodeOp StartOp(string trialId, int incarnation) => new()
    {
        Kind = NodeOpKind.Start, TrialId = trialId, Incarnation = incarnation, Trainable = "__fake",
        ConfigJson = """{"sleep": 0.02}""", ResourcesJson = new Resources(cpu: 1).ToJson(),
    };

    private static void WaitFor(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, what);
            Thread.Sleep(20);
        }
    }

    /// <summary>
    /// A worker without trials sleeps until a command comes (it spun a whole core before: the executor's wait returns at
    /// once when it has nothing to do). Counted in turns of its loop, not timed: a slow machine only makes fewer turns.
    /// </summary>
    [Fact]
    public async Task A_node_without_trials_sleeps_and_wakes_for_a_start()
    {
        using var node = new ClusterNode(new DeviceSlotAllocator(DeviceInventory.Parse("cpus=2")), TrainableRegistry.CreateDefault(), "n");
        long before = node.LoopIterations;
        await Task.Delay(1000);
        // At 100 ms a turn about 10 turns a second; spinning made hundreds of thousands.
        Assert.InRange(node.LoopIterations - before, 0, 100);

        // A command wakes it: the start is answered without waiting out the idle sleep many times over.
        var started = node.Start(StartOp("t1", 1));
        Assert.Equal(StartOutcome.Started, (await started.WaitAsync(TimeSpan.FromSeconds(30))).Outcome);
        await node.Apply([new NodeOp { Kind = NodeOpKind.Continue, TrialId = "t1", Incarnation = 1, Steps = 3 }]);
        var results = new List<string>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (results.Count < 3)
        {
            Assert.True(DateTime.UtcNow < deadline, "the trial did not train");
            results.AddRange((await node.Poll(100)).Events.Where(e => e.Kind == NodeEventKind.Results).SelectMany(e => e.Results));
        }
    }

    [Fact]
    public async Task Trials_whose_controller_stops_polling_are_stopped_and_their_slots_freed()
    {
        using var node = new ClusterNode(new DeviceSlotAllocator(DeviceInventory.Parse("cpus=2")), TrainableRegistry.CreateDefault(), "n",
            controllerLease: TimeSpan.FromSeconds(3));
        Assert.Equal(StartOutcome.Started, (await node.Start(StartOp("t1", 1))).Outcome);
        await node.Apply([new NodeOp { Kind = NodeOpKind.Continue, TrialId = "t1", Incarnation = 1, Steps = 100_000 }]);
        Assert.Equal(1, node.RunningTrials);

        // Polled for a while: the trial keeps running past the lease.
        // (A lease of seconds: under a loaded CI machine, polls a moment apart can be half a second apart.)
        var polled = DateTime.UtcNow;
        while (DateTime.UtcNow - polled < TimeSpan.FromSeconds(4)) await node.Poll(100);
        Assert.Equal(1, node.RunningTrials);

        // Then nobody polls (the controller was killed): the node gives the machine back.
        WaitFor(() => node.RunningTrials == 0 && node.Allocator.LiveSlots == 0, "the orphaned trial was not stopped");
    }

    [Fact]
    public async Task A_trial_started_again_stops_the_run_a_dead_controller_left_and_then_starts()
    {
        using var node = new ClusterNode(new DeviceSlotAllocator(DeviceInventory.Parse("cpus=2")), TrainableRegistry.CreateDefault(), "n");
        Assert.Equal(StartOutcome.Started, (await node.Start(StartOp("t1", 1))).Outcome);
        await node.Apply([new NodeOp { Kind = NodeOpKind.Continue, TrialId = "t1", Incarnation = 1, Steps = 100_000 }]);

        // A resumed controller numbers incarnations from 1 again.
        var again = await node.Start(StartOp("t1", 1));
        Assert.Equal(StartOutcome.NoSlot, again.Outcome);
        WaitFor(() => node.Allocator.LiveSlots == 0, "the left run did not stop");

        Assert.Equal(StartOutcome.Started, (await node.Start(StartOp("t1", 1))).Outcome);
        Assert.Equal(1, node.RunningTrials);
    }
}
