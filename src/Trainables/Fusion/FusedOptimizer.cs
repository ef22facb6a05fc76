using System.Text.Json.Nodes;
using TorchSharp;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Fusion;

/// <summary>
/// An optimizer over the parameters of a fused array (HFTA's fused optimizers, repository UofT-EcoSystem/hfta,
/// hfta/optim/_functional.py: hyperparameters as a per-member <c>Coefficient</c> viewed as [K, 1, ...] against [K, ...]
/// parameters): each parameter is [K, ...unfused shape], lane k of it belongs to member k, and every hyperparameter is a
/// per-lane value read from that member's config by <see cref="ConfigureLane"/> (the keys and defaults of
/// <see cref="OptimizerSettings"/>, which the unfused optimizers read too). Unlike HFTA, whose members all step together
/// and share one step count, lanes are independent: <see cref="Step(IReadOnlyList{int})"/> changes only the lanes it is given (parameters and
/// state; Adam's moments decay even for a zero gradient, so the others must not be touched), each lane has its own step
/// count per parameter, and a lane's state saves and restores in the layout of the unfused optimizer's checkpoint.
/// <para>
/// Lane k's update equals the unfused TorchTrials optimizer's (<see cref="Adam"/>, <see cref="AdamW"/>, <see cref="Sgd"/>,
/// <see cref="RmsProp"/>) on the same slices: the same LibTorch kernels in the same order, with each scalar replaced by a
/// broadcast [K, 1, ...] tensor of the value the unfused optimizer computes in double and LibTorch rounds to the
/// parameter's dtype (for <c>addcmul(t1, t2, value: v)</c>, which computes <c>(v * t1) * t2</c>, the fused form is
/// <c>addcmul(v * t1, t2, value: 1)</c>, and so on). They agree to an ulp or two, not bit for bit: LibTorch's vectorised
/// <c>add(other, alpha)</c> with a Scalar alpha is a fused multiply-add, while a tensor factor is rounded before the add
/// (the tests hold them to 1e-6 relative in float32).
/// Lanes whose programs differ (SGD or RMSprop with and without momentum) step as separate groups; Nesterov is a
/// per-lane 0/1 tensor within SGD's momentum group, not part of the fusion key.
/// </para>
/// <para>
/// Everything a step reads lives on the device: the hyperparameter tables are uploaded only after a lane changes
/// (configure, reset, restore, copy, a momentum buffer's first step), the lane index of a lane set is uploaded once and
/// cached, and Adam's bias corrections are computed on the device in float64 from per-lane step counts (mirrored on the
/// host for checkpoints). No step creates a <see cref="Scalar"/> it does not hold and dispose itself (issue 9).
/// </para>
/// Not supported (as in the unfused optimizers): amsgrad, maximize, dampening, centered RMSprop, LR schedulers
/// (each lane's learning rate is its config's <c>lr</c>).
/// </summary>
public abstract class FusedOptimizer : IDisposable
{
    private readonly Tensor[] _parameters;
    private readonly Tensor[][] _state; // [slot][parameter], each [K, ...]
    private readonly long[][] _steps; // [parameter][lane]
    private readonly bool[][][] _present; // [slot][parameter][lane]: the unfused state has this tensor
    private readonly OptimizerSettings?[] _settings;
    private readonly double[] _hostHyper;
    private readonly double[] _hostHyper64;
    private readonly Tensor _hyper; // [H, K], the parameters' dtype
    private readonly Tensor _hyper64; // [H64, K], float64
    private readonly Tensor _stepsDevice; // [P, K], float64
    private readonly Tensor _perParameter; // [P, K], the parameters' dtype
    private readonly Tensor[] _prepared; // [P, K] each, the parameters' dtype: what PrepareGroup computes for a group of every lane
    private readonly Dictionary<(int Table, int Row, long Rank), Tensor> _rows = new(); // Table: KeptTable's number
    private readonly Dictionary<string, LaneSet> _laneSets = new(StringComparer.Ordinal);
    private bool _dirty = true;
    private bool _disposed;

    private protected FusedOptimizer(string kind, IReadOnlyList<Tensor> parameters, int capacity)
    {
        Kind = kind;
        Capacity = capacity;
        _parameters = parameters.ToArray();
        var first = _parameters[0];
        Device = first.device;
        DType = first.dtype;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _state = new Tensor[Slots.Count][];
        _present = new bool[Slots.Count][][];
        for (int s = 0; s < Slots.Count; s++)
        {
            _state[s] = _parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
            _present[s] = _parameters.Select(_ => new bool[capacity]).ToArray();
        }
        _steps = _parameters.Select(_ => new long[capacity]).ToArray();
        _settings = new OptimizerSettings?[capacity];
        _hostHyper = new double[HyperRows * capacity];
        _hostHyper64 = new double[Hyper64Rows * capacity];
        _hyper = zeros(new long[] { HyperRows, capacity }, DType, Device).DetachFromDisposeScope();
        _hyper64 = zeros(new long[] { Hyper64Rows, capacity }, float64, Device).DetachFromDisposeScope();
        _stepsDevice = zeros(new long[] { _parameters.Length, capacity }, float64, Device).DetachFromDisposeScope();
        _perParameter = zeros(new long[] { _parameters.Length, capacity }, DType, Device).DetachFromDisposeScope();
        _prepared = new[] { zeros_like(_perParameter).DetachFromDisposeScope(), zeros_like(_perParameter).DetachFromDisposeScope() };
    }

    /// <summary>
    /// A fused optimizer of <paramref name="kind"/> (adam, adamw, sgd, rmsprop: the config key <c>optimizer</c>) over
    /// <paramref name="parameters"/>: leaf tensors requiring grad, each [<paramref name="capacity"/>, ...unfused shape],
    /// in the unfused model's <c>parameters()</c> order (which is what names a lane's checkpoint tensors), all of one
    /// dtype on one device. Lanes start unconfigured with zero state.
    /// </summary>
    public static FusedOptimizer Create(string kind, IReadOnlyList<Tensor> parameters, int capacity)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), $"capacity must be at least 1, got {capacity}");
        if (parameters.Count == 0) throw new ArgumentException("a fused optimizer needs at least one parameter", nameof(parameters));
        for (int i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i];
            if (p.dim() < 1 || p.shape[0] != capacity)
                throw new ArgumentException($"parameter {i} has shape [{string.Join(", ", p.shape)}], not [{capacity}, ...]", nameof(parameters));
            if (p.dtype != parameters[0].dtype || p.device_type != parameters[0].device_type || p.device_index != parameters[0].device_index)
                throw new ArgumentException($"parameter {i} is {p.dtype} on {p.device}, parameter 0 {parameters[0].dtype} on {parameters[0].device}", nameof(parameters));
            if (!p.is_floating_point())
                throw new ArgumentException($"parameter {i} is {p.dtype}, not a floating point tensor", nameof(parameters));
        }
        return kind.ToLowerInvariant() switch
        {
            "adam" => new FusedAdam(parameters, capacity, decoupled: false),
            "adamw" => new FusedAdam(parameters, capacity, decoupled: true),
            "sgd" => new FusedSgd(parameters, capacity),
            "rmsprop" => new FusedRmsProp(parameters, capacity),
            _ => throw new ArgumentException($"optimizer must be adam, adamw, sgd or rmsprop, got '{kind}'", nameof(kind)),
        };
    }

    /// <summary>adam, adamw, sgd or rmsprop.</summary>
    public string Kind { get; }

    public int Capacity { get; }

    public Device Device { get; }

    public ScalarType DType { get; }

    public IReadOnlyList<Tensor> Parameters => _parameters;

    /// <summary>The lane's settings, or null before <see cref="ConfigureLane"/>.</summary>
    public OptimizerSettings? LaneSettings(int lane) => _settings[CheckLane(lane)];

    /// <summary>
    /// Takes the lane's hyperparameters from <paramref name="config"/> (<see cref="OptimizerSettings.FromConfig"/>: lr,
    /// weight_decay, momentum, nesterov, beta1, beta2, eps, alpha); its state is kept (<see cref="ResetLane"/> clears it).
    /// </summary>
    public void ConfigureLane(int lane, TrialConfig config)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckLane(lane);
        var settings = OptimizerSettings.FromConfig(config);
        if (settings.Kind != Kind)
            throw new ArgumentException($"config key 'optimizer' is '{settings.Kind}', this fused optimizer is {Kind}", "optimizer");
        var hyper = new double[HyperRows];
        var hyper64 = new double[Hyper64Rows];
        Fill(settings, hyper, hyper64);
        for (int r = 0; r < HyperRows; r++) _hostHyper[r * Capacity + lane] = hyper[r];
        for (int r = 0; r < Hyper64Rows; r++) _hostHyper64[r * Capacity + lane] = hyper64[r];
        _settings[lane] = settings;
        _dirty = true;
    }

    /// <summary>Zero state for a new trial in the lane: as a freshly built unfused optimizer (step counts 0, no momentum buffer).</summary>
    public void ResetLane(int lane)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckLane(lane);
        using var _ = no_grad();
        for (int s = 0; s < Slots.Count; s++)
        {
            for (int i = 0; i < _parameters.Length; i++)
            {
                using var live = _state[s][i].select(0, lane);
                live.zero_();
                _present[s][i][lane] = false;
            }
        }
        foreach (var steps in _steps) steps[lane] = 0;
        _dirty = true;
    }

    /// <summary>Copies the optimizer state (tensors, step counts) of lane <paramref name="from"/> to lane <paramref name="to"/>; not the hyperparameters, not the parameters.</summary>
    public void CopyLane(int from, int to)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckLane(from);
        CheckLane(to);
        if (from == to) return;
        using var _ = no_grad();
        for (int s = 0; s < Slots.Count; s++)
        {
            for (int i = 0; i < _parameters.Length; i++)
            {
                using var source = _state[s][i].select(0, from);
                using var target = _state[s][i].select(0, to);
                target.copy_(source);
                _present[s][i][to] = _present[s][i][from];
            }
        }
        foreach (var steps in _steps) steps[to] = steps[from];
        _dirty = true;
    }

    /// <summary>Clears the gradients of all fused parameters (every lane): the next backward writes them afresh.</summary>
    public void ZeroGrad()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // Set to none, as torch.optim's zero_grad(set_to_none=True): the backward then writes each gradient instead of
        // adding it to a zero-filled one, two passes over every parameter fewer per step.
        foreach (var p in _parameters) p.grad = null;
    }

    /// <summary>
    /// One optimizer step for <paramref name="lanes"/> (distinct, configured); every other lane's parameters and state stay
    /// exactly as they are. A parameter without a gradient is skipped, as the unfused optimizers skip it.
    /// </summary>
    public void Step(IReadOnlyList<int> lanes) => Step(lanes, null);

    /// <summary>
    /// As <see cref="Step(IReadOnlyList{int})"/>, with the gradients given for just those lanes: <paramref name="laneGrads"/>[i]
    /// is [lanes.Count, ...] for parameter i, row j for lane <paramref name="lanes"/>[j] (what a program that computes only
    /// its stepped lanes has, without filling full-size gradients); the parameters' own <c>grad</c> is not read.
    /// </summary>
    public void Step(IReadOnlyList<int> lanes, IReadOnlyList<Tensor>? laneGrads)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (laneGrads is not null && laneGrads.Count != _parameters.Length)
            throw new ArgumentException($"{laneGrads.Count} gradients for {_parameters.Length} parameters", nameof(laneGrads));
        ArgumentNullException.ThrowIfNull(lanes);
        if (lanes.Count == 0) return;
        var seen = new bool[Capacity];
        foreach (var lane in lanes)
        {
            CheckLane(lane);
            if (seen[lane]) throw new ArgumentException($"lane {lane} appears twice", nameof(lanes));
            if (_settings[lane] is null) throw new InvalidOperationException($"lane {lane} has no configuration (ConfigureLane)");
            seen[lane] = true;
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (_dirty) Upload();
        using var one = 1.ToScalar();
        var grads = new Tensor?[_parameters.Length];
        for (int i = 0; i < grads.Length; i++) grads[i] = laneGrads is null ? _parameters[i].grad : laneGrads[i];
        var position = new int[Capacity];
        for (int j = 0; j < lanes.Count; j++) position[lanes[j]] = j;
        bool allGrads = grads.All(g => g is not null);
        var variants = new SortedDictionary<int, List<int>>();
        for (int lane = 0; lane < Capacity; lane++)
        {
            if (!seen[lane]) continue;
            int v = Variant(_settings[lane]!);
            if (!variants.TryGetValue(v, out var list)) variants[v] = list = new List<int>();
            list.Add(lane);
        }
        foreach (var (variant, groupLanes) in variants)
        {
            var set = LaneSetOf(groupLanes);
            if (HasStepCount)
            {
                for (int i = 0; i < _parameters.Length; i++)
                {
                    if (grads[i] is null) continue;
                    foreach (var lane in groupLanes) _steps[i][lane]++;
                    if (!allGrads) _stepsDevice.select(0, i).add_(set.Mask, one);
                }
                if (allGrads) _stepsDevice.add_(set.Mask, one);
            }
            var group = new Group(this, variant, groupLanes, set.Index, one);
            PrepareGroup(group);
            // Given gradients are rows in the order of lanes: the group's rows, in lane order.
            Tensor? rows = null;
            if (laneGrads is not null && !(groupLanes.Count == lanes.Count && groupLanes.Select(l => position[l]).SequenceEqual(Enumerable.Range(0, lanes.Count))))
                rows = tensor(groupLanes.Select(l => (long)position[l]).ToArray(), device: Device);
            for (int i = 0; i < _parameters.Length; i++)
            {
                var grad = grads[i];
                if (grad is null) continue;
                var parameter = _parameters[i];
                var state = new Tensor[Slots.Count];
                var laneGrad = laneGrads is null ? null : rows is null ? grad : grad.index_select(0, rows);
                if (set.Index is null)
                {
                    for (int s = 0; s < state.Length; s++) state[s] = _state[s][i];
                    Update(group, i, parameter, laneGrad ?? grad, state);
                }
                else
                {
                    var index = set.Index;
                    var p = parameter.index_select(0, index);
                    for (int s = 0; s < state.Length; s++) state[s] = _state[s][i].index_select(0, index);
                    Update(group, i, p, laneGrad ?? grad.index_select(0, index), state);
                    parameter.index_copy_(0, index, p);
                    for (int s = 0; s < state.Length; s++) _state[s][i].index_copy_(0, index, state[s]);
                }
                for (int s = 0; s < Slots.Count; s++)
                {
                    if (!Slots[s].Conditional || !Creates(s, variant)) continue;
                    foreach (var lane in groupLanes)
                    {
                        if (_present[s][i][lane]) continue;
                        _present[s][i][lane] = true;
                        _dirty = true;
                    }
                }
            }
        }
    }

    /// <summary>
    /// A fused optimizer of this kind over <paramref name="compactParameters"/> ([lanes.Count, ...] leaves, row j holding
    /// lane <paramref name="lanes"/>[j]'s parameters) whose lane j starts with lane lanes[j]'s hyperparameters, state, step
    /// counts and momentum-buffer presence. An array that trains a few of its lanes for a whole epoch gathers them once,
    /// steps the compact optimizer on every one of its lanes per batch (no per-batch gather and scatter of parameters and
    /// state), and writes them back with <see cref="Scatter"/>; a step of the compact optimizer equals
    /// <see cref="Step(IReadOnlyList{int}, IReadOnlyList{Tensor}?)"/> of those lanes here.
    /// </summary>
    public FusedOptimizer Gather(IReadOnlyList<int> lanes, IReadOnlyList<Tensor> compactParameters)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(lanes);
        if (lanes.Count == 0) throw new ArgumentException("no lanes to gather", nameof(lanes));
        foreach (var lane in lanes)
            if (_settings[CheckLane(lane)] is null) throw new InvalidOperationException($"lane {lane} has no configuration (ConfigureLane)");
        var compact = Create(Kind, compactParameters, lanes.Count);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var index = tensor(lanes.Select(l => (long)l).ToArray(), device: Device);
        for (int s = 0; s < Slots.Count; s++)
            for (int i = 0; i < _parameters.Length; i++)
            {
                compact._state[s][i].copy_(_state[s][i].index_select(0, index));
                for (int j = 0; j < lanes.Count; j++) compact._present[s][i][j] = _present[s][i][lanes[j]];
            }
        for (int i = 0; i < _parameters.Length; i++)
            for (int j = 0; j < lanes.Count; j++) compact._steps[i][j] = _steps[i][lanes[j]];
        for (int j = 0; j < lanes.Count; j++)
        {
            compact._settings[j] = _settings[lanes[j]];
            for (int r = 0; r < HyperRows; r++) compact._hostHyper[r * lanes.Count + j] = _hostHyper[r * Capacity + lanes[j]];
            for (int r = 0; r < Hyper64Rows; r++) compact._hostHyper64[r * lanes.Count + j] = _hostHyper64[r * Capacity + lanes[j]];
        }
        compact._dirty = true;
        return compact;
    }

    /// <summary>
    /// Writes the state, step counts and momentum-buffer presence of <paramref name="compact"/> (made by <see cref="Gather"/>
    /// for <paramref name="lanes"/>) back into those lanes; the parameters are the caller's to copy back.
    /// </summary>
    public void Scatter(FusedOptimizer compact, IReadOnlyList<int> lanes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(compact);
        ArgumentNullException.ThrowIfNull(lanes);
        if (compact.Kind != Kind || compact.Capacity != lanes.Count || compact._parameters.Length != _parameters.Length)
            throw new ArgumentException($"the compact optimizer ({compact.Kind}, {compact.Capacity} lanes) was not gathered from these {lanes.Count} lanes", nameof(compact));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var index = tensor(lanes.Select(l => (long)CheckLane(l)).ToArray(), device: Device);
        for (int s = 0; s < Slots.Count; s++)
            for (int i = 0; i < _parameters.Length; i++)
            {
                _state[s][i].index_copy_(0, index, compact._state[s][i]);
                for (int j = 0; j < lanes.Count; j++) _present[s][i][lanes[j]] = compact._present[s][i][j];
            }
        for (int i = 0; i < _parameters.Length; i++)
            for (int j = 0; j < lanes.Count; j++) _steps[i][lanes[j]] = compact._steps[i][j];
        _dirty = true;
    }

    /// <summary>
    /// Adds the lane's optimizer state to <paramref name="into"/> and <paramref name="metadata"/> exactly as
    /// <see cref="TrainableState.Capture(nn.Module?, optim.Optimizer?, JsonObject?)"/> writes the unfused optimizer's
    /// over the unfused model: tensors "optimizer.I.FIELD" (clones of the lane, unfused shape, on the device; a momentum
    /// buffer only once the unfused optimizer would have one), "optimizer_state" (the step counts), "optimizer_parameters",
    /// "optimizer_lr".
    /// </summary>
    public void SaveLane(int lane, List<KeyValuePair<string, Tensor>> into, JsonObject metadata)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckLane(lane);
        var settings = _settings[lane] ?? throw new InvalidOperationException($"lane {lane} has no configuration (ConfigureLane)");
        var order = Enumerable.Range(0, Slots.Count).OrderBy(s => Slots[s].Name, StringComparer.Ordinal).ToArray();
        var scalars = new JsonObject();
        using (no_grad())
        {
            for (int i = 0; i < _parameters.Length; i++)
            {
                foreach (int s in order)
                {
                    if (Slots[s].Conditional && !_present[s][i][lane]) continue;
                    using var live = _state[s][i].select(0, lane);
                    into.Add(new($"optimizer.{i}.{Slots[s].Name}", live.clone().DetachFromDisposeScope()));
                }
                if (HasStepCount) scalars[$"optimizer.{i}.step"] = _steps[i][lane];
            }
        }
        metadata["optimizer_state"] = scalars;
        metadata["optimizer_parameters"] = _parameters.Length;
        metadata["optimizer_lr"] = new JsonArray(JsonValue.Create(settings.Lr));
    }

    /// <summary>
    /// Loads the optimizer state of a lane checkpoint (<see cref="SaveLane"/>) or of an unfused trainable's checkpoint of
    /// the same kind and model into the lane (copies; <paramref name="state"/> is lent). Hyperparameters stay the lane's.
    /// </summary>
    public void RestoreLane(int lane, TrainableState state)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(state);
        CheckLane(lane);
        var scalars = state.Metadata["optimizer_state"] as JsonObject
            ?? throw new InvalidOperationException("checkpoint has no optimizer state");
        int saved = state.Metadata["optimizer_parameters"]?.GetValue<int>() ?? -1;
        if (saved != _parameters.Length)
            throw new InvalidOperationException($"checkpoint has optimizer state for {saved} parameters, the optimizer has {_parameters.Length}");
        using var _ = no_grad();
        // Check everything before changing anything, so a refused checkpoint leaves the lane as it was.
        for (int i = 0; i < _parameters.Length; i++)
        {
            for (int s = 0; s < Slots.Count; s++)
            {
                var name = $"optimizer.{i}.{Slots[s].Name}";
                if (!state.TryGetTensor(name, out var value))
                {
                    if (!Slots[s].Conditional) throw new InvalidOperationException($"checkpoint has no tensor {name}");
                    continue;
                }
                var expected = _parameters[i].shape.Skip(1).ToArray();
                if (!value.shape.SequenceEqual(expected))
                    throw new InvalidOperationException($"checkpoint tensor {name} is [{string.Join(", ", value.shape)}], the lane's is [{string.Join(", ", expected)}]");
            }
        }
        for (int i = 0; i < _parameters.Length; i++)
        {
            for (int s = 0; s < Slots.Count; s++)
            {
                using var live = _state[s][i].select(0, lane);
                if (state.TryGetTensor($"optimizer.{i}.{Slots[s].Name}", out var value))
                {
                    live.copy_(value, true);
                    _present[s][i][lane] = true;
                }
                else
                {
                    live.zero_();
                    _present[s][i][lane] = false;
                }
            }
            if (HasStepCount)
                _steps[i][lane] = scalars[$"optimizer.{i}.step"] is JsonValue v ? v.GetValue<long>() : 0;
        }
        _dirty = true;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var slot in _state)
            foreach (var t in slot) t.Dispose();
        _hyper.Dispose();
        _hyper64.Dispose();
        _stepsDevice.Dispose();
        _perParameter.Dispose();
        foreach (var row in _rows.Values) row.Dispose();
        _rows.Clear();
        foreach (var prepared in _prepared) prepared.Dispose();
        foreach (var set in _laneSets.Values) set.Dispose();
        _laneSets.Clear();
        GC.SuppressFinalize(this);
    }

    /// <summary>The state tensors of one parameter, as the unfused state's fields are named; conditional ones may be absent there.</summary>
    private protected abstract IReadOnlyList<(string Name, bool Conditional)> Slots { get; }

    /// <summary>Whether the unfused state has a <c>step</c> counter (Adam, RMSprop).</summary>
    private protected abstract bool HasStepCount { get; }

    /// <summary>Rows of per-lane hyperparameters in the parameters' dtype.</summary>
    private protected abstract int HyperRows { get; }

    /// <summary>Rows of per-lane hyperparameters in float64 (for values computed per step on the device).</summary>
    private protected virtual int Hyper64Rows => 1;

    /// <summary>Writes the lane's hyperparameter rows as the unfused optimizer computes them in double.</summary>
    private protected abstract void Fill(OptimizerSettings settings, Span<double> hyper, Span<double> hyper64);

    /// <summary>Lanes of different variants run different programs and step as separate groups.</summary>
    private protected virtual int Variant(OptimizerSettings settings) => 0;

    /// <summary>Whether a step of <paramref name="variant"/> gives the unfused state conditional slot <paramref name="slot"/>.</summary>
    private protected virtual bool Creates(int slot, int variant) => false;

    /// <summary>The per-parameter, per-lane value of the table <see cref="Group.PerParameterRow"/> reads (SGD's effective momentum).</summary>
    private protected virtual double PerParameterValue(int parameter, int lane, OptimizerSettings settings, bool[][][] present) => 0;

    /// <summary>Computes per-group tensors before the parameters are updated (Adam's bias corrections).</summary>
    private protected virtual void PrepareGroup(Group group)
    {
    }

    /// <summary>
    /// Updates one parameter in place for the group's lanes: <paramref name="parameter"/>, <paramref name="grad"/> and
    /// <paramref name="state"/> are [A, ...] (the whole tensors when the group is every lane, gathered copies otherwise).
    /// </summary>
    private protected abstract void Update(Group group, int index, Tensor parameter, Tensor grad, Tensor[] state);

    private int CheckLane(int lane)
    {
        if (lane < 0 || lane >= Capacity) throw new ArgumentOutOfRangeException(nameof(lane), $"lane must be in [0, {Capacity}), got {lane}");
        return lane;
    }

    /// <summary>Copies the host tables (hyperparameters, step counts, per-parameter values) to the device.</summary>
    private void Upload()
    {
        var perParameter = new double[_parameters.Length * Capacity];
        var steps = new double[_parameters.Length * Capacity];
        for (int i = 0; i < _parameters.Length; i++)
        {
            for (int lane = 0; lane < Capacity; lane++)
            {
                steps[i * Capacity + lane] = _steps[i][lane];
                if (_settings[lane] is { } settings) perParameter[i * Capacity + lane] = PerParameterValue(i, lane, settings, _present);
            }
        }
        CopyIn(_hyper, _hostHyper);
        CopyIn(_hyper64, _hostHyper64);
        CopyIn(_stepsDevice, steps);
        CopyIn(_perParameter, perParameter);
        _dirty = false;

        static void CopyIn(Tensor target, double[] values)
        {
            using var host = tensor(values, target.shape, float64);
            target.copy_(host);
        }
    }

    private LaneSet LaneSetOf(List<int> lanes)
    {
        var key = string.Join(",", lanes);
        if (_laneSets.TryGetValue(key, out var set)) return set;
        if (_laneSets.Count >= 64)
        {
            foreach (var old in _laneSets.Values) old.Dispose();
            _laneSets.Clear();
        }
        var mask = new double[Capacity];
        foreach (var lane in lanes) mask[lane] = 1;
        using var hostMask = tensor(mask, float64);
        Tensor? index = null;
        if (lanes.Count < Capacity)
        {
            using var hostIndex = tensor(lanes.Select(l => (long)l).ToArray(), int64);
            index = hostIndex.to(Device).DetachFromDisposeScope();
        }
        set = new LaneSet(hostMask.to(Device).DetachFromDisposeScope(), index);
        _laneSets[key] = set;
        return set;
    }

    /// <summary>A set of lanes on the device: a float64 0/1 mask over all lanes, and (unless it is every lane) their indices.</summary>
    private sealed record LaneSet(Tensor Mask, Tensor? Index) : IDisposable
    {
        public void Dispose()
        {
            Mask.Dispose();
            Index?.Dispose();
        }
    }

    /// <summary>Lanes that step together with one program, and their hyperparameter tables ([rows, A]).</summary>
    private protected sealed class Group
    {
        private readonly FusedOptimizer _owner;

        public Group(FusedOptimizer owner, int variant, IReadOnlyList<int> lanes, Tensor? index, Scalar one)
        {
            _owner = owner;
            Variant = variant;
            Lanes = lanes;
            One = one;
            Settings = lanes.Select(l => owner._settings[l]!).ToArray();
            Hyper = index is null ? owner._hyper : owner._hyper.index_select(1, index);
            Hyper64 = index is null ? owner._hyper64 : owner._hyper64.index_select(1, index);
            Steps = index is null ? owner._stepsDevice : owner._stepsDevice.index_select(1, index);
            PerParameter = index is null ? owner._perParameter : owner._perParameter.index_select(1, index);
        }

        public int Variant { get; }

        public IReadOnlyList<int> Lanes { get; }

        public IReadOnlyList<OptimizerSettings> Settings { get; }

        /// <summary>The Scalar 1, held for the step (for the alpha and value arguments TorchSharp would otherwise create).</summary>
        public Scalar One { get; }

        /// <summary>[H, A] in the parameters' dtype.</summary>
        public Tensor Hyper { get; }

        /// <summary>[H64, A] in float64.</summary>
        public Tensor Hyper64 { get; }

        /// <summary>[P, A] step counts after this step's increment, float64.</summary>
        public Tensor Steps { get; }

        /// <summary>[P, A] per-parameter values in the parameters' dtype.</summary>
        public Tensor PerParameter { get; }

        /// <summary>Per-group tensors a subclass computes in <see cref="PrepareGroup"/> ([P, A] each).</summary>
        public Tensor? First { get; set; }

        public Tensor? Second { get; set; }

        public ScalarType DType => _owner.DType;

        /// <summary>
        /// What <see cref="PrepareGroup"/> computed for the group (a [P, A] tensor) as the group's <see cref="First"/> or
        /// <see cref="Second"/> (<paramref name="slot"/> 0 or 1): for a group of every lane it is copied into a table the
        /// optimizer keeps, so <see cref="Row"/> can reuse its views from step to step.
        /// </summary>
        public Tensor Keep(int slot, Tensor value)
        {
            if (Lanes.Count != _owner.Capacity) return value;
            var kept = _owner._prepared[slot];
            kept.copy_(value);
            return kept;
        }

        /// <summary>
        /// Row <paramref name="row"/> of the [rows, A] <paramref name="table"/> viewed as [A, 1, ...] against <paramref name="like"/>.
        /// For a group of every lane, rows of the tables the optimizer keeps (hyperparameters, per-parameter values,
        /// <see cref="Keep"/>) are views made once and reused: their tables change only in place. That saves a select and
        /// a view per hyperparameter and parameter each step, about half the native calls of a small array's step.
        /// </summary>
        public Tensor Row(Tensor table, int row, Tensor like)
        {
            long rank = like.dim();
            int kept = Lanes.Count == _owner.Capacity ? KeptTable(table) : -1;
            if (kept >= 0 && _owner._rows.TryGetValue((kept, row, rank), out var cached)) return cached;
            var view = View(table, row, rank);
            if (kept >= 0) _owner._rows[(kept, row, rank)] = view.DetachFromDisposeScope();
            return view;
        }

        /// <summary>Which table the optimizer keeps <paramref name="table"/> is (by reference), or -1 for any other tensor.</summary>
        private int KeptTable(Tensor table)
        {
            if (ReferenceEquals(table, _owner._hyper)) return 0;
            if (ReferenceEquals(table, _owner._perParameter)) return 1;
            for (int i = 0; i < _owner._prepared.Length; i++)
                if (ReferenceEquals(table, _owner._prepared[i])) return 2 + i;
            return -1;
        }

        private Tensor View(Tensor table, int row, long rank)
        {
            var shape = new long[rank];
            Array.Fill(shape, 1L);
            shape[0] = Lanes.Count;
            using var selected = table.select(0, row);
            return selected.view(shape);
        }

        public Tensor HyperRow(int row, Tensor like) => Row(Hyper, row, like);

        public Tensor PerParameterRow(int parameter, Tensor like) => Row(PerParameter, parameter, like);
    }
}
