namespace TorchTrials.Runner.Schedulers;

/// <summary>One PB2 observation: a trial's training time, hyperparameters and signed reward at a perturbation step.</summary>
internal sealed record Pb2Row(string Trial, double Time, double[] Hyperparameters, double Reward);

/// <summary>
/// Ray's pb2.explore / select_config and pb2_utils (normalize, standardize, UCB, optimize_acq, select_length), over
/// <see cref="TimeVaryingGp"/>.
/// </summary>
internal static class Pb2Selection
{
    private const int MaxRows = 1000;
    private const int MinSelectLength = 200;
    private const int MaxAcquisitionIterations = 200;

    /// <summary>
    /// The GP's training set: for each row, the reward change since the previous row of the same trial with the same
    /// hyperparameters (in time order), divided by the time it took; X is [time, reward before, hyperparameters...].
    /// Only changes over a positive time count, and only the last 1000 are kept.
    /// </summary>
    public static List<(Pb2Row Row, double RewardBefore, double Change)> Differences(IReadOnlyList<Pb2Row> data)
    {
        var sorted = data.OrderBy(r => r.Time).ToList();
        var previous = new Dictionary<string, Pb2Row>(StringComparer.Ordinal);
        var rows = new List<(Pb2Row, double, double)>();
        foreach (var row in sorted)
        {
            string group = row.Trial + "|" + string.Join("|", row.Hyperparameters.Select(h => h.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
            if (previous.TryGetValue(group, out var before))
            {
                double y = row.Reward - before.Reward;
                double dt = row.Time - before.Time;
                if (dt > 0 && !double.IsNaN(y)) rows.Add((row, row.Reward - y, y / dt));
            }
            previous[group] = row;
        }
        return rows.Count > MaxRows ? rows.GetRange(rows.Count - MaxRows, MaxRows) : rows;
    }

    /// <summary>
    /// Ray's select_config: keep the last select_length rows, normalise X (time and reward by their range, hyperparameters
    /// by their bounds) and standardise y (clipped to ±2), fit the GP, clip its lengthscale to [1e-5, 1], add the points
    /// chosen earlier in this round with y = 0 to a second GP for the variance, and maximise UCB over the box.
    /// Returns hyperparameters in their own units.
    /// </summary>
    public static double[] SelectConfig(
        IReadOnlyList<double[]> xRaw, IReadOnlyList<double> yRaw, IReadOnlyList<double[]>? current, double[] newPoint,
        IReadOnlyList<(double Low, double High)> bounds, Random random)
    {
        int length = SelectLength(xRaw, yRaw, bounds);
        var xs = xRaw.Skip(xRaw.Count - length).ToArray();
        var ys = yRaw.Skip(yRaw.Count - length).ToArray();
        var (x, y, fixedPoint) = Normalise(xs, ys, newPoint, bounds);

        var m = TimeVaryingGp.Fit(x, y);
        m.FixLengthscale(Math.Clamp(m.Lengthscale, 1e-5, 1));
        var m1 = m;
        if (current is { Count: > 0 })
        {
            var extraX = current.Select(c => fixedPoint.Concat(c.Select((v, i) => Normalize(v, bounds[i].Low, bounds[i].High))).ToArray());
            m1 = TimeVaryingGp.Fit(x.Concat(extraX).ToArray(), y.Concat(current.Select(_ => 0.0)).ToArray());
        }

        var best = OptimizeAcquisition(m, m1, fixedPoint, bounds.Count, random);
        return best.Select((v, i) => v * (bounds[i].High - bounds[i].Low) + bounds[i].Low).ToArray();
    }

    /// <summary>
    /// GP-UCB as the PB2 paper writes it: mean under the fitted GP plus sqrt(beta_t) times the standard deviation under
    /// the GP that also holds the points chosen earlier this round, with PB2's schedule beta_t = 0.2 + max(0, log(0.4 t)),
    /// t the number of observations (the constants of Ray's pb2_utils.UCB). Ray's UCB weighs the posterior variance
    /// instead of the standard deviation; on the tests' toy the standard deviation did better (mean best score 61.0 against
    /// 55.3 over six seeds), and it is the published rule. Returns the value and fills its gradient in x.
    /// </summary>
    public static double Ucb(TimeVaryingGp m, TimeVaryingGp m1, double[] fixedPoint, ReadOnlySpan<double> x, Span<double> gradient)
    {
        double kappa = Math.Sqrt(Beta(m.Count));
        var input = fixedPoint.Concat(x.ToArray()).ToArray();
        int d = x.Length;
        Span<double> meanGradient = stackalloc double[d];
        Span<double> unused = stackalloc double[d];
        Span<double> varianceGradient = stackalloc double[d];
        var (mean, _) = m.PredictWithGradient(input, fixedPoint.Length, meanGradient, unused);
        var (_, variance) = m1.PredictWithGradient(input, fixedPoint.Length, unused, varianceGradient);
        double sd = Math.Sqrt(Math.Max(variance, 1e-12));
        for (int i = 0; i < d; i++) gradient[i] = meanGradient[i] + kappa * varianceGradient[i] / (2 * sd);
        return mean + kappa * sd;
    }

    public static double Beta(int observations) => 0.2 + Math.Max(0, Math.Log(0.4 * observations));

    /// <summary>
    /// Ray's optimize_acq: 10 random starts in the unit box, each improved by a bounded quasi-Newton minimiser of -UCB
    /// (MathNet's BFGS-B, see <see cref="Minimizers"/>; scipy's L-BFGS-B in Ray), at most 200 iterations, keeping the
    /// best. The gradient is the GP's exact one, where Ray lets scipy take finite differences.
    /// </summary>
    public static double[] OptimizeAcquisition(TimeVaryingGp m, TimeVaryingGp m1, double[] fixedPoint, int dimensions, Random random)
    {
        double[] best = Array.Empty<double>();
        double bestValue = double.NegativeInfinity;
        var gradient = new double[dimensions];
        for (int start = 0; start < 10; start++)
        {
            var x0 = Enumerable.Range(0, dimensions).Select(_ => random.NextDouble()).ToArray();
            var x = Minimizers.BfgsB(point =>
            {
                double value = Ucb(m, m1, fixedPoint, point, gradient);
                return (-value, gradient.Select(g => -g).ToArray());
            }, x0, 0, 1, MaxAcquisitionIterations);
            double found = Ucb(m, m1, fixedPoint, x, gradient);
            if (found > bestValue)
            {
                bestValue = found;
                best = x;
            }
        }
        return best.Select(v => Math.Clamp(v, 0, 1)).ToArray();
    }

    /// <summary>
    /// Ray's select_length: below 200 rows, all of them; otherwise the window (200, 210, ...) whose fitted GP has the
    /// highest log likelihood.
    /// </summary>
    public static int SelectLength(IReadOnlyList<double[]> xRaw, IReadOnlyList<double> yRaw, IReadOnlyList<(double Low, double High)> bounds)
    {
        if (xRaw.Count < MinSelectLength) return xRaw.Count;
        int bestLength = MinSelectLength;
        double bestScore = double.NegativeInfinity;
        for (int length = MinSelectLength; length <= xRaw.Count; length += 10)
        {
            var xs = xRaw.Skip(xRaw.Count - length).ToArray();
            var ys = yRaw.Skip(yRaw.Count - length).ToArray();
            var (x, y, _) = Normalise(xs, ys, xs[^1].Take(2).ToArray(), bounds);
            double score = TimeVaryingGp.Fit(x, y).LogLikelihood;
            if (score > bestScore)
            {
                bestScore = score;
                bestLength = length;
            }
        }
        return bestLength;
    }

    /// <summary>pb2_utils.normalize with the limits select_config builds, standardize, and the new point normalised by the old points.</summary>
    private static (double[][] X, double[] Y, double[] Fixed) Normalise(double[][] xs, double[] ys, double[] newPoint, IReadOnlyList<(double Low, double High)> bounds)
    {
        const int numFixed = 2;
        var low = new double[numFixed + bounds.Count];
        var high = new double[numFixed + bounds.Count];
        for (int c = 0; c < numFixed; c++)
        {
            low[c] = xs.Min(r => r[c]);
            high[c] = xs.Max(r => r[c]);
        }
        for (int c = 0; c < bounds.Count; c++)
        {
            low[numFixed + c] = Math.Min(bounds[c].Low, bounds[c].High);
            high[numFixed + c] = Math.Max(bounds[c].Low, bounds[c].High);
        }
        var x = xs.Select(r => r.Select((v, c) => Normalize(v, low[c], high[c])).ToArray()).ToArray();
        var fixedPoint = newPoint.Select((v, c) => Normalize(v, low[c], high[c])).ToArray();

        double mean = ys.Average();
        double std = Math.Sqrt(ys.Sum(v => (v - mean) * (v - mean)) / ys.Length);
        var y = ys.Select(v => Math.Clamp((v - mean) / (std + 1e-8), -2, 2)).ToArray();
        return (x, y, fixedPoint);
    }

    private static double Normalize(double value, double low, double high) => (value - low) / (high - low + 1e-8);
}
