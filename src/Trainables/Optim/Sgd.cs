using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Optim;

/// <summary>
/// Stochastic gradient descent with momentum as PyTorch's torch/optim/sgd.py computes it in <c>_single_tensor_sgd</c>:
/// <c>grad = grad.add(param, alpha: weight_decay)</c>; the momentum buffer is a copy of the first gradient, then
/// <c>buf.mul_(momentum).add_(grad, alpha: 1 - dampening)</c>; Nesterov uses <c>grad.add(buf, alpha: momentum)</c>;
/// <c>param.add_(grad, alpha: -lr)</c>. Not supported: maximize.
/// </summary>
public sealed class Sgd : TrialOptimizer<Sgd.State>
{
    private readonly double _momentum;
    private readonly double _dampening;
    private readonly double _weightDecay;
    private readonly bool _nesterov;

    public Sgd(IEnumerable<Parameter> parameters, double lr, double momentum = 0, double dampening = 0, double weight_decay = 0, bool nesterov = false)
        : base(parameters, lr)
    {
        if (momentum < 0) throw new ArgumentOutOfRangeException(nameof(momentum), $"momentum must not be negative, got {momentum}");
        if (weight_decay < 0) throw new ArgumentOutOfRangeException(nameof(weight_decay), $"weight_decay must not be negative, got {weight_decay}");
        if (nesterov && (momentum <= 0 || dampening != 0)) throw new ArgumentException("Nesterov momentum requires a momentum and zero dampening", nameof(nesterov));
        (_momentum, _dampening, _weightDecay, _nesterov) = (momentum, dampening, weight_decay, nesterov);
    }

    protected override State CreateState(Parameter parameter) => new(parameter);

    protected override void Update(Parameter parameter, Tensor grad, State state, double lr)
    {
        if (_weightDecay != 0)
        {
            using var weightDecay = _weightDecay.ToScalar();
            grad = grad.add(parameter, alpha: weightDecay);
        }
        if (_momentum != 0)
        {
            using var momentum = _momentum.ToScalar();
            if (state.momentum_buffer is null)
            {
                state.momentum_buffer = grad.clone().detach().DetachFromDisposeScope();
            }
            else
            {
                using var oneMinusDampening = (1 - _dampening).ToScalar();
                state.momentum_buffer.mul_(momentum).add_(grad, alpha: oneMinusDampening);
            }
            grad = _nesterov ? grad.add(state.momentum_buffer, alpha: momentum) : state.momentum_buffer;
        }
        using var negativeLr = (-lr).ToScalar();
        parameter.add_(grad, alpha: negativeLr);
    }

    /// <summary>SGD's state of one parameter: the momentum buffer, absent before the first step with momentum (as in PyTorch).</summary>
    public sealed class State(Parameter parameter) : ParameterState(parameter)
    {
        public Tensor? momentum_buffer;

        protected override int TensorCount => 1;

        protected override ref Tensor? Slot(int index) => ref momentum_buffer;

        public override void Initialize(OptimizerOptions options)
        {
            momentum_buffer?.Dispose();
            momentum_buffer = null;
        }
    }
}
