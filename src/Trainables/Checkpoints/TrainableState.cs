using System.Reflection;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Checkpoints;

/// <summary>
/// A snapshot of a trainable: named tensors (model parameters and buffers, optimizer state) and JSON
/// metadata (counters, small values). The snapshot owns its tensors; they stay on the device they were
/// captured on until someone moves them.
/// </summary>
public sealed class TrainableState : IDisposable
{
    private readonly List<KeyValuePair<string, Tensor>> _tensors;
    private bool _disposed;

    public TrainableState(IEnumerable<KeyValuePair<string, Tensor>>? tensors = null, JsonObject? metadata = null)
    {
        _tensors = tensors?.Select(t => new KeyValuePair<string, Tensor>(t.Key, t.Value.DetachFromDisposeScope())).ToList() ?? new();
        Metadata = metadata ?? new JsonObject();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, _) in _tensors)
            if (!names.Add(name)) throw new ArgumentException($"tensor name '{name}' appears twice in a trainable state");
    }

    public IReadOnlyList<KeyValuePair<string, Tensor>> Tensors => _tensors;

    public JsonObject Metadata { get; }

    /// <summary>Bytes held by the tensors.</summary>
    public long ByteSize => _tensors.Sum(t => t.Value.numel() * t.Value.element_size());

    /// <summary>The device of the first tensor; CPU when there are none.</summary>
    public Device Device => _tensors.Count > 0 ? _tensors[0].Value.device : CPU;

    public Tensor this[string name] => _tensors.First(t => t.Key == name).Value;

    public bool TryGetTensor(string name, out Tensor tensor)
    {
        foreach (var (key, value) in _tensors)
        {
            if (key != name) continue;
            tensor = value;
            return true;
        }
        tensor = null!;
        return false;
    }

    /// <summary>
    /// Clones the parameters and buffers of <paramref name="model"/> ("model.NAME") and the per-parameter state
    /// of <paramref name="optimizer"/> ("optimizer.I.FIELD", scalars into metadata) on their own device.
    /// </summary>
    public static TrainableState Capture(nn.Module? model, optim.Optimizer? optimizer, JsonObject? metadata = null)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        metadata ??= new JsonObject();
        using (no_grad())
        {
            if (model is not null)
                foreach (var (name, tensor) in model.state_dict())
                    tensors.Add(new("model." + name, tensor.detach().clone().DetachFromDisposeScope()));
            if (optimizer is not null)
                OptimizerStateCapture.Capture(optimizer, tensors, metadata);
        }
        return new TrainableState(tensors, metadata);
    }

    /// <summary>Copies this snapshot into live <paramref name="model"/> and <paramref name="optimizer"/> in place (no new allocations on their device).</summary>
    public void RestoreInto(nn.Module? model, optim.Optimizer? optimizer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using (no_grad())
        {
            if (model is not null)
            {
                foreach (var (name, live) in model.state_dict())
                {
                    if (!TryGetTensor("model." + name, out var saved))
                        throw new InvalidOperationException($"checkpoint has no tensor for model.{name}");
                    live.copy_(saved, true);
                }
            }
            if (optimizer is not null)
                OptimizerStateCapture.Restore(optimizer, this);
        }
    }

    /// <summary>A deep copy on <paramref name="device"/>; the copy of a CUDA state to the CPU uses pinned memory.</summary>
    public TrainableState CopyTo(Device device)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var copies = new List<KeyValuePair<string, Tensor>>(_tensors.Count);
        using (no_grad())
        {
            foreach (var (name, tensor) in _tensors)
            {
                Tensor copy = tensor.device == device
                    ? tensor.clone()
                    : tensor.to(device, copy: true);
                copies.Add(new(name, copy.DetachFromDisposeScope()));
            }
        }
        return new TrainableState(copies, (JsonObject)Metadata.DeepClone());
    }

    public TrainableState Clone() => CopyTo(Device);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var (_, tensor) in _tensors) tensor.Dispose();
        _tensors.Clear();
    }
}

/// <summary>
/// Optimizer state without TorchSharp's <c>load_state_dict(StateDictionary)</c>, which aliases the source tensors
/// instead of copying them. Reads each per-parameter state object's public fields: tensors are cloned or copied
/// in place, numbers go to metadata. Works for every TorchSharp optimizer built on OptimizerHelper.
/// </summary>
internal static class OptimizerStateCapture
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, FieldInfo[]> Fields = new();

    public static void Capture(optim.Optimizer optimizer, List<KeyValuePair<string, Tensor>> tensors, JsonObject metadata)
    {
        if (optimizer is not OptimizerHelper helper)
            throw new NotSupportedException($"optimizer {optimizer.GetType().Name} keeps its state in native code and cannot be checkpointed");
        var states = new JsonArray();
        var dict = helper.state_dict();
        for (int i = 0; i < dict.State.Count; i++)
        {
            var state = dict.State[i];
            var scalars = new JsonObject();
            foreach (var field in FieldsOf(state.GetType()))
            {
                var value = field.GetValue(state);
                switch (value)
                {
                    case Tensor t:
                        tensors.Add(new($"optimizer.{i}.{field.Name}", t.detach().clone().DetachFromDisposeScope()));
                        break;
                    case long l: scalars[field.Name] = l; break;
                    case int n: scalars[field.Name] = n; break;
                    case double d: scalars[field.Name] = d; break;
                }
            }
            states.Add(scalars);
        }
        metadata["optimizer_state"] = states;
        metadata["optimizer_lr"] = new JsonArray(dict.Options.Select(o => (JsonNode?)JsonValue.Create(o.LearningRate ?? double.NaN)).ToArray());
    }

    public static void Restore(optim.Optimizer optimizer, TrainableState source)
    {
        if (optimizer is not OptimizerHelper helper)
            throw new NotSupportedException($"optimizer {optimizer.GetType().Name} keeps its state in native code and cannot be restored");
        var scalarsList = source.Metadata["optimizer_state"] as JsonArray
            ?? throw new InvalidOperationException("checkpoint has no optimizer state");
        var dict = helper.state_dict();
        if (scalarsList.Count != dict.State.Count)
            throw new InvalidOperationException($"checkpoint has optimizer state for {scalarsList.Count} parameters, the optimizer has {dict.State.Count}");
        for (int i = 0; i < dict.State.Count; i++)
        {
            var state = dict.State[i];
            var scalars = scalarsList[i] as JsonObject ?? new JsonObject();
            foreach (var field in FieldsOf(state.GetType()))
            {
                if (field.FieldType == typeof(Tensor))
                {
                    var live = (Tensor?)field.GetValue(state);
                    bool saved = source.TryGetTensor($"optimizer.{i}.{field.Name}", out var value);
                    if (saved && live is not null && live.shape.SequenceEqual(value.shape))
                        live.copy_(value, true);
                    else if (saved)
                    {
                        live?.Dispose();
                        field.SetValue(state, value.clone().DetachFromDisposeScope());
                    }
                    else if (live is not null)
                    {
                        live.Dispose();
                        field.SetValue(state, null);
                    }
                }
                else if (scalars[field.Name] is JsonValue v)
                {
                    if (field.FieldType == typeof(long)) field.SetValue(state, v.GetValue<long>());
                    else if (field.FieldType == typeof(int)) field.SetValue(state, v.GetValue<int>());
                    else if (field.FieldType == typeof(double)) field.SetValue(state, v.GetValue<double>());
                }
            }
        }
    }

    private static FieldInfo[] FieldsOf(Type type) => Fields.GetOrAdd(type, t =>
        t.GetFields(BindingFlags.Public | BindingFlags.Instance)
            .Where(f => f.FieldType == typeof(Tensor) || f.FieldType == typeof(long) || f.FieldType == typeof(int) || f.FieldType == typeof(double))
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToArray());
}
