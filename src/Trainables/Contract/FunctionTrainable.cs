using TorchSharp;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Trainables;

/// <summary>
/// The function form: an iterator that yields one <see cref="Metrics"/> per iteration. A yielded
/// <see cref="Metrics.Checkpoint"/> becomes the function's latest checkpoint; after a restore the function is
/// started again with <see cref="FunctionContext.Checkpoint"/> set, as Ray's function trainables are.
/// </summary>
public delegate IEnumerable<Metrics> TrainFunction(TrialConfig config, FunctionContext context);

/// <summary>What a training function can see: its trial, its device and the state to resume from.</summary>
public sealed class FunctionContext
{
    internal FunctionContext(TrainableContext trial, TrainableState? checkpoint)
    {
        Trial = trial;
        Checkpoint = checkpoint;
    }

    public TrainableContext Trial { get; }

    public torch.Device Device => Trial.Device;

    /// <summary>The state to resume from, or null on a fresh start. Valid until the function next yields after a new restore.</summary>
    public TrainableState? Checkpoint { get; }
}

internal sealed class FunctionTrainable(TrainFunction function) : Trainable
{
    private IEnumerator<Metrics>? _run;
    private TrainableState? _latest;
    private long _latestIteration;
    private TrainableState? _resumeFrom;

    public override void Setup(TrialConfig config) => Config = config;

    public override Metrics Step()
    {
        _run ??= function(Config, new FunctionContext(Context, _resumeFrom)).GetEnumerator();
        if (!_run.MoveNext()) return new Metrics { IsEndOfFunction = true, Done = true };
        var metrics = _run.Current ?? throw new InvalidOperationException("a training function yielded null metrics");
        if (metrics.Checkpoint is { } checkpoint)
        {
            _latest?.Dispose();
            _latest = checkpoint;
            _latestIteration = Iteration + 1;
            metrics.Checkpoint = null;
        }
        return metrics;
    }

    public override TrainableState Save()
    {
        if (_latest is null)
            throw new NotSupportedException("the training function has not yielded a checkpoint yet (set Metrics.Checkpoint)");
        var copy = _latest.Clone();
        copy.Metadata[TrainableHost.StateIterationKey] = _latestIteration;
        return copy;
    }

    public override void Restore(TrainableState state)
    {
        Restart();
        _resumeFrom?.Dispose();
        _resumeFrom = state.Clone();
        _latest?.Dispose();
        _latest = state.Clone();
        // The restored state is now the latest checkpoint: a save before the next yield must say its iteration, not ours.
        if (state.Metadata[TrainableHost.StateIterationKey] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<long>(out var iteration))
            _latestIteration = iteration;
    }

    public override bool Reset(TrialConfig newConfig)
    {
        Restart();
        _resumeFrom?.Dispose();
        _resumeFrom = null;
        Config = newConfig;
        return true;
    }

    private void Restart()
    {
        _run?.Dispose();
        _run = null;
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        Restart();
        _latest?.Dispose();
        _resumeFrom?.Dispose();
    }
}
