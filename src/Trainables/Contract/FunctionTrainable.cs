using TorchSharp;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Trainables;

/// <summary>
/// The function form: an iterator that yields one <see cref="Metrics"/> per iteration. A yielded
/// <see cref="Metrics.Checkpoint"/> becomes the function's latest checkpoint; after a restore the function is
/// started again with <see cref="FunctionContext.Checkpoint"/> set, as Ray's function trainables are.
/// Tensors the function creates before its first yield (its data, its model) live until it returns, is restarted
/// or its trainable is disposed (so do its first iteration's temporaries: one step's worth, once); each later step's
/// tensors are freed when the step yields, unless passed to
/// <see cref="FunctionContext.Keep"/>. (Ray runs the function on a thread of its own and Python frees by reference
/// count; here the function runs step by step on the trial's thread, so tensors need an owner.)
/// </summary>
public delegate IEnumerable<Metrics> TrainFunction(TrialConfig config, FunctionContext context);

/// <summary>What a training function can see: its trial, its device and the state to resume from.</summary>
public sealed class FunctionContext
{
    private readonly OwnedTensors _kept;

    internal FunctionContext(TrainableContext trial, TrainableState? checkpoint, OwnedTensors kept)
    {
        Trial = trial;
        Checkpoint = checkpoint;
        _kept = kept;
    }

    public TrainableContext Trial { get; }

    public torch.Device Device => Trial.Device;

    /// <summary>The state to resume from, or null on a fresh start. Valid until the function next yields after a new restore.</summary>
    public TrainableState? Checkpoint { get; }

    /// <summary>
    /// Keeps a tensor created after the first yield (a running total, a best-so-far copy) until the function returns,
    /// instead of freeing it when its step yields. Returns <paramref name="tensor"/>.
    /// </summary>
    public T Keep<T>(T tensor) where T : torch.Tensor => _kept.Add(tensor);
}

internal sealed class FunctionTrainable(TrainFunction function) : Trainable
{
    private IEnumerator<Metrics>? _run;
    private TrainableState? _latest;
    private long _latestIteration;
    private TrainableState? _resumeFrom;
    private readonly OwnedTensors _lifetime = new();

    public override void Setup(TrialConfig config) => Config = config;

    public override Metrics Step()
    {
        if (!MoveNext())
        {
            _lifetime.Dispose();
            return new Metrics { IsEndOfFunction = true, Done = true };
        }
        var metrics = _run!.Current ?? throw new InvalidOperationException("a training function yielded null metrics");
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

    // The first call runs the function up to its first yield in a scope of its own, whose tensors the function then
    // owns; later calls run in the host's step scope, which frees what they create.
    private bool MoveNext()
    {
        if (_run is null)
        {
            using var scope = torch.NewDisposeScope();
            _run = function(Config, new FunctionContext(Context, _resumeFrom, _lifetime)).GetEnumerator();
            bool moved = _run.MoveNext();
            _lifetime.Adopt(scope);
            return moved;
        }
        try
        {
            return _run.MoveNext();
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("Tensor invalid", StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"the training function used a freed tensor ({e.Message}): tensors it creates before its first yield live until it returns, " +
                "those created later are freed when their step yields; build what it keeps before the loop, or pass it to context.Keep(tensor)", e);
        }
    }

    private void Restart()
    {
        _run?.Dispose();
        _run = null;
        _lifetime.Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        Restart();
        _latest?.Dispose();
        _resumeFrom?.Dispose();
    }
}
