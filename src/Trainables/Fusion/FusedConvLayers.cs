using static TorchSharp.torch;

namespace TorchTrials.Trainables.Fusion;

/// <summary>
/// K 2-d convolutions as one grouped convolution (HFTA's fused Conv2d, repository UofT-EcoSystem/hfta, hfta/ops/conv.py:
/// the members' channels side by side, one <c>conv2d</c> with <c>groups</c> = K). <see cref="Weight"/> is
/// [K, out, in, kh, kw] and <see cref="Bias"/> [K, out], so lane k's slices are exactly an <c>nn.Conv2d(in, out, kernel)</c>'s
/// weight and bias (what lane checkpoints and <see cref="FusedOptimizer"/> rely on); the weight is viewed as
/// [K·out, in, kh, kw] for the call. Input and output have the channel-stacked layout [B, K·C, H, W]
/// (<see cref="FusedConvLayout"/>): channels k·C to (k+1)·C-1 are member k's. Stride 1, square kernel and padding, no
/// dilation: what the built-in ConvNet uses.
/// </summary>
public sealed class FusedConv2d : IDisposable
{
    public FusedConv2d(int members, long inChannels, long outChannels, long kernel, long padding, Device device, ScalarType dtype = ScalarType.Float32)
    {
        if (members < 1) throw new ArgumentOutOfRangeException(nameof(members), $"a fused layer needs at least one member, got {members}");
        Members = members;
        InChannels = inChannels;
        OutChannels = outChannels;
        Kernel = kernel;
        Padding = padding;
        Weight = zeros(new[] { members, outChannels, inChannels, kernel, kernel }, dtype, device, requires_grad: true);
        Bias = zeros(new[] { members, outChannels }, dtype, device, requires_grad: true);
    }

    public int Members { get; }

    public long InChannels { get; }

    public long OutChannels { get; }

    public long Kernel { get; }

    public long Padding { get; }

    /// <summary>[K, out, in, kh, kw], a leaf that requires grad.</summary>
    public Tensor Weight { get; }

    /// <summary>[K, out], a leaf that requires grad.</summary>
    public Tensor Bias { get; }

    /// <summary>The parameters in an <c>nn.Conv2d</c>'s <c>parameters()</c> order.</summary>
    public IEnumerable<Tensor> Parameters()
    {
        yield return Weight;
        yield return Bias;
    }

    /// <param name="x">[B, M·in, H, W] for the M members <paramref name="members"/> selects (null: all K).</param>
    /// <param name="members">The members to compute, as a long index (null: all).</param>
    public Tensor Forward(Tensor x, Tensor? members = null) =>
        Apply(x, members is null ? Weight : Weight.index_select(0, members), members is null ? Bias : Bias.index_select(0, members), Padding);

    /// <summary>The layer's function on given [M, out, in, kh, kw] weights and [M, out] biases (for example leaf copies of some members').</summary>
    public static Tensor Apply(Tensor x, Tensor weight, Tensor bias, long padding)
    {
        using var scope = NewDisposeScope();
        long m = weight.shape[0], outChannels = weight.shape[1];
        var w = weight.reshape(m * outChannels, weight.shape[2], weight.shape[3], weight.shape[4]);
        var b = bias.reshape(m * outChannels);
        var y = nn.functional.conv2d(x, w, b, padding: new[] { padding, padding }, groups: m);
        return scope.MoveToOuter(y);
    }

    public void Dispose()
    {
        Weight.Dispose();
        Bias.Dispose();
    }
}

/// <summary>
/// The channel-stacked layout of HFTA's fused convolutions (hfta/ops/conv.py): M members' images [B, C, H, W] side by side
/// as [B, M·C, H, W], member j in channels j·C to (j+1)·C-1. ReLU and <c>max_pool2d</c> act per channel, so they apply to
/// this layout unchanged; these helpers enter and leave it.
/// </summary>
public static class FusedConvLayout
{
    /// <summary>[M·B, C, H, W], member-major rows (row j·B+b is member j's example b), as [B, M·C, H, W].</summary>
    public static Tensor Stack(Tensor x, long members)
    {
        long rows = x.shape[0] / members, c = x.shape[1], h = x.shape[2], w = x.shape[3];
        using var scope = NewDisposeScope();
        var y = x.view(members, rows, c, h, w).transpose(0, 1).reshape(rows, members * c, h, w);
        return scope.MoveToOuter(y);
    }

    /// <summary>One batch [B, C, H, W] for all M members (validation): [B, M·C, H, W].</summary>
    public static Tensor Shared(Tensor x, long members) => x.repeat(1, members, 1, 1);

    /// <summary>
    /// [B, M·C, H, W] as [M, B, C·H·W]: each member's rows flattened as <c>nn.Flatten</c> flattens them alone (C, H, W order),
    /// the input of a <see cref="FusedLinear"/>.
    /// </summary>
    public static Tensor Flatten(Tensor x, long members)
    {
        using var scope = NewDisposeScope();
        var y = x.reshape(x.shape[0], members, -1).transpose(0, 1);
        return scope.MoveToOuter(y);
    }
}
