using TorchTrials.Benchmarks;

namespace TorchTrials.Tests.Benchmarks;

public class MannWhitneyTests
{
    [Fact]
    public void Separated_samples_give_u_zero_and_the_normal_approximation_p()
    {
        // x = {1, 2, 3} ranks 1..3 of 7: U = 6 - 3 * 4 / 2 = 0; mean 3 * 4 / 2 = 6, variance 12 / 12 * 8 = 8;
        // z = (|0 - 6| - 0.5) / sqrt(8) = 1.94454, two-sided p = erfc(z / sqrt 2) = 0.051830.
        var (u, p) = MannWhitney.Test(new double[] { 1, 2, 3 }, new double[] { 4, 5, 6, 7 });
        Assert.Equal(0, u);
        Assert.Equal(0.051830, p, 5);
        // Swapping the samples gives U = 12 - 0 and the same p.
        var (uSwapped, pSwapped) = MannWhitney.Test(new double[] { 4, 5, 6, 7 }, new double[] { 1, 2, 3 });
        Assert.Equal(12, uSwapped);
        Assert.Equal(p, pSwapped, 12);
    }

    [Fact]
    public void Ties_take_mid_ranks_and_shrink_the_variance()
    {
        // Pooled: 1 | 2 2 2 | 3 3 | 4 | 5 -> ranks 1, 3, 3, 3, 5.5, 5.5, 7, 8. x = {1, 2, 2, 3}: rank sum 12.5, U = 12.5 - 10 = 2.5.
        // Ties: (3³ - 3) + (2³ - 2) = 30; variance = 16 / 12 * (9 - 30 / 56) = 11.2857, sd 3.35942;
        // z = (|2.5 - 8| - 0.5) / 3.35942 = 1.48835, p = 0.136658.
        var (u, p) = MannWhitney.Test(new double[] { 1, 2, 2, 3 }, new double[] { 2, 3, 4, 5 });
        Assert.Equal(2.5, u);
        Assert.Equal(0.136658, p, 5);
    }

    [Fact]
    public void Identical_samples_are_not_different()
    {
        var (u, p) = MannWhitney.Test(new double[] { 1, 2, 3, 4 }, new double[] { 1, 2, 3, 4 });
        Assert.Equal(8, u);
        Assert.Equal(1, p);
    }
}
