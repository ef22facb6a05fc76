using System.Globalization;
using System.Text.Json;

namespace TorchTrials.Runner.Report;

/// <summary>
/// Hyperparameter importance by fANOVA over a random forest, the variant of Optuna's <c>optuna/importance/_fanova</c>
/// (FanovaImportanceEvaluator): a seeded random forest regressor (64 trees, bootstrap samples, every feature considered at
/// each split as sklearn's RandomForestRegressor default, max_depth 64, min_samples_split 2, min_samples_leaf 1) is fitted
/// on the encoded params (log domains in log space, integers and floats as numbers, categoricals one-hot); per tree, the
/// variance of the marginal prediction of each param (over the grid of cells its split thresholds cut the search box into,
/// the other dimensions averaged out uniformly) is divided by the tree's total variance; a categorical's one-hot columns are
/// marginalised jointly so its importance is one number. The fractions are averaged over the trees whose variance is not
/// zero, then normalised to sum 1. A constant metric (every tree has zero variance) gives importance 0 for every param,
/// never NaN.
/// </summary>
public static class ParameterImportance
{
    public const int Trees = 64;
    public const int MaxDepth = 64;

    /// <summary>The method as the picture names it.</summary>
    public const string Method = "fANOVA over a random forest (64 trees)";

    /// <summary>
    /// The importance of each varying hyperparameter for the sweep's metric, sorted descending. Uses the trials that reported
    /// the metric (each trial's last reported value) and have every param; params with a single value are left out.
    /// Empty when fewer than two trials or no varying param.
    /// </summary>
    public static IReadOnlyList<(string Param, double Importance)> Fanova(SweepData data, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Metric is null) return [];
        var trials = new List<(SweepTrial Trial, double Value)>();
        foreach (var trial in data.Trials)
        {
            double? last = null;
            foreach (var result in trial.Results)
                if (ParamValues.TryNumber(result[data.Metric], out var v) && double.IsFinite(v)) last = v;
            if (last is double value) trials.Add((trial, value));
        }
        var domains = ParamValues.Domains(data).Where(d => trials.All(t => t.Trial.Params.ContainsKey(d.Name))).ToList();
        if (trials.Count < 2 || domains.Count == 0) return [];

        var columns = new List<double[]>();
        var groups = new List<int[]>();
        var bounds = new List<(double Lo, double Hi)>();
        var names = new List<string>();
        foreach (var domain in domains)
        {
            if (domain.Kind == ParamKind.Categorical)
            {
                var categories = domain.Categories.Count > 0 ? domain.Categories.Select(ParamValues.Key).ToList()
                    : trials.Select(t => ParamValues.Key(t.Trial.Params[domain.Name])).Distinct().ToList();
                if (categories.Count < 2) continue;
                var group = new int[categories.Count];
                for (int c = 0; c < categories.Count; c++)
                {
                    group[c] = columns.Count;
                    columns.Add(trials.Select(t => ParamValues.Key(t.Trial.Params[domain.Name]) == categories[c] ? 1.0 : 0.0).ToArray());
                    bounds.Add((0, 1));
                }
                groups.Add(group);
            }
            else
            {
                var values = trials.Select(t => ParamValues.Encode(domain, t.Trial.Params[domain.Name])).ToArray();
                double lo = domain.Low < domain.High ? ParamValues.Encode(domain, domain.Low) : values.Min();
                double hi = domain.Low < domain.High ? ParamValues.Encode(domain, domain.High) : values.Max();
                lo = Math.Min(lo, values.Min());
                hi = Math.Max(hi, values.Max());
                if (!(hi > lo)) continue;
                groups.Add([columns.Count]);
                columns.Add(values);
                bounds.Add((lo, hi));
            }
            names.Add(domain.Name);
        }
        if (names.Count == 0) return [];

        var x = new double[trials.Count, columns.Count];
        for (int i = 0; i < trials.Count; i++)
            for (int j = 0; j < columns.Count; j++) x[i, j] = columns[j][i];
        var importances = Fanova(x, trials.Select(t => t.Value).ToArray(), [.. bounds], [.. groups], seed);
        return names.Select((n, i) => (n, importances[i])).OrderByDescending(p => p.Item2).ThenBy(p => p.n, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// fANOVA on raw encoded features: <paramref name="x"/> is samples x columns, <paramref name="bounds"/> the search box per
    /// column, <paramref name="groups"/> the columns of each param (one for a number, the one-hot columns of a categorical).
    /// Returns one importance per group, in group order, summing to 1 (all 0 when the target is constant).
    /// </summary>
    public static double[] Fanova(double[,] x, double[] y, (double Lo, double Hi)[] bounds, int[][] groups, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(bounds);
        ArgumentNullException.ThrowIfNull(groups);
        int n = x.GetLength(0), d = x.GetLength(1);
        if (y.Length != n || bounds.Length != d) throw new ArgumentException("x, y and bounds disagree in size.");
        var sums = new double[groups.Length];
        int counted = 0;
        var rng = new Random(seed);
        for (int t = 0; t < Trees; t++)
        {
            var sample = new int[n];
            for (int i = 0; i < n; i++) sample[i] = rng.Next(n);
            var tree = RegressionTree.Fit(x, y, sample, rng, MaxDepth);
            var leaves = tree.Leaves(bounds);
            double total = BoxVariance(leaves, bounds);
            if (!(total > 1e-12 * Math.Max(1, leaves.Max(l => l.Value * l.Value)))) continue;
            counted++;
            for (int g = 0; g < groups.Length; g++)
                sums[g] += Math.Clamp(MarginalVariance(tree, leaves, bounds, groups[g]) / total, 0, 1);
        }
        if (counted == 0) return new double[groups.Length];
        double sum = sums.Sum();
        return sum > 0 ? sums.Select(s => s / sum).ToArray() : new double[groups.Length];
    }

    /// <summary>The variance of the tree's prediction under the uniform distribution on the search box.</summary>
    private static double BoxVariance(List<Leaf> leaves, (double Lo, double Hi)[] bounds)
    {
        double mean = 0, sq = 0, volume = 0;
        foreach (var leaf in leaves)
        {
            double w = Fraction(leaf, bounds, null);
            volume += w;
            mean += w * leaf.Value;
            sq += w * leaf.Value * leaf.Value;
        }
        mean /= volume;
        return Math.Max(0, sq / volume - mean * mean);
    }

    /// <summary>The leaf box's share of the search box in every dimension except <paramref name="skip"/>.</summary>
    private static double Fraction(Leaf leaf, (double Lo, double Hi)[] bounds, HashSet<int>? skip)
    {
        double w = 1;
        for (int j = 0; j < bounds.Length; j++)
            if (skip is null || !skip.Contains(j)) w *= (leaf.Hi[j] - leaf.Lo[j]) / (bounds[j].Hi - bounds[j].Lo);
        return w;
    }

    /// <summary>
    /// Variance, over the cells the tree's thresholds on <paramref name="group"/> cut the box into (weighted by cell size),
    /// of the prediction averaged over the other dimensions.
    /// </summary>
    private static double MarginalVariance(RegressionTree tree, List<Leaf> leaves, (double Lo, double Hi)[] bounds, int[] group)
    {
        var cells = new List<(double Mid, double Size)>[group.Length];
        for (int k = 0; k < group.Length; k++)
        {
            int j = group[k];
            var cuts = tree.Thresholds(j).Where(c => c > bounds[j].Lo && c < bounds[j].Hi).Distinct().Order().ToList();
            cells[k] = [];
            double prev = bounds[j].Lo;
            foreach (var c in cuts.Append(bounds[j].Hi))
            {
                cells[k].Add(((prev + c) / 2, (c - prev) / (bounds[j].Hi - bounds[j].Lo)));
                prev = c;
            }
        }
        var skip = group.ToHashSet();
        var rest = leaves.Select(l => Fraction(l, bounds, skip)).ToArray();
        var index = new int[group.Length];
        double mean = 0, sq = 0, weight = 0;
        while (true)
        {
            double size = 1, value = 0, mass = 0;
            for (int k = 0; k < group.Length; k++) size *= cells[k][index[k]].Size;
            for (int l = 0; l < leaves.Count; l++)
            {
                bool inside = true;
                for (int k = 0; k < group.Length && inside; k++)
                {
                    double mid = cells[k][index[k]].Mid;
                    inside = leaves[l].Lo[group[k]] <= mid && mid < leaves[l].Hi[group[k]];
                }
                if (!inside) continue;
                value += rest[l] * leaves[l].Value;
                mass += rest[l];
            }
            if (mass > 0)
            {
                value /= mass;
                mean += size * value;
                sq += size * value * value;
                weight += size;
            }
            int p = 0;
            while (p < group.Length && ++index[p] == cells[p].Count) index[p++] = 0;
            if (p == group.Length) break;
        }
        if (weight <= 0) return 0;
        mean /= weight;
        return Math.Max(0, sq / weight - mean * mean);
    }

    internal sealed record Leaf(double[] Lo, double[] Hi, double Value);

    /// <summary>A CART regression tree (squared error, best split over every feature, features visited in random order).</summary>
    internal sealed class RegressionTree
    {
        private readonly List<Node> _nodes = [];

        private record struct Node(int Feature, double Threshold, int Left, int Right, double Value);

        public static RegressionTree Fit(double[,] x, double[] y, int[] sample, Random rng, int maxDepth)
        {
            var tree = new RegressionTree();
            tree.Build(x, y, sample, rng, 0, maxDepth);
            return tree;
        }

        private int Build(double[,] x, double[] y, int[] idx, Random rng, int depth, int maxDepth)
        {
            int n = idx.Length, d = x.GetLength(1);
            double sum = 0, sumSq = 0;
            foreach (var i in idx) { sum += y[i]; sumSq += y[i] * y[i]; }
            double mean = sum / n;
            int self = _nodes.Count;
            _nodes.Add(new Node(-1, 0, -1, -1, mean));
            double impurity = sumSq - sum * sum / n;
            if (depth >= maxDepth || n < 2 || impurity <= 1e-12 * Math.Max(1, sumSq)) return self;

            var features = Enumerable.Range(0, d).ToArray();
            rng.Shuffle(features);
            int bestFeature = -1, bestPos = -1;
            double bestScore = impurity - 1e-12 * Math.Max(1, sumSq), bestThreshold = 0;
            int[]? bestOrder = null;
            foreach (var f in features)
            {
                var order = idx.OrderBy(i => x[i, f]).ToArray();
                double ls = 0, lsq = 0;
                for (int k = 0; k < n - 1; k++)
                {
                    double v = y[order[k]];
                    ls += v;
                    lsq += v * v;
                    double a = x[order[k], f], b = x[order[k + 1], f];
                    if (b <= a + 1e-7) continue;
                    int nl = k + 1, nr = n - nl;
                    double rs = sum - ls, rsq = sumSq - lsq;
                    double score = (lsq - ls * ls / nl) + (rsq - rs * rs / nr);
                    if (score < bestScore)
                    {
                        bestScore = score;
                        bestFeature = f;
                        bestPos = k;
                        bestThreshold = (a + b) / 2;
                        bestOrder = order;
                    }
                }
            }
            if (bestFeature < 0 || bestOrder is null) return self;
            int left = Build(x, y, bestOrder[..(bestPos + 1)], rng, depth + 1, maxDepth);
            int right = Build(x, y, bestOrder[(bestPos + 1)..], rng, depth + 1, maxDepth);
            _nodes[self] = new Node(bestFeature, bestThreshold, left, right, mean);
            return self;
        }

        public double Predict(ReadOnlySpan<double> row)
        {
            int i = 0;
            while (_nodes[i].Feature >= 0) i = row[_nodes[i].Feature] <= _nodes[i].Threshold ? _nodes[i].Left : _nodes[i].Right;
            return _nodes[i].Value;
        }

        public IEnumerable<double> Thresholds(int feature) => _nodes.Where(n => n.Feature == feature).Select(n => n.Threshold);

        /// <summary>The leaves with their boxes clipped to the search box (left child: x &lt;= threshold).</summary>
        public List<Leaf> Leaves((double Lo, double Hi)[] bounds)
        {
            var leaves = new List<Leaf>();
            Walk(0, bounds.Select(b => b.Lo).ToArray(), bounds.Select(b => b.Hi).ToArray(), leaves);
            return leaves.Where(l => Enumerable.Range(0, bounds.Length).All(j => l.Hi[j] > l.Lo[j])).ToList();
        }

        private void Walk(int i, double[] lo, double[] hi, List<Leaf> leaves)
        {
            var node = _nodes[i];
            if (node.Feature < 0)
            {
                leaves.Add(new Leaf((double[])lo.Clone(), (double[])hi.Clone(), node.Value));
                return;
            }
            int f = node.Feature;
            double saved = hi[f];
            hi[f] = Math.Min(saved, Math.Max(lo[f], node.Threshold));
            Walk(node.Left, lo, hi, leaves);
            hi[f] = saved;
            saved = lo[f];
            lo[f] = Math.Max(saved, Math.Min(hi[f], node.Threshold));
            Walk(node.Right, lo, hi, leaves);
            lo[f] = saved;
        }
    }
}

/// <summary>Reading sampled param values as numbers or category keys, and the domains of a sweep (saved or inferred).</summary>
internal static class ParamValues
{
    public static bool TryNumber(object? value, out double number)
    {
        switch (value)
        {
            case double v: number = v; return true;
            case float v: number = v; return true;
            case long v: number = v; return true;
            case int v: number = v; return true;
            case decimal v: number = (double)v; return true;
            case bool v: number = v ? 1 : 0; return true;
            case JsonElement { ValueKind: JsonValueKind.Number } e: number = e.GetDouble(); return true;
            case string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var p): number = p; return true;
            default: number = double.NaN; return false;
        }
    }

    public static string Key(object? value) => value switch
    {
        null => "null",
        JsonElement e => e.ValueKind == JsonValueKind.String ? e.GetString() ?? "" : e.GetRawText(),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>A numeric param's value on its axis scale (log10 for log domains).</summary>
    public static double Encode(ParamDomain domain, object? value)
    {
        if (!TryNumber(value, out var v)) return double.NaN;
        return domain.Log ? Math.Log10(Math.Max(v, double.Epsilon)) : v;
    }

    /// <summary>The saved domains, or ones inferred from the trials' params (numbers unless a value is not a number).</summary>
    public static IReadOnlyList<ParamDomain> Domains(SweepData data)
    {
        if (data.Domains.Count > 0) return data.Domains;
        var names = data.Trials.SelectMany(t => t.Params.Keys).Distinct().Order(StringComparer.Ordinal);
        var domains = new List<ParamDomain>();
        foreach (var name in names)
        {
            var values = data.Trials.Where(t => t.Params.ContainsKey(name)).Select(t => t.Params[name]).ToList();
            if (values.All(v => v is not bool && v is not string && TryNumber(v, out _)))
            {
                var numbers = values.Select(v => TryNumber(v, out var n) ? n : 0).ToList();
                bool integer = values.All(v => v is long or int);
                domains.Add(new ParamDomain(name, integer ? ParamKind.Integer : ParamKind.Float) { Low = numbers.Min(), High = numbers.Max() });
            }
            else
            {
                domains.Add(new ParamDomain(name, ParamKind.Categorical) { Categories = values.Select(Key).Distinct().Cast<object?>().ToList() });
            }
        }
        return domains;
    }
}
