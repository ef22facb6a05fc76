using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Fusion;

/// <summary>
/// <see cref="Adam"/> and <see cref="AdamW"/> fused (PyTorch's <c>_single_tensor_adam</c>): per-lane lr, beta1, beta2,
/// eps, weight_decay; the bias corrections <c>-lr / (1 - beta1^step)</c> and <c>sqrt(1 - beta2^step)</c> from each lane's
/// step count, computed in float64 on the device for every parameter at once and rounded to the parameters' dtype, as the
/// unfused optimizer rounds its double Scalars.
/// </summary>
internal sealed class FusedAdam(IReadOnlyList<Tensor> parameters, int capacity, bool decoupled)
    : FusedOptimizer(decoupled ? "adamw" : "adam", parameters, capacity)
{
    private const int OneMinusBeta1 = 0, Beta2 = 1, OneMinusBeta2 = 2, Eps = 3, WeightDecay = 4, Decay = 5;
    private const int Lr64 = 0, Beta1_64 = 1, Beta2_64 = 2;
    private const int ExpAvg = 0, ExpAvgSq = 1;

    private static readonly (string, bool)[] SlotList = { ("exp_avg", false), ("exp_avg_sq", false) };

    private protected override IReadOnlyList<(string Name, bool Conditional)> Slots => SlotList;

    private protected override bool HasStepCount => true;

    private protected override int HyperRows => 6;

    private protected override int Hyper64Rows => 3;

    private protected override void Fill(OptimizerSettings settings, Span<double> hyper, Span<double> hyper64)
    {
        hyper[OneMinusBeta1] = 1 - settings.Beta1;
        hyper[Beta2] = settings.Beta2;
        hyper[OneMinusBeta2] = 1 - settings.Beta2;
        hyper[Eps] = settings.Eps;
        hyper[WeightDecay] = settings.WeightDecay;
        hyper[Decay] = 1 - settings.Lr * settings.WeightDecay;
        hyper64[Lr64] = settings.Lr;
        hyper64[Beta1_64] = settings.Beta1;
        hyper64[Beta2_64] = settings.Beta2;
    }

    private protected override void PrepareGroup(Group group)
    {
        var one = group.One;
        // [P, A]: the step counts already include this step, as the unfused state.step += 1 comes first.
        using var beta1 = group.Hyper64.select(0, Beta1_64);
        using var beta2 = group.Hyper64.select(0, Beta2_64);
        using var lr = group.Hyper64.select(0, Lr64);
        using var biasCorrection1 = beta1.pow(group.Steps).neg_().add_(one, one);
        using var stepSize = lr.div(biasCorrection1).neg_();
        using var biasCorrection2Sqrt = beta2.pow(group.Steps).neg_().add_(one, one).sqrt_();
        group.First = group.Keep(0, stepSize.to_type(group.DType));
        group.Second = group.Keep(1, biasCorrection2Sqrt.to_type(group.DType));
    }

    private protected override void Update(Group group, int index, Tensor parameter, Tensor grad, Tensor[] state)
    {
        var one = group.One;
        if (group.Settings.Any(s => s.WeightDecay != 0))
        {
            if (decoupled)
                parameter.mul_(group.HyperRow(Decay, parameter));
            else
                grad = grad.add(parameter.mul(group.HyperRow(WeightDecay, parameter)), one);
        }
        var expAvg = state[ExpAvg];
        var expAvgSq = state[ExpAvgSq];
        expAvg.lerp_(grad, group.HyperRow(OneMinusBeta1, parameter));
        expAvgSq.mul_(group.HyperRow(Beta2, parameter)).addcmul_(grad.mul(group.HyperRow(OneMinusBeta2, parameter)), grad, one);
        var denom = expAvgSq.sqrt().div_(group.Row(group.Second!, index, parameter)).add_(group.HyperRow(Eps, parameter), one);
        parameter.addcdiv_(expAvg.mul(group.Row(group.First!, index, parameter)), denom, one);
    }
}
