using System.Text.Json.Nodes;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Tests.Support;

/// <summary>
/// An <see cref="ITrialControl"/> for calling schedulers directly: trials are plain objects whose status the test sets,
/// and every request a scheduler makes is recorded. Memory checkpoints carry the trial's "state" (a number the test
/// sets) so exploits can be checked.
/// </summary>
public sealed class FakeTrialControl : ITrialControl
{
    private readonly List<Trial> _trials = new();

    public FakeTrialControl(int cpus = 8, int gpus = 0) =>
        Allocator = new DeviceSlotAllocator(DeviceInventory.Simulated(cpus, gpus, 16));

    public IReadOnlyList<Trial> Trials => _trials;

    public IEnumerable<Trial> PendingTrials => _trials.Where(t => t.Status == TrialStatus.Pending);

    public IEnumerable<Trial> PausedTrials => _trials.Where(t => t.Status == TrialStatus.Paused);

    public Func<Trial, bool> Fits { get; set; } = _ => true;

    public Dictionary<Trial, double> State { get; } = new();

    public List<string> Log { get; } = new();

    public List<(Trial Recipient, Checkpoint Donor, TrialConfig Config, string Tag)> Exploits { get; } = new();

    public List<(Trial Trial, Resources Resources)> ResourceChanges { get; } = new();

    public double ElapsedSeconds { get; set; }

    public DeviceSlotAllocator Allocator { get; }

    public Trial Add(string id, TrialConfig? config = null, TrialStatus status = TrialStatus.Running, Resources? resources = null, string tag = "")
    {
        var trial = new Trial("__fake", config, trialId: id, resources: resources, experimentTag: tag) { Status = status };
        _trials.Add(trial);
        return trial;
    }

    public bool HasResourcesFor(Trial trial) => Fits(trial);

    public MemoryCheckpoint SaveToMemory(Trial trial)
    {
        Log.Add($"save {trial.Id}");
        var checkpoint = MemoryCheckpoint.FromState(new TrainableState(metadata: new JsonObject { ["state"] = State.GetValueOrDefault(trial) }), trial.LastResult);
        trial.Checkpoints.OnCheckpoint(checkpoint);
        return checkpoint;
    }

    public void PauseTrial(Trial trial)
    {
        Log.Add($"pause {trial.Id}");
        SaveToMemory(trial);
        trial.Status = TrialStatus.Paused;
    }

    /// <summary>Told about stops the way the controller tells it: OnTrialRemove for waiting trials, OnTrialComplete for running ones.</summary>
    public ITrialScheduler? Scheduler { get; set; }

    public void StopTrial(Trial trial)
    {
        Log.Add($"stop {trial.Id}");
        var previous = trial.Status;
        trial.Status = TrialStatus.Terminated;
        if (previous is TrialStatus.Pending or TrialStatus.Paused) Scheduler?.OnTrialRemove(this, trial);
        else if (previous == TrialStatus.Running) Scheduler?.OnTrialComplete(this, trial, trial.LastResult);
    }

    public void UnpauseTrial(Trial trial)
    {
        Log.Add($"unpause {trial.Id}");
        trial.Status = TrialStatus.Pending;
    }

    public void ExploitTrial(Trial recipient, Checkpoint donorCheckpoint, TrialConfig newConfig, string newTag)
    {
        Log.Add($"exploit {recipient.Id}");
        Exploits.Add((recipient, donorCheckpoint, newConfig, newTag));
        using var state = donorCheckpoint.LoadState(TorchSharp.torch.CPU);
        State[recipient] = state.Metadata["state"]!.GetValue<double>();
        recipient.SetConfigFromController(newConfig);
        recipient.ExperimentTag = newTag;
    }

    public void ChangeTrialResources(Trial trial, Resources resources)
    {
        Log.Add($"resize {trial.Id}");
        ResourceChanges.Add((trial, resources));
        trial.SetResourcesFromController(resources);
    }
}

/// <summary>Results for direct scheduler calls.</summary>
public static class Results
{
    public static TrialResult At(long iteration, double score, string metric = "score", double? timeTotal = null) => new()
    {
        Metrics = new[] { new KeyValuePair<string, object>(metric, score) },
        TrainingIteration = iteration,
        TimeTotalS = timeTotal ?? iteration,
    };

    public static TrialResult With(long iteration, params (string Key, object Value)[] metrics) => new()
    {
        Metrics = metrics.Select(m => new KeyValuePair<string, object>(m.Key, m.Value)).ToArray(),
        TrainingIteration = iteration,
        TimeTotalS = iteration,
    };
}
