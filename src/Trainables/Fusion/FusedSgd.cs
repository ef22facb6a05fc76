using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Fusion;

/// <summary>
/// <see cref="Sgd"/> fused (PyTorch's <c>_single_tensor_sgd</c>, dampening 0): lanes with momentum step as one group
/// (<c>buf = buf * m_eff + grad</c>, where <c>m_eff</c> is 0 until the lane's buffer exists, so the first step copies the
/// gradient as PyTorch does; Nesterov as <c>grad * n + buf * (n ? m : 1)</c> with a per-lane 0/1 <c>n</c>), lanes without
/// momentum as another (the gradient itself; a restored buffer stays untouched, as unfused).
/// </summary>
internal sealed class FusedSgd(IReadOnlyList<Tensor> parameters, int capacity) : FusedOptimizer("sgd", parameters, capacity)
{
    private const int WeightDecay = 0, NegativeLr = 1, NesterovFlag = 2, NesterovMomentum = 3;
    private const int Buffer = 0;
    private const int WithMomentum = 1;

    private static readonly (string, bool)[] SlotList = { ("momentum_buffer", true) };

    private protected override IReadOnlyList<(string Name, bool Conditional)> Slots => SlotList;

    private protected override bool HasStepCount => false;

    private protected override int HyperRows => 4;

    private protected override void Fill(OptimizerSettings settings, Span<double> hyper, Span<double> hyper64)
    {
        hyper[WeightDecay] = settings.WeightDecay;
        hyper[NegativeLr] = -settings.Lr;
        hyper[NesterovFlag] = settings.Nesterov ? 1 : 0;
        hyper[NesterovMomentum] = settings.Nesterov ? settings.Momentum : 1;
        hyper64[0] = settings.Lr;
    }

    private protected override int Variant(OptimizerSettings settings) => settings.Momentum != 0 ? WithMomentum : 0;

    private protected override bool Creates(int slot, int variant) => variant == WithMomentum;

    private protected override double PerParameterValue(int parameter, int lane, OptimizerSettings settings, bool[][][] present) =>
        present[Buffer][parameter][lane] ? settings.Momentum : 0;

    private protected override void Update(Group group, int index, Tensor parameter, Tensor grad, Tensor[] state)
    {
        var one = group.One;
        if (group.Settings.Any(s => s.WeightDecay != 0))
            grad = grad.add(parameter.mul(group.HyperRow(WeightDecay, parameter)), one);
        var direction = grad;
        if (group.Variant == WithMomentum)
        {
            var buffer = state[Buffer];
            buffer.mul_(group.PerParameterRow(index, parameter)).add_(grad, one);
            direction = group.Settings.Any(s => s.Nesterov)
                ? grad.mul(group.HyperRow(NesterovFlag, parameter)).add_(buffer.mul(group.HyperRow(NesterovMomentum, parameter)), one)
                : buffer;
        }
        parameter.add_(direction.mul(group.HyperRow(NegativeLr, parameter)), one);
    }
}
