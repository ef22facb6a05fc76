using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Fusion;

/// <summary>
/// <see cref="RmsProp"/> fused (PyTorch's <c>_single_tensor_rmsprop</c>, not centered): per-lane lr, alpha, eps,
/// weight_decay, momentum; lanes with momentum (which then have a momentum buffer) step as one group, lanes without as another.
/// </summary>
internal sealed class FusedRmsProp(IReadOnlyList<Tensor> parameters, int capacity) : FusedOptimizer("rmsprop", parameters, capacity)
{
    private const int WeightDecay = 0, Alpha = 1, OneMinusAlpha = 2, Eps = 3, Momentum = 4, NegativeLr = 5;
    private const int SquareAvg = 0, Buffer = 1;
    private const int WithMomentum = 1;

    private static readonly (string, bool)[] SlotList = { ("square_avg", false), ("momentum_buffer", true) };

    private protected override IReadOnlyList<(string Name, bool Conditional)> Slots => SlotList;

    private protected override bool HasStepCount => true;

    private protected override int HyperRows => 6;

    private protected override void Fill(OptimizerSettings settings, Span<double> hyper, Span<double> hyper64)
    {
        hyper[WeightDecay] = settings.WeightDecay;
        hyper[Alpha] = settings.Alpha;
        hyper[OneMinusAlpha] = 1 - settings.Alpha;
        hyper[Eps] = settings.Eps;
        hyper[Momentum] = settings.Momentum;
        hyper[NegativeLr] = -settings.Lr;
        hyper64[0] = settings.Lr;
    }

    private protected override int Variant(OptimizerSettings settings) => settings.Momentum > 0 ? WithMomentum : 0;

    private protected override bool Creates(int slot, int variant) => slot == Buffer && variant == WithMomentum;

    private protected override void Update(Group group, int index, Tensor parameter, Tensor grad, Tensor[] state)
    {
        var one = group.One;
        if (group.Settings.Any(s => s.WeightDecay != 0))
            grad = grad.add(parameter.mul(group.HyperRow(WeightDecay, parameter)), one);
        var squareAvg = state[SquareAvg];
        squareAvg.mul_(group.HyperRow(Alpha, parameter)).addcmul_(grad.mul(group.HyperRow(OneMinusAlpha, parameter)), grad, one);
        var avg = squareAvg.sqrt().add_(group.HyperRow(Eps, parameter), one);
        if (group.Variant == WithMomentum)
        {
            // The buffer is zero until the lane's first step with momentum, as the unfused state creates it.
            var buffer = state[Buffer];
            buffer.mul_(group.HyperRow(Momentum, parameter)).addcdiv_(grad, avg, one);
            parameter.add_(buffer.mul(group.HyperRow(NegativeLr, parameter)), one);
        }
        else
        {
            parameter.addcdiv_(grad.mul(group.HyperRow(NegativeLr, parameter)), avg, one);
        }
    }
}
