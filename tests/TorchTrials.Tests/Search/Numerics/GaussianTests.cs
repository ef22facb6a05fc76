using TorchTrials.Runner.Search;

namespace TorchTrials.Tests.Search.Numerics;

/// <summary>The normal-distribution functions agree with libm and with Optuna 3.1.0's truncated normal (values from Debian's python3-optuna 3.1.0).</summary>
public class GaussianTests
{
    [Theory]
    [InlineData(0.1, 0.1124629160182849, 0.8875370839817152)]
    [InlineData(0.9, 0.7969082124228322, 0.20309178757716786)]
    [InlineData(1.3, 0.9340079449406524, 0.06599205505934755)]
    [InlineData(2.5, 0.999593047982555, 0.0004069520174449589)]
    [InlineData(4.0, 0.9999999845827421, 1.541725790028002e-08)]
    [InlineData(-0.7, -0.6778011938374184, 1.6778011938374184)]
    public void Erf_and_erfc_match_libm(double x, double erf, double erfc)
    {
        Assert.Equal(erf, Gaussian.Erf(x), 15);
        Assert.Equal(erfc, Gaussian.Erfc(x), 1e-15 * erfc);
    }

    [Theory]
    [InlineData(-1e-20, 9.262340089798407)]
    [InlineData(-1e-8, 5.61200124426585)]
    [InlineData(-0.1, 1.3096177994584934)]
    [InlineData(-0.69, 0.003950629560279924)]
    [InlineData(-3.0, -1.6469217205277151)]
    [InlineData(-50.0, -9.674825283612357)]
    [InlineData(-600.0, -34.51199549973353)]
    [InlineData(-800.0, -39.88469483825668)]
    public void Inverse_log_cdf_matches_Optunas_bisection(double y, double x)
    {
        // Just below 0, Optuna's log Φ(x) = log(Φ(x)) keeps only about 1e-16 / |y| of relative precision, so its root is only that exact.
        double tolerance = Math.Max(1e-12, 1e-16 / Math.Abs(y) * 100) * Math.Max(1, Math.Abs(x));
        Assert.Equal(x, Gaussian.InverseLogCdf(y), tolerance);
        Assert.Equal(x, Gaussian.InverseLogCdfByBisection(y), 1e-12 * Math.Max(1, Math.Abs(x)));
    }

    [Fact]
    public void The_direct_inverse_agrees_with_the_bisection_everywhere_it_is_used()
    {
        for (double y = -699; y < 0; y += 0.37)
        {
            double direct = Gaussian.InverseLogCdf(y), bisected = Gaussian.InverseLogCdfByBisection(y);
            Assert.True(Math.Abs(direct - bisected) <= 1e-13 * Math.Max(1, Math.Abs(bisected)), $"y={y}: {direct} vs {bisected}");
        }
    }

    [Theory]
    [InlineData(0.3, -2.0, 1.5, -0.5362788233742954)]
    [InlineData(0.9, -0.5, 3.0, 1.4731065457115302)]
    [InlineData(0.01, -50.0, -0.1, -2.6044031336351976)]
    [InlineData(0.5, 0.2, 4.0, 0.8050826938716673)]
    [InlineData(0.999, -1.0, 1.0, 0.9971825966064027)]
    [InlineData(0.25, -100.0, 100.0, -0.6744897501960818)]
    public void Truncated_normal_quantiles_match_Optuna(double q, double a, double b, double expected) =>
        Assert.Equal(expected, TruncatedNormal.Ppf(q, a, b), 1e-12);

    [Theory]
    [InlineData(-3.0, 2.0, -0.024395187554887357)]
    [InlineData(-40.0, -30.0, -454.32124395634315)]
    [InlineData(5.0, 9.0, -15.064998393989118)]
    [InlineData(-0.5, 0.5, -0.9599163336956222)]
    [InlineData(-80.0, 80.0, 0.0)]
    public void Log_gauss_mass_matches_Optuna_in_both_tails(double a, double b, double expected) =>
        Assert.Equal(expected, TruncatedNormal.LogGaussMass(a, b), 1e-12 * Math.Max(1, Math.Abs(expected)));

    [Fact]
    public void Inverse_cdf_inverts_the_cdf()
    {
        foreach (var p in new[] { 1e-300, 1e-12, 0.001, 0.3, 0.5, 0.77, 0.999999 })
            Assert.Equal(p, Gaussian.Cdf(Gaussian.InverseCdf(p)), p * 1e-12);
    }

    [Fact]
    public void The_random_source_is_seeded_and_restorable()
    {
        var a = new SearchRandom(42);
        a.NextDouble();
        var b = SearchRandom.FromState(a.SaveState());
        Assert.Equal(Enumerable.Range(0, 5).Select(_ => a.NextUInt64()), Enumerable.Range(0, 5).Select(_ => b.NextUInt64()));
        Assert.Equal(new SearchRandom(7).NextDouble(), new SearchRandom(7).NextDouble());
        Assert.NotEqual(new SearchRandom(7).NextDouble(), new SearchRandom(8).NextDouble());
        var counts = new int[3];
        var r = new SearchRandom(1);
        for (int i = 0; i < 3000; i++) counts[r.NextInt(3)]++;
        Assert.All(counts, c => Assert.InRange(c, 900, 1100));
    }
}
