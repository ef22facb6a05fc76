using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Optim;

/// <summary>
/// RMSprop (Hinton's lecture 6e) as PyTorch's torch/optim/rmsprop.py computes it in <c>_single_tensor_rmsprop</c>
/// (not centered): <c>grad = grad.add(param, alpha: weight_decay)</c>, <c>square_avg.mul_(alpha).addcmul_(grad, grad, value: 1 - alpha)</c>,
/// <c>avg = square_avg.sqrt().add_(eps)</c>; with momentum <c>buf.mul_(momentum).addcdiv_(grad, avg)</c> and <c>param.add_(buf, alpha: -lr)</c>,
/// otherwise <c>param.addcdiv_(grad, avg, value: -lr)</c>. Not supported: centered, maximize.
/// </summary>
public sealed class RmsProp : TrialOptimizer<RmsProp.State>
{
    private readonly double _alpha;
    private readonly double _eps;
    private readonly double _weightDecay;
    private readonly double _momentum;

    public RmsProp(IEnumerable<Parameter> parameters, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8, double weight_decay = 0, double momentum = 0)
        : base(parameters, lr)
    {
        if (alpha < 0) throw new ArgumentOutOfRangeException(nameof(alpha), $"alpha must not be negative, got {alpha}");
        if (eps < 0) throw new ArgumentOutOfRangeException(nameof(eps), $"eps must not be negative, got {eps}");
        if (weight_decay < 0) throw new ArgumentOutOfRangeException(nameof(weight_decay), $"weight_decay must not be negative, got {weight_decay}");
        if (momentum < 0) throw new ArgumentOutOfRangeException(nameof(momentum), $"momentum must not be negative, got {momentum}");
        (_alpha, _eps, _weightDecay, _momentum) = (alpha, eps, weight_decay, momentum);
    }

    protected override State CreateState(Parameter parameter) => new(parameter);

    protected override void Update(Parameter parameter, Tensor grad, State state, double lr)
    {
        state.step += 1;
        if (_weightDecay != 0)
        {
            using var weightDecay = _weightDecay.ToScalar();
            grad = grad.add(parameter, alpha: weightDecay);
        }
        using var alpha = _alpha.ToScalar();
        using var oneMinusAlpha = (1 - _alpha).ToScalar();
        state.square_avg!.mul_(alpha).addcmul_(grad, grad, value: oneMinusAlpha);
        using var eps = _eps.ToScalar();
        using var one = 1.ToScalar();
        // The overloads without alpha or value pass TorchSharp's own implicit Scalar of 1, as exposed to the finalizer as ours.
        var avg = state.square_avg.sqrt().add_(eps, one);
        using var negativeLr = (-lr).ToScalar();
        if (_momentum > 0)
        {
            // Zeros as PyTorch initialises it, made at the first step with momentum (also after a restore from a state without one, as PBT may do).
            var buffer = state.momentum_buffer ??= state.ZerosLike();
            using var momentum = _momentum.ToScalar();
            buffer.mul_(momentum).addcdiv_(grad, avg, value: one);
            parameter.add_(buffer, alpha: negativeLr);
        }
        else
        {
            parameter.addcdiv_(grad, avg, value: negativeLr);
        }
    }

    /// <summary>RMSprop's state of one parameter (names as in PyTorch's state dict; the momentum buffer only with momentum).</summary>
    public sealed class State(Parameter parameter) : SteppedParameterState(parameter)
    {
        public Tensor? square_avg;
        public Tensor? momentum_buffer;

        protected override int TensorCount => 2;

        protected override ref Tensor? Slot(int index) => ref index == 0 ? ref square_avg : ref momentum_buffer;

        internal Tensor ZerosLike() => ZerosLikeParameter();

        public override void Initialize(OptimizerOptions options)
        {
            step = 0;
            square_avg?.Dispose();
            square_avg = ZerosLikeParameter();
        }
    }
}
