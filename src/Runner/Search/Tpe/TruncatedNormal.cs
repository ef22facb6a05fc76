using System.Runtime.CompilerServices;

namespace TorchTrials.Runner.Search;

/// <summary>
/// The truncated normal of Optuna 3.1.0's <c>samplers/_tpe/_truncnorm.py</c> (itself SciPy's): log mass of an interval,
/// the quantile function used for sampling, and the log density as Optuna 3.1.0 computes it.
/// </summary>
internal static class TruncatedNormal
{
    private static readonly double Sqrt2 = Math.Sqrt(2);

    /// <summary>Φ(a) as Optuna's vectorised <c>_ndtr</c>: 0.5 + 0.5 erf(a / √2).</summary>
    private static double Ndtr(double a) => 0.5 + 0.5 * Gaussian.Erf(a / Sqrt2);

    private static double LogDiff(double logP, double logQ) => logP + Gaussian.Log1P(-Math.Exp(logQ - logP));

    /// <summary>log(Φ(b) - Φ(a)), working in the left tail for accuracy as <c>_log_gauss_mass</c> does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double LogGaussMass(double a, double b)
    {
        if (b <= 0) return LogDiff(Gaussian.LogCdf(b), Gaussian.LogCdf(a));
        if (a > 0) return LogDiff(Gaussian.LogCdf(-a), Gaussian.LogCdf(-b));
        return Gaussian.Log1P(-Ndtr(a) - Ndtr(-b));
    }

    /// <summary>The <paramref name="q"/>-quantile of the standard normal truncated to [a, b] (<c>ppf</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double Ppf(double q, double a, double b)
    {
        if (a == b) return double.NaN;
        if (q == 0) return a;
        if (q == 1) return b;
        if (a < 0)
        {
            double logPhi = Gaussian.LogAddExp(Gaussian.LogCdf(a), Math.Log(q) + LogGaussMass(a, b));
            return Gaussian.InverseLogCdf(logPhi);
        }
        double logPhiRight = Gaussian.LogAddExp(Gaussian.LogCdf(-b), Gaussian.Log1P(-q) + LogGaussMass(a, b));
        return -Gaussian.InverseLogCdf(logPhiRight);
    }

    /// <summary>
    /// Optuna 3.1.0's <c>logpdf(x, a, b, loc, scale)</c>: log φ((x - loc) / scale) - log mass(a, b), -∞ outside [a, b].
    /// Like Optuna 3.1.0 it does not subtract log(scale); later Optuna versions do.
    /// </summary>
    public static double LogPdf(double x, double a, double b, double loc, double scale)
    {
        double z = (x - loc) / scale;
        if (a == b) return double.NaN;
        if (z < a || z > b) return double.NegativeInfinity;
        return Gaussian.LogPdf(z) - LogGaussMass(a, b);
    }
}
