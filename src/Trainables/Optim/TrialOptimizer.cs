using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Optim;

/// <summary>
/// Base of TorchTrials' optimizers (<see cref="Adam"/>, <see cref="AdamW"/>, <see cref="Sgd"/>, <see cref="RmsProp"/>), which a user's own trainable can use too:
/// TorchSharp's <see cref="OptimizerHelper"/> with a step whose native scalars are created per step and disposed only
/// after the calls that read them. TorchSharp's own optimizers pass doubles converted implicitly to
/// <see cref="Scalar"/>s that nothing references during the native call, so a collection lets the finalizer free them
/// while LibTorch reads them ("Unknown scalar type", "toDouble ... Scalar.h:140"; issue 9, TorchSharp PR #1496).
/// Per-parameter state lives in public fields named as PyTorch names them (<c>step</c>, <c>exp_avg</c> ...), which is
/// what <see cref="Checkpoints.TrainableState.Capture(nn.Module?, optim.Optimizer?, System.Text.Json.Nodes.JsonObject?)"/> saves.
/// The learning rate is read from each parameter group at every step, so TorchSharp's LR schedulers apply.
/// </summary>
public abstract class TrialOptimizer<TState> : OptimizerHelper where TState : ParameterState
{
    protected TrialOptimizer(IEnumerable<Parameter> parameters, double lr)
    {
        if (!(lr > 0)) throw new ArgumentOutOfRangeException(nameof(lr), $"learning rate must be positive, got {lr}");
        _defaults = new OptimizerOptions { LearningRate = lr, InitialLearningRate = lr };
        _parameter_groups = new List<ParamGroup>();
        add_param_group(new ParamGroup { Parameters = parameters.ToList() });
    }

    /// <summary>Adds a group of parameters; without options of its own it takes the optimizer's learning rate.</summary>
    public override void add_param_group(ParamGroup param_group)
    {
        param_group.Options ??= new OptimizerOptions();
        param_group.Options.LearningRate ??= _defaults.LearningRate;
        param_group.Options.InitialLearningRate = param_group.Options.LearningRate!.Value;
        param_group.Parameters = param_group.Parameters.ToList();
        _parameter_groups.Add(param_group);
        foreach (var parameter in param_group.Parameters)
        {
            var state = CreateState(parameter);
            state.Initialize(param_group.Options);
            _state[parameter.Handle] = state;
        }
    }

    /// <summary>The per-parameter state, before the first step.</summary>
    protected abstract TState CreateState(Parameter parameter);

    /// <summary>
    /// Updates one parameter in place. Runs under no_grad inside a dispose scope (tensor temporaries are freed at the
    /// end of the step); every <see cref="Scalar"/> it passes to a tensor call must be held by a <c>using</c> local.
    /// </summary>
    protected abstract void Update(Parameter parameter, Tensor grad, TState state, double lr);

    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        double lr = group.LearningRate;
        foreach (var parameter in group.Parameters)
        {
            var grad = parameter.grad;
            if (grad is null) continue;
            Update(parameter, grad, (TState)_state[parameter.Handle], lr);
        }
    }, closure);

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (!disposing) return;
        foreach (var (_, state) in _state)
            ((TState)state).Dispose();
        _state.Clear();
    }
}

/// <summary>
/// One parameter's optimizer state: tensors in public fields named as PyTorch names them (null until used), reached in
/// a fixed order through <see cref="Slot"/>; <see cref="SteppedParameterState"/> adds a step counter.
/// </summary>
public abstract class ParameterState : OptimizerState, IDisposable
{
    protected ParameterState(Parameter parameter) : base(parameter) { }

    /// <summary>The number of state tensors (<see cref="Slot"/> takes 0 to this - 1).</summary>
    protected abstract int TensorCount { get; }

    /// <summary>The field holding state tensor <paramref name="index"/>.</summary>
    protected abstract ref Tensor? Slot(int index);

    /// <summary>A new zero tensor shaped like the parameter, owned by this state.</summary>
    protected Tensor ZerosLikeParameter() => zeros_like(_parameter).DetachFromDisposeScope();

    public override void SaveStateDict(BinaryWriter writer)
    {
        for (int i = 0; i < TensorCount; i++) SaveConditionalStateTensor(writer, Slot(i));
    }

    public override void LoadStateDict(BinaryReader reader)
    {
        for (int i = 0; i < TensorCount; i++)
        {
            ref var slot = ref Slot(i);
            LoadConditionalStateTensor(reader, ref slot!, _parameter.device);
            slot = slot?.DetachFromDisposeScope();
        }
    }

    public override void LoadStateDict(OptimizerState source)
    {
        if (source is not ParameterState other || other.GetType() != GetType())
            throw new ArgumentException($"cannot load {source.GetType().Name} into {GetType().Name}", nameof(source));
        for (int i = 0; i < TensorCount; i++)
        {
            ref var slot = ref Slot(i);
            slot?.Dispose();
            slot = other.Slot(i)?.to(_parameter.device, copy: true).DetachFromDisposeScope();
        }
    }

    public override void to(Device device)
    {
        for (int i = 0; i < TensorCount; i++)
        {
            ref var slot = ref Slot(i);
            if (slot is not null && slot.device != device)
                slot = slot.to(device, disposeAfter: true).DetachFromDisposeScope();
        }
    }

    public override bool ApproximatelyEquals(OptimizerState other)
    {
        if (other is not ParameterState state || state.GetType() != GetType()) return false;
        for (int i = 0; i < TensorCount; i++)
        {
            var (a, b) = (Slot(i), state.Slot(i));
            if (a is null != b is null || (a is not null && !a.allclose(b!))) return false;
        }
        return true;
    }

    public void Dispose()
    {
        for (int i = 0; i < TensorCount; i++)
        {
            ref var slot = ref Slot(i);
            slot?.Dispose();
            slot = null;
        }
        GC.SuppressFinalize(this);
    }
}

/// <summary>A <see cref="ParameterState"/> with PyTorch's per-parameter <c>step</c> counter (Adam, RMSprop).</summary>
public abstract class SteppedParameterState(Parameter parameter) : ParameterState(parameter)
{
    /// <summary>Steps taken for this parameter (PyTorch's <c>state["step"]</c>).</summary>
    public long step;

    public override void SaveStateDict(BinaryWriter writer)
    {
        writer.Write(step);
        base.SaveStateDict(writer);
    }

    public override void LoadStateDict(BinaryReader reader)
    {
        step = reader.ReadInt64();
        base.LoadStateDict(reader);
    }

    public override void LoadStateDict(OptimizerState source)
    {
        base.LoadStateDict(source);
        step = ((SteppedParameterState)source).step;
    }
}
