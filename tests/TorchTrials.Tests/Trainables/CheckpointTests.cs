using System.Text.Json.Nodes;
using TorchSharp;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Tests.Trainables;

public class CheckpointTests
{
    private static TrialResult Result(long iteration, double score) => new()
    {
        Metrics = new List<KeyValuePair<string, object>> { new("score", score) },
        TrainingIteration = iteration,
    };

    private static TrainableState State(float value, int size = 4) =>
        new(new[] { new KeyValuePair<string, torch.Tensor>("w", torch.full(size, value)) }, new JsonObject { ["v"] = value });

    [Fact]
    public void Keep_n_retains_the_best_scoring_persistent_checkpoints_and_deletes_the_rest()
    {
        using var dir = new TempDir();
        var manager = new CheckpointManager(keepCheckpointsNum: 2, scoreAttribute: "score");
        var scores = new[] { 0.5, 0.9, 0.1, 0.7 };
        var written = new List<PersistentCheckpoint>();
        for (int i = 0; i < scores.Length; i++)
        {
            using var state = State(i);
            var ck = PersistentCheckpoint.Write(Path.Combine(dir.Path, $"ck{i}"), state, Result(i + 1, scores[i]));
            written.Add(ck);
            Assert.Null(manager.OnCheckpoint(ck));
        }

        Assert.Equal(new[] { "ck1", "ck3" }, manager.Best.Select(c => Path.GetFileName(c.Directory)));
        Assert.False(Directory.Exists(written[0].Directory));
        Assert.False(Directory.Exists(written[2].Directory));
        Assert.Same(written[3], manager.NewestPersistent);
    }

    [Fact]
    public void A_min_prefixed_score_keeps_the_lowest_values()
    {
        using var dir = new TempDir();
        var manager = new CheckpointManager(keepCheckpointsNum: 1, scoreAttribute: "min-score");
        foreach (var (i, score) in new[] { (1, 0.5), (2, 0.2), (3, 0.9) })
        {
            using var state = State(i);
            manager.OnCheckpoint(PersistentCheckpoint.Write(Path.Combine(dir.Path, $"ck{i}"), state, Result(i, score)));
        }
        Assert.Equal("ck2", Path.GetFileName(manager.Best.Single().Directory));
        Assert.True(Directory.Exists(Path.Combine(dir.Path, "ck3")), "the newest checkpoint is never deleted at once");
    }

    [Fact]
    public void A_missing_score_attribute_is_reported_by_name()
    {
        using var dir = new TempDir();
        using var state = State(1);
        var manager = new CheckpointManager(1, "accuracy");
        var message = manager.OnCheckpoint(PersistentCheckpoint.Write(Path.Combine(dir.Path, "ck"), state, Result(1, 0.5)));
        Assert.Contains("'accuracy'", message);
    }

    [Fact]
    public void The_newest_checkpoint_is_the_most_recent_of_memory_and_disk()
    {
        using var dir = new TempDir();
        var manager = new CheckpointManager();
        using (var state = State(1))
            manager.OnCheckpoint(PersistentCheckpoint.Write(Path.Combine(dir.Path, "ck"), state, Result(5, 0)));
        var memory = MemoryCheckpoint.FromState(State(2), Result(3, 0));
        manager.OnCheckpoint(memory);
        Assert.IsType<PersistentCheckpoint>(manager.Newest);
        var newer = MemoryCheckpoint.FromState(State(3), Result(6, 0));
        manager.OnCheckpoint(newer);
        Assert.Same(newer, manager.Newest);
        Assert.Throws<ObjectDisposedException>(() => memory.LoadState(torch.CPU));
    }

    [Fact]
    public void Past_the_host_budget_the_oldest_memory_checkpoints_spill_to_disk_and_still_restore()
    {
        using var dir = new TempDir();
        var store = new MemoryCheckpointStore(deviceBudgetBytes: long.MaxValue, hostBudgetBytes: 40, spillDirectory: dir.Path);
        var first = store.Add(MemoryCheckpoint.FromState(State(1f), Result(1, 0)));   // 16 bytes
        var second = store.Add(MemoryCheckpoint.FromState(State(2f), Result(2, 0)));  // 32 in all
        Assert.Equal(MemoryLocation.Device, first.Location);
        var third = store.Add(MemoryCheckpoint.FromState(State(3f), Result(3, 0)));   // 48 > 40: the oldest spills
        Assert.Equal(MemoryLocation.Disk, first.Location);
        Assert.Equal(MemoryLocation.Device, second.Location);
        Assert.Equal(MemoryLocation.Device, third.Location);
        Assert.Equal(1, store.Stats.SpillsToDisk);

        using var restored = first.LoadState(torch.CPU);
        Assert.Equal(new[] { 1f, 1f, 1f, 1f }, restored["w"].data<float>().ToArray());
        Assert.Equal(1f, restored.Metadata["v"]!.GetValue<float>());
        first.Delete();
        Assert.Empty(Directory.GetDirectories(dir.Path));
    }

    [Fact]
    public void A_lease_keeps_a_deleted_checkpoint_readable_until_it_ends()
    {
        var checkpoint = MemoryCheckpoint.FromState(State(5f), Result(1, 0));
        var lease = checkpoint.Retain();
        checkpoint.Delete();
        float seen = 0;
        checkpoint.WithState(torch.CPU, s => seen = s["w"][0].item<float>());
        Assert.Equal(5f, seen);
        lease.Dispose();
        Assert.Throws<ObjectDisposedException>(() => checkpoint.LoadState(torch.CPU));
    }

    [Fact]
    public void A_pending_checkpoint_is_read_once_its_state_arrives_from_another_thread()
    {
        var checkpoint = MemoryCheckpoint.Pending(Result(1, 0));
        var producer = new Thread(() =>
        {
            Thread.Sleep(50);
            checkpoint.Complete(State(7f));
        });
        producer.Start();
        using var state = checkpoint.LoadState(torch.CPU);
        producer.Join();
        Assert.Equal(7f, state["w"][0].item<float>());
    }

    [Fact]
    public void Capture_and_restore_copy_model_and_optimizer_state_in_place()
    {
        var model = torch.nn.Linear(3, 2);
        var optimizer = torch.optim.Adam(model.parameters(), 0.1);
        using (var x = torch.ones(4, 3))
        {
            optimizer.zero_grad();
            model.forward(x).sum().backward();
            optimizer.step();
        }
        using var saved = TrainableState.Capture(model, optimizer);
        var weightBefore = model.weight!.data<float>().ToArray();
        var liveWeight = model.weight;

        using (torch.no_grad()) model.weight.add_(1);
        saved.RestoreInto(model, optimizer);

        Assert.Same(liveWeight, model.weight);
        Assert.Equal(weightBefore, model.weight.data<float>().ToArray());
        Assert.Contains(saved.Tensors, t => t.Key.StartsWith("optimizer.0.exp_avg", StringComparison.Ordinal));
        Assert.Equal(1, saved.Metadata["optimizer_state"]!["optimizer.0.step"]!.GetValue<long>());
    }
}

public class TrialConfigTests
{
    [Fact]
    public void Values_keep_their_types_through_json()
    {
        var config = TrialConfig.From(("lr", 3.0), ("width", 64), ("name", "a"), ("flag", true), ("list", new object[] { 1, 2.0 }));
        var back = TrialConfig.FromJson(config.ToJson());
        Assert.Equal(config, back);
        Assert.IsType<double>(back["lr"]);
        Assert.IsType<long>(back["width"]);
        Assert.Equal(config, TrialConfig.FromJsonNode(config.ToJsonObject()));
    }

    [Fact]
    public void Typed_getters_convert_and_name_the_key_when_they_cannot()
    {
        var config = TrialConfig.From(("width", 64L), ("lr", "0.5"));
        Assert.Equal(64, config.GetInt("width"));
        Assert.Equal(0.5, config.GetDouble("lr"));
        Assert.Equal(7, config.GetInt("depth", 7));
        Assert.Contains("'depth'", Assert.Throws<KeyNotFoundException>(() => config.GetInt("depth")).Message);
        Assert.Contains("'lr'", Assert.Throws<FormatException>(() => config.GetInt("lr")).Message);
    }
}
