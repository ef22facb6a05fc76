using TorchSharp;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Modules;

/// <summary>
/// Inverted dropout (as <c>torch.nn.Dropout</c>: in training each element is zeroed with probability <see cref="P"/> and
/// the rest scaled by 1/(1-p); in eval the identity) whose masks come from a <see cref="torch.Generator"/> the caller
/// owns instead of LibTorch's process-wide generator. TorchSharp's <c>nn.Dropout</c> and <c>functional.dropout</c>
/// take no generator, so concurrent trials that use them draw from one shared stream in whatever order their threads
/// get there, and no seed makes a sweep repeat. Give each trial its own generator (seeded from
/// <see cref="TrainableContext.Seed"/>, on <see cref="TrainableContext.Device"/>) and save it with
/// <see cref="Checkpoints.TrainableState.AddGeneratorState"/> so a restored trial draws the same masks again.
/// Deviation from PyTorch: the mask is <c>rand(shape) &gt;= p</c> rather than <c>bernoulli_(1-p)</c>, so the masks
/// differ from PyTorch's for the same seed (the distribution is the same).
/// </summary>
public sealed class SeededDropout : nn.Module<Tensor, Tensor>
{
    private readonly Generator _generator;
    private readonly Scalar _p;
    private readonly Scalar _scale;

    /// <param name="p">Probability of zeroing an element, in [0, 1).</param>
    /// <param name="generator">Where the masks come from; its device must be the inputs' device. The module does not dispose it.</param>
    public SeededDropout(double p, Generator generator, string name = "SeededDropout") : base(name)
    {
        if (p is < 0 or >= 1 || double.IsNaN(p)) throw new ArgumentOutOfRangeException(nameof(p), $"dropout probability must be in [0, 1), got {p}");
        P = p;
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        _p = p.ToScalar();
        _scale = (1.0 / (1.0 - p)).ToScalar();
    }

    public double P { get; }

    public override Tensor forward(Tensor input)
    {
        if (!training || P == 0) return input.alias();
        using var scope = NewDisposeScope();
        var keep = rand(input.shape, input.dtype, input.device, generator: _generator);
        // In place: the uniform draws become the scaled keep mask (0 or 1/(1-p)) without another buffer.
        keep.ge_(_p).mul_(_scale);
        return scope.MoveToOuter(input.mul(keep));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _p.Dispose();
            _scale.Dispose();
        }
        base.Dispose(disposing);
    }

    public override string ToString() => $"SeededDropout(p={P})";
}
