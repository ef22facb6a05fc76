using TorchSharp;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Fusion;

/// <summary>
/// K linear layers as one (HFTA's fused Linear, repository UofT-EcoSystem/hfta, hfta/ops/linear.py: one batched matmul
/// over stacked weights). Every parameter is [K, ...the unfused shape]: <see cref="Weight"/> [K, out, in] and
/// <see cref="Bias"/> [K, out], so lane k's slices are exactly an <c>nn.Linear(in, out)</c>'s weight and bias, which is
/// what lane checkpoints and <see cref="FusedOptimizer"/> rely on. Input [K, B, in] (each member its own batch) or
/// [B, in] (one input for all members, as in validation); output [K, B, out].
/// </summary>
public sealed class FusedLinear : IDisposable
{
    public FusedLinear(int members, long inputs, long outputs, Device device, ScalarType dtype = ScalarType.Float32)
    {
        if (members < 1) throw new ArgumentOutOfRangeException(nameof(members), $"a fused layer needs at least one member, got {members}");
        Members = members;
        Inputs = inputs;
        Outputs = outputs;
        Weight = zeros(new[] { members, outputs, inputs }, dtype, device, requires_grad: true);
        Bias = zeros(new[] { members, outputs }, dtype, device, requires_grad: true);
    }

    public int Members { get; }

    public long Inputs { get; }

    public long Outputs { get; }

    /// <summary>[K, out, in], a leaf that requires grad.</summary>
    public Tensor Weight { get; }

    /// <summary>[K, out], a leaf that requires grad.</summary>
    public Tensor Bias { get; }

    /// <summary>The parameters in an <c>nn.Linear</c>'s <c>parameters()</c> order.</summary>
    public IEnumerable<Tensor> Parameters()
    {
        yield return Weight;
        yield return Bias;
    }

    /// <param name="x">[K, B, in], or [M, B, in] when <paramref name="members"/> selects M members, or [B, in] shared.</param>
    /// <param name="members">The members to compute, as a long index (null: all): the others cost nothing but their share of the gradient's zero fill.</param>
    public Tensor Forward(Tensor x, Tensor? members = null) =>
        Apply(x, members is null ? Weight : Weight.index_select(0, members), members is null ? Bias : Bias.index_select(0, members));

    /// <summary>The layer's function on given [M, out, in] weights and [M, out] biases (for example leaf copies of some members').</summary>
    public static Tensor Apply(Tensor x, Tensor weight, Tensor bias)
    {
        using var scope = NewDisposeScope();
        var weightT = weight.transpose(1, 2);
        using var one = 1.ToScalar();
        var y = (x.dim() == 2 ? matmul(x, weightT) : bmm(x, weightT)).add_(bias.unsqueeze(1), one);
        return scope.MoveToOuter(y);
    }

    /// <param name="x">[K, in, B] (features first: column b is example b), or [M, in, B] when <paramref name="members"/> selects M members, or [in, B] shared.</param>
    /// <param name="members">As in <see cref="Forward"/>.</param>
    /// <returns>[K or M, out, B].</returns>
    public Tensor ForwardFeatureMajor(Tensor x, Tensor? members = null) =>
        ApplyFeatureMajor(x, members is null ? Weight : Weight.index_select(0, members), members is null ? Bias : Bias.index_select(0, members));

    /// <summary>
    /// The layer's function with features first: <c>W x + b</c> on [M, in, B] (or a shared [in, B]) giving [M, out, B], the
    /// transpose of <see cref="Apply"/>'s. Every matrix the forward and backward multiply is then contiguous as stored: the
    /// weight gradient <c>dY Xᵀ</c> comes out [M, out, in] like the weight, with no transposed copy, which on the CPU trains
    /// a digits MLP 1.3-1.7x faster per step than the batch-first layout (benchmarks/RESULTS.md, stop 22).
    /// </summary>
    public static Tensor ApplyFeatureMajor(Tensor x, Tensor weight, Tensor bias)
    {
        using var scope = NewDisposeScope();
        using var one = 1.ToScalar();
        var y = (x.dim() == 2 ? matmul(weight, x) : bmm(weight, x)).add_(bias.unsqueeze(2), one);
        return scope.MoveToOuter(y);
    }

    public void Dispose()
    {
        Weight.Dispose();
        Bias.Dispose();
    }
}

/// <summary>
/// Inverted dropout per member with a probability and a generator of each member's own: member k's mask is what
/// <see cref="Modules.SeededDropout"/> draws alone from the same generator (<c>rand([B, width], generator) &gt;= p</c>, scaled
/// by 1/(1-p)), so fused and alone give the same masks; a member with p = 0 draws nothing, as a model without a dropout
/// layer. HFTA's fused dropout (hfta/ops/dropout.py) draws one mask for all members from the global generator; a
/// generator per member is what makes a lane's trial repeat alone. The masks are drawn member by member (one native
/// call each: generators cannot be batched); the rest is one call for all.
/// </summary>
public sealed class FusedDropout : IDisposable
{
    private readonly double[] _p;
    private readonly Tensor _threshold; // [K, 1, 1]
    private readonly Tensor _scale; // [K, 1, 1]
    private bool _dirty = true;
    private readonly float[] _hostThreshold;
    private readonly float[] _hostScale;

    public FusedDropout(int members, Device device)
    {
        _p = new double[members];
        _hostThreshold = new float[members];
        _hostScale = Enumerable.Repeat(1f, members).ToArray();
        _threshold = zeros(new long[] { members, 1, 1 }, ScalarType.Float32, device);
        _scale = ones(new long[] { members, 1, 1 }, ScalarType.Float32, device);
    }

    public double P(int member) => _p[member];

    public void SetP(int member, double p)
    {
        if (p is < 0 or >= 1 || double.IsNaN(p)) throw new ArgumentOutOfRangeException(nameof(p), $"dropout probability must be in [0, 1), got {p}");
        _p[member] = p;
        _hostThreshold[member] = (float)p;
        _hostScale[member] = (float)(1.0 / (1.0 - p));
        _dirty = true;
    }

    /// <summary>
    /// <paramref name="x"/> [K, B, width] with each drawing member's mask applied; <paramref name="generators"/>[k] is member
    /// k's generator, used only for the members in <paramref name="drawing"/> whose p is above 0. With
    /// <paramref name="members"/> (a long index of M members), <paramref name="x"/> is [M, B, width] and row j is member
    /// <paramref name="drawing"/>[j].
    /// </summary>
    public Tensor Forward(Tensor x, IReadOnlyList<int> drawing, IReadOnlyList<Generator> generators, Tensor? members = null)
    {
        using var scope = NewDisposeScope();
        if (_dirty)
        {
            using var t = tensor(_hostThreshold).view(_p.Length, 1, 1);
            using var s = tensor(_hostScale).view(_p.Length, 1, 1);
            _threshold.copy_(t);
            _scale.copy_(s);
            _dirty = false;
        }
        if (!drawing.Any(k => _p[k] > 0)) return scope.MoveToOuter(x.alias());
        // Contiguous whatever x's layout (a transposed view, from a features-first network): member k's draws fill its
        // [B, width] slice in row order, as SeededDropout's rand([B, width]) does alone.
        var draws = zeros(x.shape, x.dtype, x.device);
        for (int j = 0; j < drawing.Count; j++)
        {
            int k = drawing[j];
            if (_p[k] == 0) continue;
            using var slice = draws.select(0, members is null ? k : j);
            slice.uniform_(0, 1, generators[k]);
        }
        var threshold = members is null ? _threshold : _threshold.index_select(0, members);
        var scale = members is null ? _scale : _scale.index_select(0, members);
        var keep = draws.ge_(threshold.to(x.dtype)).to(x.dtype).mul_(scale.to(x.dtype));
        return scope.MoveToOuter(x.mul(keep));
    }

    public void Dispose()
    {
        _threshold.Dispose();
        _scale.Dispose();
    }
}
