using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Optim;

/// <summary>
/// Adam (Kingma and Ba, 2015) as PyTorch's torch/optim/adam.py computes it in its single-tensor (for-loop, not foreach,
/// not fused) path <c>_single_tensor_adam</c>: <c>exp_avg.lerp_(grad, 1 - beta1)</c>,
/// <c>exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value: 1 - beta2)</c>,
/// <c>denom = (exp_avg_sq.sqrt() / sqrt(1 - beta2^step)).add_(eps)</c>, <c>param.addcdiv_(exp_avg, denom, value: -lr / (1 - beta1^step))</c>;
/// L2 weight decay added to the gradient, or with <c>decoupled_weight_decay</c> (<see cref="AdamW"/>) <c>param.mul_(1 - lr * weight_decay)</c> first.
/// Not supported: amsgrad, maximize, capturable, differentiable. TorchSharp's Adam uses <c>mul_(beta1).add_(grad, 1 - beta1)</c>
/// for the first moment (PyTorch before 2.0), which agrees to float rounding.
/// </summary>
public class Adam : TrialOptimizer<Adam.State>
{
    private readonly double _beta1;
    private readonly double _beta2;
    private readonly double _eps;
    private readonly double _weightDecay;
    private readonly bool _decoupled;

    public Adam(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0)
        : this(parameters, lr, beta1, beta2, eps, weight_decay, decoupled: false)
    {
    }

    private protected Adam(IEnumerable<Parameter> parameters, double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled)
        : base(parameters, Validated(lr, beta1, beta2, eps, weight_decay))
    {
        (_beta1, _beta2, _eps, _weightDecay, _decoupled) = (beta1, beta2, eps, weight_decay, decoupled);
    }

    private static double Validated(double lr, double beta1, double beta2, double eps, double weightDecay)
    {
        if (beta1 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), $"beta1 must be in [0, 1), got {beta1}");
        if (beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta2), $"beta2 must be in [0, 1), got {beta2}");
        if (eps < 0) throw new ArgumentOutOfRangeException(nameof(eps), $"eps must not be negative, got {eps}");
        if (weightDecay < 0) throw new ArgumentOutOfRangeException("weight_decay", $"weight_decay must not be negative, got {weightDecay}");
        return lr;
    }

    protected override State CreateState(Parameter parameter) => new(parameter);

    protected override void Update(Parameter parameter, Tensor grad, State state, double lr)
    {
        state.step += 1;
        if (_weightDecay != 0)
        {
            if (_decoupled)
            {
                using var decay = (1 - lr * _weightDecay).ToScalar();
                parameter.mul_(decay);
            }
            else
            {
                using var weightDecay = _weightDecay.ToScalar();
                grad = grad.add(parameter, alpha: weightDecay);
            }
        }
        using var weight = tensor(1 - _beta1, dtype: parameter.dtype, device: parameter.device);
        state.exp_avg!.lerp_(grad, weight);
        using var beta2 = _beta2.ToScalar();
        using var oneMinusBeta2 = (1 - _beta2).ToScalar();
        state.exp_avg_sq!.mul_(beta2).addcmul_(grad, grad.conj(), value: oneMinusBeta2);

        double biasCorrection1 = 1 - Math.Pow(_beta1, state.step);
        double biasCorrection2 = 1 - Math.Pow(_beta2, state.step);
        using var biasCorrection2Sqrt = Math.Sqrt(biasCorrection2).ToScalar();
        using var eps = _eps.ToScalar();
        using var negativeStepSize = (-(lr / biasCorrection1)).ToScalar();
        using var one = 1.ToScalar();
        // add_(Scalar) would pass TorchSharp's own implicit alpha of 1, as exposed to the finalizer as ours.
        var denom = state.exp_avg_sq.sqrt().div_(biasCorrection2Sqrt).add_(eps, one);
        parameter.addcdiv_(state.exp_avg, denom, value: negativeStepSize);
    }

    /// <summary>Adam's state of one parameter (names as in PyTorch's state dict).</summary>
    public sealed class State(Parameter parameter) : SteppedParameterState(parameter)
    {
        public Tensor? exp_avg;
        public Tensor? exp_avg_sq;

        protected override int TensorCount => 2;

        protected override ref Tensor? Slot(int index) => ref index == 0 ? ref exp_avg : ref exp_avg_sq;

        public override void Initialize(OptimizerOptions options)
        {
            step = 0;
            exp_avg?.Dispose();
            exp_avg_sq?.Dispose();
            exp_avg = ZerosLikeParameter();
            exp_avg_sq = ZerosLikeParameter();
        }
    }
}

/// <summary>
/// AdamW (Loshchilov and Hutter, 2019): PyTorch's torch/optim/adamw.py, which is adam.py's <c>_single_tensor_adam</c>
/// with <c>decoupled_weight_decay=True</c> (<c>param.mul_(1 - lr * weight_decay)</c> before the moments). Default weight_decay 0.01 as there.
/// </summary>
public sealed class AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0.01)
    : Adam(parameters, lr, beta1, beta2, eps, weight_decay, decoupled: true);
