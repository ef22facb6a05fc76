using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TorchTrials.Runner.Search;

/// <summary>How a coordinate of the unit cube is modelled (Optuna 3.1.0's three distribution classes, in unit space).</summary>
internal enum KernelKind
{
    /// <summary>Truncated Gaussians on [0, 1] (FloatDistribution, IntDistribution(log=True), and here normal domains).</summary>
    Continuous,

    /// <summary>Discrete truncated Gaussians on n equal cells: the mass of a value's cell (FloatDistribution(step), IntDistribution).</summary>
    Discrete,

    /// <summary>Optuna's categorical kernel.</summary>
    Categorical,
}

/// <summary>
/// Bandwidths and log masses computed for the observations of a univariate estimator last time (aligned with its input,
/// NaN when unknown): a kernel whose centre and width did not change keeps its mass, which only depends on them.
/// </summary>
internal sealed class MassCache(double[] sigma, double[] logMass)
{
    public double[] Sigma { get; } = sigma;

    public double[] LogMass { get; } = logMass;
}

/// <summary>One coordinate of an estimator: kind, cell count (discrete) or category count (categorical).</summary>
internal readonly record struct KernelDimension(KernelKind Kind, long Cells);

/// <summary>
/// Optuna 3.1.0's <c>_ParzenEstimator</c> (<c>optuna/samplers/_tpe/parzen_estimator.py</c>) over coordinates of the unit
/// cube, where every numeric coordinate has low = 0 and high = 1 (the unit mapping is affine in the space Optuna
/// models, so bandwidths, masses and likelihood ratios are the same). A mixture of one kernel per observation plus
/// an optional prior (centre 0.5, width 1), weighted by the given weights and prior_weight, normalised.
/// Univariate bandwidths: the larger distance to a neighbour among the sorted centres (prior included) and the range
/// ends, the outermost ones looking inwards only unless consider_endpoints, clipped to [1 / min(100, 1 + K), 1]
/// (magic clip) or [1e-12, 1]. Multivariate: Scott's rule, 0.2 · max(n, 1)^(-1 / (d + 4)), clipped the same way.
/// Categorical rows: prior_weight / (n + 1) on every category plus 1 on the observed one, normalised; the prior row is uniform.
/// <see cref="Build"/> follows Optuna's steps: weights, categorical rows, centres, bandwidths (compute_sigmas), kernel masses.
/// <para>
/// The density loops keep explicit Vector512 and Vector256 paths: the same work through TensorPrimitives (one pass over
/// the components per operation, no skipping of negligible blocks) took 1.30x as long, 53.9 against 41.6 µs per point at
/// 2001 components (benchmark parzen-kernels, benchmarks/RESULTS.md, 2026-12-02).
/// </para>
/// </summary>
internal sealed class ParzenEstimator
{
    private const double Eps = 1e-12;
    private const double Negligible = 60;
    private static readonly double LogSqrt2Pi = 0.5 * Math.Log(2 * Math.PI);

    private readonly KernelDimension[] _dims;
    private readonly double[] _weights;
    private readonly double[] _logWeights;
    private readonly double[][] _mu;
    private readonly double[][] _sigma;
    private readonly double[][] _invSigma;
    private readonly double[][] _logMass;
    private readonly double[][] _continuousCoef;
    private double[]? _weightedCoef;
    private double[]? _logSigma;
    private readonly int[][] _category;
    private readonly double[] _categoryValue;
    private readonly bool _scaleDensity;

    private ParzenEstimator(KernelDimension[] dims, int components, bool scaleDensity)
    {
        _dims = dims;
        Components = components;
        _weights = new double[components];
        _logWeights = new double[components];
        _mu = new double[dims.Length][];
        _sigma = new double[dims.Length][];
        _invSigma = new double[dims.Length][];
        _logMass = new double[dims.Length][];
        _continuousCoef = new double[dims.Length][];
        _category = new int[dims.Length][];
        _categoryValue = new double[dims.Length];
        _scaleDensity = scaleDensity;
    }

    /// <summary>Kernels in the mixture, prior included.</summary>
    public int Components { get; }

    /// <summary>Normalised weights, in component order.</summary>
    public ReadOnlySpan<double> Weights => _weights;

    public ReadOnlySpan<double> Mus(int dim) => _mu[dim];

    public ReadOnlySpan<double> Sigmas(int dim) => _sigma[dim];

    /// <summary>
    /// An estimator over the columns <paramref name="values"/> (one array per dimension, one entry per observation, in the
    /// order of <paramref name="weights"/>). With <paramref name="sortedByFirstDimension"/> the observations are already in
    /// ascending order of the only dimension (ties oldest first), so univariate bandwidths need no sort.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static ParzenEstimator Build(
        KernelDimension[] dims, double[][] values, ReadOnlySpan<double> weights, TpeOptions options, bool sortedByFirstDimension = false,
        MassCache? cache = null, ReadOnlySpan<double> logWeights = default)
    {
        int n = weights.Length;
        bool considerPrior = options.ConsiderPrior || n == 0;
        var pe = new ParzenEstimator(dims, considerPrior ? n + 1 : n, options.ScaleKernelDensity);
        int priorAt = considerPrior ? PriorPosition(dims, values, n, sortedByFirstDimension) : -1;
        pe.CalculateWeights(weights, logWeights, priorAt, options.PriorWeight);
        for (int d = 0; d < dims.Length; d++)
        {
            if (dims[d].Kind == KernelKind.Categorical)
            {
                pe.CalculateCategorical(d, values[d], n, priorAt, options.PriorWeight);
                continue;
            }
            var mu = Centres(values[d], pe.Components, priorAt);
            var sigma = ComputeSigmas(mu, n, dims.Length, priorAt, options, sortedByFirstDimension);
            pe.CalculateKernelMasses(d, mu, sigma, priorAt, d == 0 ? cache : null, options.ScaleKernelDensity);
        }
        return pe;
    }

    /// <summary>
    /// The prior's index among the components: last, or with a sorted univariate input where numpy's stable argsort
    /// would put it, after the centres &lt;= 0.5.
    /// </summary>
    private static int PriorPosition(KernelDimension[] dims, double[][] values, int n, bool sortedByFirstDimension)
    {
        if (!sortedByFirstDimension || dims.Length != 1 || dims[0].Kind == KernelKind.Categorical) return n;
        var col = values[0];
        int lo = 0, hi = n;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (col[mid] <= 0.5) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// <summary>Optuna's weights: the observations' weights and prior_weight at the prior, normalised; their logs too.</summary>
    private void CalculateWeights(ReadOnlySpan<double> weights, ReadOnlySpan<double> logWeights, int priorAt, double priorWeight)
    {
        int n = weights.Length;
        double sum = 0;
        for (int i = 0, c = 0; c < Components; c++)
        {
            double w = c == priorAt ? priorWeight : weights[i++];
            _weights[c] = w;
            sum += w;
        }
        double logSum = Math.Log(sum);
        for (int c = 0, i = 0; c < Components; c++)
        {
            bool isPrior = c == priorAt;
            // With the observations' log weights given, log(w / sum) is log w - log sum: one log per observation per suggestion, not per dimension.
            _logWeights[c] = logWeights.Length == n && !isPrior ? logWeights[i] - logSum : Math.Log(_weights[c] / sum);
            _weights[c] /= sum;
            if (!isPrior) i++;
        }
    }

    /// <summary>
    /// Optuna's categorical rows, kept implicit: each component's observed category (-1 for the uniform prior row) and
    /// the value prior_weight / (n + 1) (or / n without a prior) that every category of a row gets before normalising.
    /// </summary>
    private void CalculateCategorical(int d, double[] column, int n, int priorAt, double priorWeight)
    {
        var cat = new int[Components];
        for (int i = 0, c = 0; c < Components; c++) cat[c] = c == priorAt ? -1 : (int)column[i++];
        _category[d] = cat;
        _categoryValue[d] = priorAt >= 0 ? priorWeight / (n + 1) : priorWeight / n;
    }

    /// <summary>The kernel centres: the observations in order, 0.5 at the prior.</summary>
    private static double[] Centres(double[] column, int components, int priorAt)
    {
        var mu = new double[components];
        for (int i = 0, c = 0; c < components; c++) mu[c] = c == priorAt ? 0.5 : column[i++];
        return mu;
    }

    /// <summary>
    /// Optuna's compute_sigmas: Scott's rule when multivariate, else the neighbour distances of the sorted centres; then
    /// the magic clip (or 1e-12) up to 1, and width 1 for the prior.
    /// </summary>
    private static double[] ComputeSigmas(double[] mu, int n, int dimensions, int priorAt, TpeOptions options, bool sorted)
    {
        int k = mu.Length;
        var sigma = new double[k];
        if (options.Multivariate)
        {
            double sigma0 = 0.2 * Math.Pow(Math.Max(n, 1), -1.0 / (dimensions + 4));
            Array.Fill(sigma, sigma0);
        }
        else if (sorted) NeighbourSigmas(mu, sigma, options.ConsiderEndpoints);
        else
        {
            var order = Enumerable.Range(0, k).ToArray();
            Array.Sort(order, (a, b) => mu[a] != mu[b] ? mu[a].CompareTo(mu[b]) : a.CompareTo(b));
            var sortedMu = new double[k];
            var sortedSigma = new double[k];
            for (int c = 0; c < k; c++) sortedMu[c] = mu[order[c]];
            NeighbourSigmas(sortedMu, sortedSigma, options.ConsiderEndpoints);
            for (int c = 0; c < k; c++) sigma[order[c]] = sortedSigma[c];
        }
        double minSigma = options.ConsiderMagicClip ? 1.0 / Math.Min(100.0, 1.0 + k) : Eps;
        for (int c = 0; c < k; c++) sigma[c] = Math.Clamp(sigma[c], minSigma, 1.0);
        if (priorAt >= 0) sigma[priorAt] = 1.0;
        return sigma;
    }

    /// <summary>
    /// Each truncated Gaussian's log mass on [0, 1] (from <paramref name="cache"/> where its width is unchanged) and the
    /// constant of its log density: -log mass - log sqrt(2 pi), minus log sigma when densities are scaled.
    /// </summary>
    private void CalculateKernelMasses(int d, double[] mu, double[] sigma, int priorAt, MassCache? cache, bool scaleDensity)
    {
        int k = mu.Length;
        var inv = new double[k];
        var logMass = new double[k];
        var coef = new double[k];
        for (int c = 0, i = 0; c < k; c++)
        {
            inv[c] = 1.0 / sigma[c];
            bool isPrior = c == priorAt;
            if (cache is not null && !isPrior && cache.Sigma[i] == sigma[c]) logMass[c] = cache.LogMass[i];
            else
            {
                logMass[c] = TruncatedNormal.LogGaussMass((0 - mu[c]) / sigma[c], (1 - mu[c]) / sigma[c]);
                if (cache is not null && !isPrior)
                {
                    cache.Sigma[i] = sigma[c];
                    cache.LogMass[i] = logMass[c];
                }
            }
            if (!isPrior) i++;
            coef[c] = -logMass[c] - LogSqrt2Pi - (scaleDensity ? Math.Log(sigma[c]) : 0);
        }
        _mu[d] = mu;
        _sigma[d] = sigma;
        _invSigma[d] = inv;
        _logMass[d] = logMass;
        _continuousCoef[d] = coef;
    }

    /// <summary>Optuna's univariate bandwidths on sorted centres, endpoints 0 and 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NeighbourSigmas(ReadOnlySpan<double> sortedMu, Span<double> sigma, bool considerEndpoints)
    {
        int k = sortedMu.Length;
        for (int c = 0; c < k; c++)
        {
            double left = c == 0 ? 0.0 : sortedMu[c - 1];
            double right = c == k - 1 ? 1.0 : sortedMu[c + 1];
            sigma[c] = Math.Max(sortedMu[c] - left, right - sortedMu[c]);
        }
        if (!considerEndpoints && k >= 2)
        {
            sigma[0] = sortedMu[1] - sortedMu[0];
            sigma[k - 1] = sortedMu[k - 1] - sortedMu[k - 2];
        }
    }

    /// <summary>
    /// Draws <paramref name="size"/> points (one column per dimension, raw: not yet snapped to the domains), as
    /// <c>_ParzenEstimator.sample</c>: one component per point from the weights (numpy's choice), then per dimension a
    /// categorical draw from that component's row or a truncated-normal quantile of a uniform draw.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public double[][] Sample(SearchRandom random, int size)
    {
        var cdf = new double[Components];
        double acc = 0;
        for (int c = 0; c < Components; c++) cdf[c] = acc += _weights[c];
        for (int c = 0; c < Components; c++) cdf[c] /= acc;
        var active = new int[size];
        for (int s = 0; s < size; s++)
        {
            double u = random.NextDouble();
            int lo = 0, hi = Components;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (cdf[mid] <= u) lo = mid + 1;
                else hi = mid;
            }
            active[s] = Math.Min(lo, Components - 1);
        }
        var samples = new double[_dims.Length][];
        for (int d = 0; d < _dims.Length; d++)
        {
            var column = new double[size];
            if (_dims[d].Kind == KernelKind.Categorical)
            {
                int n = (int)_dims[d].Cells;
                for (int s = 0; s < size; s++)
                {
                    double rnd = random.NextDouble();
                    int count = 0;
                    double cum = 0;
                    for (int j = 0; j < n; j++)
                    {
                        cum += CategoryProbability(d, active[s], j);
                        if (cum < rnd) count++;
                    }
                    column[s] = Math.Min(count, n - 1);
                }
            }
            else
            {
                for (int s = 0; s < size; s++)
                {
                    int c = active[s];
                    double mu = _mu[d][c], sigma = _sigma[d][c];
                    column[s] = TruncatedNormal.Ppf(random.NextDouble(), (0 - mu) / sigma, (1 - mu) / sigma) * sigma + mu;
                }
            }
            samples[d] = column;
        }
        return samples;
    }

    /// <summary>Row <paramref name="component"/>, category <paramref name="category"/> of the categorical weights of dimension <paramref name="dim"/>.</summary>
    private double CategoryProbability(int dim, int component, int category)
    {
        int observed = _category[dim][component];
        int n = (int)_dims[dim].Cells;
        if (observed < 0) return 1.0 / n;
        double v = _categoryValue[dim];
        return (v + (observed == category ? 1 : 0)) / (n * v + 1);
    }

    /// <summary>
    /// log of the mixture density at each point (points snapped to the domains; categorical coordinates hold category
    /// indices), as <c>_ParzenEstimator.log_pdf</c>: per component the sum over dimensions of the kernel's log density
    /// (continuous), log mass of the value's cell (discrete) or log row probability (categorical), plus the log weight,
    /// then log-sum-exp over components.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public double[] LogPdf(double[][] points)
    {
        int size = points[0].Length;
        var result = new double[size];
        if (_dims.Length == 1 && _dims[0].Kind == KernelKind.Categorical)
        {
            int n = (int)_dims[0].Cells;
            var p = new double[n];
            for (int c = 0; c < Components; c++)
                for (int j = 0; j < n; j++) p[j] += CategoryProbability(0, c, j) * _weights[c];
            for (int s = 0; s < size; s++) result[s] = Math.Log(p[(int)points[0][s]]);
            return result;
        }
        var acc = new double[Components];
        if (_dims.Length == 1 && _dims[0].Kind == KernelKind.Continuous)
        {
            // One continuous dimension (every univariate float estimator): log weight and kernel constant folded, two passes per point.
            if (_weightedCoef is null)
            {
                _weightedCoef = new double[Components];
                for (int c = 0; c < Components; c++) _weightedCoef[c] = _logWeights[c] + _continuousCoef[0][c];
            }
            for (int s = 0; s < size; s++)
            {
                double max = GaussianTermsAndMax(acc, points[0][s], _mu[0], _invSigma[0], _weightedCoef);
                result[s] = LogSumExp(acc, max);
            }
            return result;
        }
        if (_dims.Length == 1 && _dims[0].Kind == KernelKind.Discrete)
        {
            var byValue = new Dictionary<double, double>();
            for (int s = 0; s < size; s++)
            {
                double x = points[0][s];
                if (!byValue.TryGetValue(x, out var value))
                {
                    value = UnivariateDiscreteLogPdf(x, acc);
                    byValue[x] = value;
                }
                result[s] = value;
            }
            return result;
        }
        var discreteCache = new Dictionary<(int Dim, double X), double[]>();
        for (int s = 0; s < size; s++)
        {
            _logWeights.CopyTo(acc, 0);
            for (int d = 0; d < _dims.Length; d++)
            {
                double x = points[d][s];
                switch (_dims[d].Kind)
                {
                    case KernelKind.Continuous:
                        AddGaussianTerms(acc, x, _mu[d], _invSigma[d], _continuousCoef[d]);
                        break;
                    case KernelKind.Discrete:
                        if (!discreteCache.TryGetValue((d, x), out var terms))
                        {
                            terms = DiscreteTerms(d, x);
                            discreteCache[(d, x)] = terms;
                        }
                        for (int c = 0; c < Components; c++) acc[c] += terms[c];
                        break;
                    default:
                        int category = (int)x;
                        for (int c = 0; c < Components; c++) acc[c] += Math.Log(CategoryProbability(d, c, category));
                        break;
                }
            }
            result[s] = LogSumExp(acc, Max(acc));
        }
        return result;
    }

    /// <summary>
    /// The mixture's log probability of x's cell for a single discrete dimension. The cell's mass under each kernel is
    /// bounded first without erf (cell width times the kernel's largest density in the cell, and at most 1); kernels whose
    /// bound lies more than <see cref="Negligible"/> below an exactly computed term cannot change the sum (the same rule
    /// the log-sum-exp applies), so only the others get the exact mass.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private double UnivariateDiscreteLogPdf(double x, double[] acc)
    {
        double half = 0.5 / _dims[0].Cells;
        double upper = Math.Min(x + half, 1.0), lower = Math.Max(x - half, 0.0);
        double logWidth = Math.Log(upper - lower);
        var mu = _mu[0];
        var sigma = _sigma[0];
        var logMass = _logMass[0];
        if (_logSigma is null)
        {
            _logSigma = new double[Components];
            for (int c = 0; c < Components; c++) _logSigma[c] = Math.Log(sigma[c]);
        }
        var logSigma = _logSigma;
        int best = 0;
        double bestBound = double.NegativeInfinity;
        for (int c = 0; c < Components; c++)
        {
            double gap = Math.Max(0, Math.Max(lower - mu[c], mu[c] - upper)) / sigma[c];
            double bound = _logWeights[c] - logMass[c] + Math.Min(0, logWidth - logSigma[c] - LogSqrt2Pi) - 0.5 * gap * gap;
            acc[c] = bound;
            if (bound > bestBound)
            {
                bestBound = bound;
                best = c;
            }
        }
        double exactBest = _logWeights[best] + CellTerm(best, lower, upper);
        double cut = exactBest - Negligible;
        double max = double.NegativeInfinity;
        for (int c = 0; c < Components; c++)
        {
            acc[c] = acc[c] < cut ? double.NegativeInfinity : c == best ? exactBest : _logWeights[c] + CellTerm(c, lower, upper);
            max = Math.Max(max, acc[c]);
        }
        return LogSumExp(acc, max);
    }

    private double CellTerm(int c, double lower, double upper)
    {
        double mu = _mu[0][c], sigma = _sigma[0][c];
        return TruncatedNormal.LogGaussMass((lower - mu) / sigma, (upper - mu) / sigma) - _logMass[0][c];
    }

    /// <summary>log P(value's cell) - log P([0, 1]) per component: the cell is [x - q/2, x + q/2] clipped to [0, 1], q = 1 / cells.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private double[] DiscreteTerms(int d, double x)
    {
        double half = 0.5 / _dims[d].Cells;
        double upper = Math.Min(x + half, 1.0), lower = Math.Max(x - half, 0.0);
        var terms = new double[Components];
        var mu = _mu[d];
        var sigma = _sigma[d];
        for (int c = 0; c < Components; c++)
            terms[c] = TruncatedNormal.LogGaussMass((lower - mu[c]) / sigma[c], (upper - mu[c]) / sigma[c]) - _logMass[d][c];
        return terms;
    }

    /// <summary>acc[c] += coef[c] - ((x - mu[c]) / sigma[c])^2 / 2, eight or four components at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AddGaussianTerms(double[] acc, double x, double[] mu, double[] invSigma, double[] coef)
    {
        int n = acc.Length, i = 0;
        ref double a = ref MemoryMarshal.GetArrayDataReference(acc);
        ref double m = ref MemoryMarshal.GetArrayDataReference(mu);
        ref double inv = ref MemoryMarshal.GetArrayDataReference(invSigma);
        ref double cf = ref MemoryMarshal.GetArrayDataReference(coef);
        if (Vector512.IsHardwareAccelerated)
        {
            var vx = Vector512.Create(x);
            var half = Vector512.Create(0.5);
            for (; i <= n - Vector512<double>.Count; i += Vector512<double>.Count)
            {
                var z = (vx - Vector512.LoadUnsafe(ref m, (nuint)i)) * Vector512.LoadUnsafe(ref inv, (nuint)i);
                (Vector512.LoadUnsafe(ref a, (nuint)i) + Vector512.LoadUnsafe(ref cf, (nuint)i) - half * z * z).StoreUnsafe(ref a, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var vx = Vector256.Create(x);
            var half = Vector256.Create(0.5);
            for (; i <= n - Vector256<double>.Count; i += Vector256<double>.Count)
            {
                var z = (vx - Vector256.LoadUnsafe(ref m, (nuint)i)) * Vector256.LoadUnsafe(ref inv, (nuint)i);
                (Vector256.LoadUnsafe(ref a, (nuint)i) + Vector256.LoadUnsafe(ref cf, (nuint)i) - half * z * z).StoreUnsafe(ref a, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            double z = (x - Unsafe.Add(ref m, i)) * Unsafe.Add(ref inv, i);
            Unsafe.Add(ref a, i) += Unsafe.Add(ref cf, i) - 0.5 * z * z;
        }
    }

    /// <summary>acc[c] = coef[c] - ((x - mu[c]) / sigma[c])^2 / 2 for every component; returns the largest.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static double GaussianTermsAndMax(double[] acc, double x, double[] mu, double[] invSigma, double[] coef)
    {
        int n = acc.Length, i = 0;
        double max = double.NegativeInfinity;
        ref double a = ref MemoryMarshal.GetArrayDataReference(acc);
        ref double m = ref MemoryMarshal.GetArrayDataReference(mu);
        ref double inv = ref MemoryMarshal.GetArrayDataReference(invSigma);
        ref double cf = ref MemoryMarshal.GetArrayDataReference(coef);
        if (Vector512.IsHardwareAccelerated && n >= Vector512<double>.Count)
        {
            var vx = Vector512.Create(x);
            var half = Vector512.Create(0.5);
            var vmax = Vector512.Create(double.NegativeInfinity);
            for (; i <= n - Vector512<double>.Count; i += Vector512<double>.Count)
            {
                var z = (vx - Vector512.LoadUnsafe(ref m, (nuint)i)) * Vector512.LoadUnsafe(ref inv, (nuint)i);
                var t = Vector512.LoadUnsafe(ref cf, (nuint)i) - half * z * z;
                t.StoreUnsafe(ref a, (nuint)i);
                vmax = Vector512.Max(vmax, t);
            }
            for (int j = 0; j < Vector512<double>.Count; j++) max = Math.Max(max, vmax[j]);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<double>.Count)
        {
            var vx = Vector256.Create(x);
            var half = Vector256.Create(0.5);
            var vmax = Vector256.Create(double.NegativeInfinity);
            for (; i <= n - Vector256<double>.Count; i += Vector256<double>.Count)
            {
                var z = (vx - Vector256.LoadUnsafe(ref m, (nuint)i)) * Vector256.LoadUnsafe(ref inv, (nuint)i);
                var t = Vector256.LoadUnsafe(ref cf, (nuint)i) - half * z * z;
                t.StoreUnsafe(ref a, (nuint)i);
                vmax = Vector256.Max(vmax, t);
            }
            for (int j = 0; j < Vector256<double>.Count; j++) max = Math.Max(max, vmax[j]);
        }
        for (; i < n; i++)
        {
            double z = (x - Unsafe.Add(ref m, i)) * Unsafe.Add(ref inv, i);
            double t = Unsafe.Add(ref cf, i) - 0.5 * z * z;
            Unsafe.Add(ref a, i) = t;
            max = Math.Max(max, t);
        }
        return max;
    }

    private static double Max(double[] values)
    {
        double max = double.NegativeInfinity;
        foreach (var v in values) max = Math.Max(max, v);
        return max;
    }

    /// <summary>log Σ exp(v) given the maximum, taken out first as numpy's version in <c>log_pdf</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static double LogSumExp(double[] values, double max)
    {
        if (double.IsNegativeInfinity(max) || double.IsNaN(max)) return max;
        int n = values.Length, i = 0;
        ref double v = ref MemoryMarshal.GetArrayDataReference(values);
        double sum = 0;
        // Blocks whose every term is below max - 60 are skipped: each adds under 1e-26 of a sum that is at least 1,
        // invisible in double precision for any realistic number of components.
        if (Vector512.IsHardwareAccelerated && n >= Vector512<double>.Count)
        {
            var vm = Vector512.Create(max);
            var cut = Vector512.Create(-Negligible);
            var vsum = Vector512<double>.Zero;
            for (; i <= n - Vector512<double>.Count; i += Vector512<double>.Count)
            {
                var d = Vector512.LoadUnsafe(ref v, (nuint)i) - vm;
                if (Vector512.GreaterThanOrEqualAny(d, cut)) vsum += Vector512.Exp(Vector512.Max(d, cut));
            }
            sum = Vector512.Sum(vsum);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<double>.Count)
        {
            var vm = Vector256.Create(max);
            var cut = Vector256.Create(-Negligible);
            var vsum = Vector256<double>.Zero;
            for (; i <= n - Vector256<double>.Count; i += Vector256<double>.Count)
            {
                var d = Vector256.LoadUnsafe(ref v, (nuint)i) - vm;
                if (Vector256.GreaterThanOrEqualAny(d, cut)) vsum += Vector256.Exp(Vector256.Max(d, cut));
            }
            sum = Vector256.Sum(vsum);
        }
        for (; i < n; i++)
        {
            double d = Unsafe.Add(ref v, i) - max;
            if (d >= -Negligible) sum += Math.Exp(d);
        }
        return Math.Log(sum) + max;
    }
}
