using System.Collections;
using TorchSharp;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Trainables;

/// <summary>
/// What one training step reports. Values are numbers, flags, text, or 0-d tensors: a tensor stays on its
/// device until the runner reads a batch of results at once, so a step never waits on the device just to
/// report. The <see cref="Metrics"/> owns tensors added to it.
/// </summary>
public sealed class Metrics : IEnumerable<KeyValuePair<string, object>>
{
    private readonly List<KeyValuePair<string, object>> _entries = new();

    /// <summary>Reserved key: the trainable is finished.</summary>
    public const string DoneKey = "done";

    /// <summary>Reserved key: ask the runner for a checkpoint after this step.</summary>
    public const string ShouldCheckpointKey = "should_checkpoint";

    public const string TimestepsThisIterKey = "timesteps_this_iter";

    public const string EpisodesThisIterKey = "episodes_this_iter";

    public bool Done { get; set; }

    public bool ShouldCheckpoint { get; set; }

    /// <summary>A checkpoint reported together with these metrics (function trainables).</summary>
    public TrainableState? Checkpoint { get; set; }

    /// <summary>Set by function trainables when the function returned: repeat the last result, marked done.</summary>
    internal bool IsEndOfFunction { get; set; }

    public int Count => _entries.Count;

    public void Add(string key, double value) => Set(key, value);

    public void Add(string key, float value) => Set(key, (double)value);

    public void Add(string key, long value) => Set(key, value);

    public void Add(string key, int value) => Set(key, (long)value);

    public void Add(string key, bool value) => Set(key, value);

    public void Add(string key, string value) => Set(key, value);

    /// <summary>A 0-d tensor, read later together with the other results of a batch.</summary>
    public void Add(string key, torch.Tensor value)
    {
        if (value.numel() != 1) throw new ArgumentException($"metric '{key}' must be a single value, got a tensor of shape [{string.Join(",", value.shape)}]", key);
        Set(key, value.DetachFromDisposeScope());
    }

    public object this[string key]
    {
        get => _entries.First(e => e.Key == key).Value;
        set => Set(key, value);
    }

    private void Set(string key, object value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        switch (key)
        {
            case DoneKey:
                Done = value is true;
                return;
            case ShouldCheckpointKey:
                ShouldCheckpoint = value is true;
                return;
        }
        if (value is torch.Tensor tensor) value = tensor.DetachFromDisposeScope();
        else if (value is int i) value = (long)i;
        else if (value is float f) value = (double)f;
        if (value is not (double or long or bool or string or torch.Tensor))
            throw new ArgumentException($"metric '{key}' has unsupported type {value.GetType().Name}", key);
        for (int n = 0; n < _entries.Count; n++)
        {
            if (_entries[n].Key != key) continue;
            _entries[n] = new(key, value);
            return;
        }
        _entries.Add(new(key, value));
    }

    internal bool HasTensors => _entries.Any(e => e.Value is torch.Tensor);

    internal IReadOnlyList<KeyValuePair<string, object>> Entries => _entries;

    internal void Replace(int index, object value) => _entries[index] = new(_entries[index].Key, value);

    public IEnumerator<KeyValuePair<string, object>> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
