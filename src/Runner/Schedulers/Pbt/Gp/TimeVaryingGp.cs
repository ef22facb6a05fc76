using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Factorization;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// GP regression with the time-varying squared-exponential kernel of Bogunovic et al. ("Time-Varying Gaussian Process
/// Bandit Optimization", AISTATS 2016), written as Ray's pb2_utils.TV_SquaredExp writes it: inputs are rows
/// [time, features...] and
/// <c>k(a, b) = variance * exp(-|a[1:] - b[1:]|² / lengthscale) * (1 - epsilon)^(|a[0] - b[0]| / 2)</c>, epsilon capped at
/// 0.5, plus Gaussian noise. Hyperparameters are fitted by maximising the log marginal likelihood (as GPy's
/// <c>optimize()</c>) from variance 1, lengthscale 1, epsilon 0.1, noise 1, with exact gradients and MathNet's BFGS
/// (<see cref="Minimizers"/>) in log / logit coordinates, which keeps variance, lengthscale and noise positive and
/// epsilon in (0, 0.5). Ray's TV_SquaredExp leaves them unconstrained and its hand-written gradients do not match its kernel (the lengthscale
/// enters them squared), so GPy follows the wrong slope there; this fits the kernel as it is written.
/// </summary>
internal sealed class TimeVaryingGp
{
    private const double MaxEpsilon = 0.5;
    private const int MaxIterations = 100;
    private readonly double[][] _x;
    private readonly int _n;
    private readonly double[] _squared;
    private readonly double[] _timeDistance;
    private readonly Vector<double> _y;
    private Cholesky<double>? _l;
    private Vector<double> _alpha = Vector<double>.Build.Dense(0);

    private TimeVaryingGp(double[][] x, double[] y)
    {
        _x = x;
        _y = Vector<double>.Build.DenseOfArray(y);
        _n = y.Length;
        // The distances do not depend on the hyperparameters: computed once per data set.
        _squared = new double[_n * _n];
        _timeDistance = new double[_n * _n];
        for (int i = 0; i < _n; i++)
        {
            for (int j = 0; j < i; j++)
            {
                double d2 = 0;
                for (int c = 1; c < x[i].Length; c++) d2 += (x[i][c] - x[j][c]) * (x[i][c] - x[j][c]);
                _squared[i * _n + j] = _squared[j * _n + i] = d2;
                _timeDistance[i * _n + j] = _timeDistance[j * _n + i] = Math.Abs(x[i][0] - x[j][0]);
            }
        }
    }

    public double Variance { get; private set; } = 1;

    public double Lengthscale { get; private set; } = 1;

    public double Epsilon { get; private set; } = 0.1;

    public double NoiseVariance { get; private set; } = 1;

    public int Count => _n;

    public double LogLikelihood { get; private set; } = double.NegativeInfinity;

    /// <summary>A GP on (x, y) with hyperparameters fitted by maximum marginal likelihood.</summary>
    public static TimeVaryingGp Fit(double[][] x, double[] y)
    {
        var gp = new TimeVaryingGp(x, y);
        var start = new[] { Math.Log(gp.Variance), Math.Log(gp.Lengthscale), Logit(gp.Epsilon / MaxEpsilon), Math.Log(gp.NoiseVariance) };
        var best = Minimizers.Bfgs(gp.NegativeLogLikelihood, start, MaxIterations);
        gp.SetParameters(best);
        if (!gp.Refresh())
        {
            gp.SetParameters(start);
            if (!gp.Refresh()) throw new InvalidOperationException("PB2's GP covariance is not positive definite even with its initial hyperparameters");
        }
        return gp;
    }

    /// <summary>Fixes the lengthscale to a value (Ray clips it to [1e-5, 1] after fitting) and recomputes the posterior.</summary>
    public void FixLengthscale(double lengthscale)
    {
        double previous = Lengthscale;
        Lengthscale = lengthscale;
        if (!Refresh())
        {
            Lengthscale = previous;
            Refresh();
        }
    }

    /// <summary>Posterior mean and variance at <paramref name="x"/>, the variance including the noise (GPy's predict).</summary>
    public (double Mean, double Variance) Predict(ReadOnlySpan<double> x)
    {
        var k = CrossCovariance(x);
        return (k.DotProduct(_alpha), Variance - k.DotProduct(_l!.Solve(k)) + NoiseVariance);
    }

    /// <summary>
    /// Mean and variance as <see cref="Predict"/>, with their gradients with respect to the inputs from
    /// <paramref name="firstFree"/> on (the hyperparameters PB2 optimises; time and reward stay fixed).
    /// </summary>
    public (double Mean, double Variance) PredictWithGradient(ReadOnlySpan<double> x, int firstFree, Span<double> meanGradient, Span<double> varianceGradient)
    {
        var k = CrossCovariance(x);
        var kInvK = _l!.Solve(k);
        meanGradient.Clear();
        varianceGradient.Clear();
        for (int i = 0; i < _n; i++)
        {
            for (int j = firstFree; j < x.Length; j++)
            {
                double dk = k[i] * -2 * (x[j] - _x[i][j]) / Lengthscale;
                meanGradient[j - firstFree] += _alpha[i] * dk;
                varianceGradient[j - firstFree] -= 2 * kInvK[i] * dk;
            }
        }
        return (k.DotProduct(_alpha), Variance - k.DotProduct(kInvK) + NoiseVariance);
    }

    private Vector<double> CrossCovariance(ReadOnlySpan<double> x)
    {
        double logDecay = 0.5 * Math.Log(1 - Math.Min(Epsilon, MaxEpsilon));
        var k = Vector<double>.Build.Dense(_n);
        for (int i = 0; i < _n; i++)
        {
            var row = _x[i];
            double d2 = 0;
            for (int c = 1; c < x.Length; c++) d2 += (x[c] - row[c]) * (x[c] - row[c]);
            k[i] = Variance * Math.Exp(-d2 / Lengthscale + logDecay * Math.Abs(x[0] - row[0]));
        }
        return k;
    }

    private void SetParameters(double[] p)
    {
        Variance = Math.Exp(p[0]);
        Lengthscale = Math.Exp(p[1]);
        Epsilon = MaxEpsilon * Sigmoid(p[2]);
        NoiseVariance = Math.Max(Math.Exp(p[3]), 1e-9);
    }

    private bool Refresh()
    {
        var ky = Covariance(Variance, Lengthscale, Math.Min(Epsilon, MaxEpsilon), NoiseVariance);
        var l = Jitchol.Decompose(ky);
        if (l is null) return false;
        _l = l;
        _alpha = l.Solve(_y);
        LogLikelihood = -0.5 * _y.DotProduct(_alpha) - 0.5 * l.DeterminantLn - 0.5 * _n * Math.Log(2 * Math.PI);
        return true;
    }

    /// <summary>K + noise I (symmetric, so its flat storage reads the same by rows and by columns).</summary>
    private Matrix<double> Covariance(double variance, double lengthscale, double epsilon, double noise)
    {
        double logDecay = 0.5 * Math.Log(1 - epsilon);
        var k = new double[_n * _n];
        for (int i = 0; i < _n; i++)
        {
            for (int j = 0; j < i; j++)
            {
                int at = i * _n + j;
                k[at] = k[j * _n + i] = variance * Math.Exp(-_squared[at] / lengthscale + logDecay * _timeDistance[at]);
            }
            k[i * _n + i] = variance + noise;
        }
        return Matrix<double>.Build.Dense(_n, _n, k);
    }

    /// <summary>The hyperparameters in the optimiser's coordinates: log variance, log lengthscale, logit(epsilon / 0.5), log noise.</summary>
    internal double[] Parameters => new[] { Math.Log(Variance), Math.Log(Lengthscale), Logit(Epsilon / MaxEpsilon), Math.Log(NoiseVariance) };

    /// <summary>-log p(y | X, θ) and its gradient with respect to (log variance, log lengthscale, logit(epsilon / 0.5), log noise).</summary>
    internal (double Value, double[] Gradient) NegativeLogLikelihood(double[] p)
    {
        double variance = Math.Exp(p[0]), lengthscale = Math.Exp(p[1]);
        double sigmoid = Sigmoid(p[2]);
        double epsilon = MaxEpsilon * sigmoid;
        double noise = Math.Max(Math.Exp(p[3]), 1e-9);
        var failed = (double.PositiveInfinity, new double[4]);
        if (!double.IsFinite(variance) || !double.IsFinite(lengthscale) || !double.IsFinite(noise) || lengthscale <= 0) return failed;

        var ky = Covariance(variance, lengthscale, epsilon, noise);
        var l = Jitchol.TryDecompose(ky);
        if (l is null) return failed;
        var alpha = l.Solve(_y);
        // Both are symmetric, so their column-major storage indexes as row-major.
        var inverse = l.Solve(Matrix<double>.Build.DenseIdentity(_n)).AsColumnMajorArray();
        var kernels = ky.AsColumnMajorArray();
        double value = 0.5 * _y.DotProduct(alpha) + 0.5 * l.DeterminantLn + 0.5 * _n * Math.Log(2 * Math.PI);

        // d(-log p)/dθ = 0.5 tr((K⁻¹ - α αᵀ) dK/dθ), with dK/dlog v = K, dK/dlog l = K ∘ D²/l, dK/dε = -K ∘ T / (2 (1 - ε)).
        double dVariance = 0, dLengthscale = 0, dEpsilon = 0, dNoise = 0;
        for (int i = 0; i < _n; i++)
        {
            for (int j = 0; j < _n; j++)
            {
                int at = i * _n + j;
                double w = inverse[at] - alpha[i] * alpha[j];
                double kernel = i == j ? variance : kernels[at];
                dVariance += w * kernel;
                dLengthscale += w * kernel * _squared[at] / lengthscale;
                dEpsilon += w * kernel * -0.5 * _timeDistance[at] / (1 - epsilon);
            }
            // Below the 1e-9 floor the noise no longer moves with p[3]: a zero slope there lets the minimiser see it is done.
            if (Math.Exp(p[3]) > 1e-9) dNoise += (inverse[i * _n + i] - alpha[i] * alpha[i]) * noise;
        }
        double dEpsilonDu = epsilon * (1 - sigmoid);
        return (value, new[] { 0.5 * dVariance, 0.5 * dLengthscale, 0.5 * dEpsilon * dEpsilonDu, 0.5 * dNoise });
    }

    private static double Sigmoid(double u) => 1 / (1 + Math.Exp(-u));

    private static double Logit(double p) => Math.Log(p / (1 - p));
}
