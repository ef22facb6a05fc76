using System.Reflection;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Checkpoints;

/// <summary>
/// A snapshot of a trainable: named tensors (model parameters and buffers, optimizer state, random generators' states) and JSON
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
        if (_tensors.Count <= 8)
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
        _byName ??= _tensors.ToDictionary(t => t.Key, t => t.Value, StringComparer.Ordinal);
        return _byName.TryGetValue(name, out tensor!);
    }

    private Dictionary<string, Tensor>? _byName;

    /// <summary>
    /// Clones the parameters and buffers of <paramref name="model"/> ("model.NAME") and the per-parameter state
    /// of <paramref name="optimizer"/> ("optimizer.I.FIELD", scalars into metadata) on their own device.
    /// </summary>
    public static TrainableState Capture(nn.Module? model, optim.Optimizer? optimizer, JsonObject? metadata = null) =>
        Capture(model is null ? Array.Empty<KeyValuePair<string, Tensor>>() : ModelTensors(model), optimizer, metadata);

    /// <summary>
    /// As <see cref="Capture(nn.Module?, optim.Optimizer?, JsonObject?)"/>, from a model's tensors the trainable listed once
    /// (its <see cref="ModelTensors"/>): saves and restores then skip walking the module tree.
    /// </summary>
    public static TrainableState Capture(IReadOnlyList<KeyValuePair<string, Tensor>> modelTensors, optim.Optimizer? optimizer, JsonObject? metadata = null)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>(modelTensors.Count * 3);
        metadata ??= new JsonObject();
        using (no_grad())
        {
            foreach (var (name, tensor) in modelTensors)
                tensors.Add(new(name, tensor.clone().DetachFromDisposeScope()));
            if (optimizer is not null)
                OptimizerStateCapture.Capture(optimizer, tensors, metadata);
        }
        return new TrainableState(tensors, metadata);
    }

    /// <summary>A model's parameters and buffers named as checkpoints name them ("model.NAME").</summary>
    public static IReadOnlyList<KeyValuePair<string, Tensor>> ModelTensors(nn.Module model) =>
        model.state_dict().Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key, kv.Value)).ToList();

    /// <summary>Copies this snapshot into live <paramref name="model"/> and <paramref name="optimizer"/> in place (no new allocations on their device).</summary>
    public void RestoreInto(nn.Module? model, optim.Optimizer? optimizer) =>
        RestoreInto(model is null ? Array.Empty<KeyValuePair<string, Tensor>>() : ModelTensors(model), optimizer);

    /// <summary>As <see cref="RestoreInto(nn.Module?, optim.Optimizer?)"/>, into a model's tensors listed once by the trainable.</summary>
    public void RestoreInto(IReadOnlyList<KeyValuePair<string, Tensor>> modelTensors, optim.Optimizer? optimizer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using (no_grad())
        {
            foreach (var (name, live) in modelTensors)
            {
                if (!TryGetTensor(name, out var saved))
                    throw new InvalidOperationException($"checkpoint has no tensor for {name}");
                live.copy_(saved, true);
            }
            if (optimizer is not null)
                OptimizerStateCapture.Restore(optimizer, this);
        }
    }

    /// <summary>Prefix of the tensors that hold random generators' states.</summary>
    public const string GeneratorPrefix = "generator.";

    /// <summary>
    /// Adds the state of <paramref name="generator"/> as the tensor "generator.NAME" (a byte tensor, on the CPU as LibTorch
    /// returns it), so that restoring the snapshot makes the generator draw the same numbers again (PyTorch's
    /// <c>Generator.get_state</c>, which Ray's trainables leave to the user).
    /// </summary>
    public void AddGeneratorState(string name, Generator generator)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var key = GeneratorPrefix + name;
        if (TryGetTensor(key, out _)) throw new ArgumentException($"tensor name '{key}' appears twice in a trainable state");
        _tensors.Add(new(key, generator.get_state().DetachFromDisposeScope()));
        _byName = null;
    }

    /// <summary>
    /// Sets <paramref name="generator"/> to the state saved as "generator.NAME"; false (and the generator untouched) when
    /// the snapshot has none, as in checkpoints written before generators were saved.
    /// </summary>
    public bool RestoreGeneratorState(string name, Generator generator)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!TryGetTensor(GeneratorPrefix + name, out var saved)) return false;
        // LibTorch takes a generator's state as a CPU byte tensor, whichever device the snapshot was moved to.
        if (saved.device.type == DeviceType.CPU)
        {
            generator.set_state(saved);
        }
        else
        {
            using var host = saved.cpu();
            generator.set_state(host);
        }
        return true;
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
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, StateField[]> Fields = new();

    public static void Capture(optim.Optimizer optimizer, List<KeyValuePair<string, Tensor>> tensors, JsonObject metadata)
    {
        if (optimizer is not OptimizerHelper helper)
            throw new NotSupportedException($"optimizer {optimizer.GetType().Name} keeps its state in native code and cannot be checkpointed");
        // Scalars of every parameter's state in one flat object ("I.FIELD": value): one allocation per save, not one per parameter.
        var scalars = new JsonObject();
        var dict = helper.state_dict();
        for (int i = 0; i < dict.State.Count; i++)
        {
            var state = dict.State[i];
            foreach (var field in FieldsOf(state.GetType()))
            {
                var value = field.GetValue(state);
                switch (value)
                {
                    case Tensor t:
                        tensors.Add(new(OptimizerTensorName(i, field.Name), t.clone().DetachFromDisposeScope()));
                        break;
                    case long l: scalars[OptimizerTensorName(i, field.Name)] = l; break;
                    case int n: scalars[OptimizerTensorName(i, field.Name)] = n; break;
                    case double d: scalars[OptimizerTensorName(i, field.Name)] = d; break;
                }
            }
        }
        metadata["optimizer_state"] = scalars;
        metadata["optimizer_parameters"] = dict.State.Count;
        metadata["optimizer_lr"] = new JsonArray(dict.Options.Select(o => (JsonNode?)JsonValue.Create(o.LearningRate ?? double.NaN)).ToArray());
    }

    public static void Restore(optim.Optimizer optimizer, TrainableState source)
    {
        if (optimizer is not OptimizerHelper helper)
            throw new NotSupportedException($"optimizer {optimizer.GetType().Name} keeps its state in native code and cannot be restored");
        var scalars = source.Metadata["optimizer_state"] as JsonObject
            ?? throw new InvalidOperationException("checkpoint has no optimizer state");
        var dict = helper.state_dict();
        int saved = source.Metadata["optimizer_parameters"]?.GetValue<int>() ?? -1;
        if (saved != dict.State.Count)
            throw new InvalidOperationException($"checkpoint has optimizer state for {saved} parameters, the optimizer has {dict.State.Count}");
        for (int i = 0; i < dict.State.Count; i++)
        {
            var state = dict.State[i];
            foreach (var field in FieldsOf(state.GetType()))
            {
                var name = OptimizerTensorName(i, field.Name);
                if (field.FieldType == typeof(Tensor))
                {
                    var live = (Tensor?)field.GetValue(state);
                    bool present = source.TryGetTensor(name, out var value);
                    // Same optimizer, same parameters: the tensors match, so this is a plain in-place copy (no shape query per tensor).
                    if (present && live is not null)
                        live.copy_(value, true);
                    else if (present)
                        field.SetValue(state, value.clone().DetachFromDisposeScope());
                    else if (live is not null)
                    {
                        live.Dispose();
                        field.SetValue(state, null);
                    }
                }
                else if (scalars[name] is JsonValue v)
                {
                    if (field.FieldType == typeof(long)) field.SetValue(state, v.GetValue<long>());
                    else if (field.FieldType == typeof(int)) field.SetValue(state, v.GetValue<int>());
                    else if (field.FieldType == typeof(double)) field.SetValue(state, v.GetValue<double>());
                }
            }
        }
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int, string), string> Names = new();

    /// <summary>"optimizer.I.FIELD", cached: checkpoints of one optimizer repeat the same names every save.</summary>
    private static string OptimizerTensorName(int index, string field) => Names.GetOrAdd((index, field), k => $"optimizer.{k.Item1}.{k.Item2}");

    private static StateField[] FieldsOf(Type type) => Fields.GetOrAdd(type, t =>
        t.GetFields(BindingFlags.Public | BindingFlags.Instance)
            .Where(f => f.FieldType == typeof(Tensor) || f.FieldType == typeof(long) || f.FieldType == typeof(int) || f.FieldType == typeof(double))
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .Select(f => new StateField(f))
            .ToArray());

    /// <summary>A field of an optimizer's per-parameter state, with compiled accessors (this runs on every checkpoint).</summary>
    private sealed class StateField
    {
        public StateField(FieldInfo field)
        {
            Name = field.Name;
            FieldType = field.FieldType;
            var target = System.Linq.Expressions.Expression.Parameter(typeof(object));
            var value = System.Linq.Expressions.Expression.Parameter(typeof(object));
            var typed = System.Linq.Expressions.Expression.Convert(target, field.DeclaringType!);
            var access = System.Linq.Expressions.Expression.Field(typed, field);
            GetValue = System.Linq.Expressions.Expression.Lambda<Func<object, object?>>(
                System.Linq.Expressions.Expression.Convert(access, typeof(object)), target).Compile();
            SetValue = System.Linq.Expressions.Expression.Lambda<Action<object, object?>>(
                System.Linq.Expressions.Expression.Assign(access, System.Linq.Expressions.Expression.Convert(value, field.FieldType)), target, value).Compile();
        }

        public string Name { get; }

        public Type FieldType { get; }

        public Func<object, object?> GetValue { get; }

        public Action<object, object?> SetValue { get; }
    }
}
