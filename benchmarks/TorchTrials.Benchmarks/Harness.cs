using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace TorchTrials.Benchmarks;

/// <summary>How the harness was asked to run.</summary>
public sealed record BenchOptions(bool Quick, int Repeats, string WorkDirectory);

/// <summary>One measured quantity over the repeats: its samples, median and spread.</summary>
public sealed record Measurement(string Name, string Unit, IReadOnlyList<double> Samples)
{
    public double Median => Stats.Median(Samples);

    public double Min => Samples.Min();

    public double Max => Samples.Max();

    public string Format(string format = "0.###") =>
        Samples.Count == 1
            ? $"{Median.ToString(format, CultureInfo.InvariantCulture)} {Unit}"
            : $"{Median.ToString(format, CultureInfo.InvariantCulture)} {Unit} ({Min.ToString(format, CultureInfo.InvariantCulture)}–{Max.ToString(format, CultureInfo.InvariantCulture)}, n={Samples.Count})";
}

/// <summary>What one benchmark found: its measurements, the ratio it is judged by, the goal and whether it was met.</summary>
public sealed record BenchOutcome(
    string Name,
    string Title,
    string Goal,
    IReadOnlyList<Measurement> Measurements,
    string RatioDescription,
    double? Ratio,
    bool? GoalMet,
    string Notes);

public interface IBenchmark
{
    /// <summary>Short name for --only.</summary>
    string Name { get; }

    string Title { get; }

    BenchOutcome Run(BenchOptions options);
}

public static class Stats
{
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>
    /// The one-sided Wilcoxon signed-rank test that the differences are centred above zero (scipy's
    /// <c>wilcoxon(d, alternative="greater", method="exact")</c>): zero differences are dropped (Wilcoxon's method), ties
    /// share their average rank, and p is exact, from the distribution of W+ over all 2^n sign patterns of those ranks.
    /// Infinite differences (a side that never reached its target) rank above every finite one.
    /// </summary>
    public static (double WPlus, double P, int N) WilcoxonGreater(IEnumerable<double> differences)
    {
        var d = differences.Where(x => x != 0 && !double.IsNaN(x)).ToArray();
        int n = d.Length;
        if (n == 0) return (0, 1, 0);
        var order = Enumerable.Range(0, n).OrderBy(i => Math.Abs(d[i])).ToArray();
        // Doubled ranks stay whole numbers when ties share an average rank.
        var rank2 = new int[n];
        for (int i = 0; i < n;)
        {
            int j = i;
            while (j + 1 < n && Math.Abs(d[order[j + 1]]) == Math.Abs(d[order[i]])) j++;
            for (int k = i; k <= j; k++) rank2[order[k]] = i + 1 + j + 1;
            i = j + 1;
        }
        int total = rank2.Sum();
        var patterns = new double[total + 1];
        patterns[0] = 1;
        foreach (int r in rank2)
            for (int sum = total; sum >= r; sum--) patterns[sum] += patterns[sum - r];
        int observed = Enumerable.Range(0, n).Where(i => d[i] > 0).Sum(i => rank2[i]);
        double atLeast = 0;
        for (int sum = observed; sum <= total; sum++) atLeast += patterns[sum];
        return (observed / 2.0, atLeast / Math.Pow(2, n), n);
    }

    /// <summary>Runs <paramref name="action"/> and returns its wall time in seconds.</summary>
    public static double Time(Action action)
    {
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalSeconds;
    }
}

/// <summary>
/// Two-sided Mann-Whitney U test, as scipy.stats.mannwhitneyu(method="asymptotic", use_continuity=True) computes it:
/// U of the first sample from mid-ranks of the pooled samples, and the p-value from the normal approximation with
/// the tie-corrected variance and a continuity correction of 0.5. For samples of 20 it is what scipy's "auto" method
/// uses too (exact only at 8 or fewer).
/// </summary>
public static class MannWhitney
{
    public static (double U, double P) Test(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        int n1 = x.Count, n2 = y.Count, n = n1 + n2;
        if (n1 == 0 || n2 == 0) throw new ArgumentException("both samples need at least one value");
        var pooled = x.Select(v => (Value: v, First: true)).Concat(y.Select(v => (Value: v, First: false))).OrderBy(p => p.Value).ToArray();
        double rankSum = 0, tieTerm = 0;
        for (int i = 0; i < n;)
        {
            int j = i;
            while (j + 1 < n && pooled[j + 1].Value == pooled[i].Value) j++;
            double midRank = (i + j) / 2.0 + 1;
            int ties = j - i + 1;
            for (int k = i; k <= j; k++)
                if (pooled[k].First) rankSum += midRank;
            tieTerm += (double)ties * ties * ties - ties;
            i = j + 1;
        }
        double u = rankSum - n1 * (n1 + 1) / 2.0;
        double mean = n1 * n2 / 2.0;
        double sd = Math.Sqrt(n1 * n2 / 12.0 * (n + 1 - tieTerm / (n * (n - 1.0))));
        if (sd == 0) return (u, 1);
        double z = (Math.Abs(u - mean) - 0.5) / sd;
        return (u, Math.Min(1, 2 * MathNet.Numerics.Distributions.Normal.CDF(0, 1, -z)));
    }
}

/// <summary>The machine the numbers come from.</summary>
public static class Machine
{
    public static string Describe()
    {
        string cpu = "unknown CPU";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (IOException) { }
        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (double)(1L << 30);
        return $"{cpu}, {Environment.ProcessorCount} cores, {memory:0} GiB, {RuntimeInformation.OSDescription}, .NET {Environment.Version}, TorchSharp {typeof(TorchSharp.torch).Assembly.GetName().Version}";
    }
}

/// <summary>Writes benchmarks/RESULTS.md from the outcomes of one run.</summary>
public static class ResultsWriter
{
    /// <summary>
    /// Where a run writes its markdown: <paramref name="outArgument"/> (<c>--out</c>) when given; none for a
    /// <paramref name="quick"/> smoke run; <c>benchmarks/RESULTS.md</c> under <paramref name="repoRoot"/> only for a full
    /// run; a run of some benchmarks (<paramref name="only"/>, <c>--only</c>) writes a file of its own in
    /// <paramref name="scratch"/>, since RESULTS.md also holds the sections measured apart and a partial run would
    /// replace them all (seen: <c>--only report</c> left RESULTS.md with the report section alone).
    /// </summary>
    public static string? OutputPath(string? outArgument, bool quick, IReadOnlyList<string>? only, string repoRoot, string scratch, DateTime now)
    {
        if (outArgument is not null) return outArgument;
        if (quick) return null;
        if (only is null) return Path.Combine(repoRoot, "benchmarks", "RESULTS.md");
        return Path.Combine(scratch, $"torchtrials-bench-{string.Join('+', only)}-{now:yyyyMMdd-HHmmss}.md");
    }

    public static string Markdown(IReadOnlyList<BenchOutcome> outcomes, BenchOptions options, TimeSpan elapsed)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Benchmark results");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Describe()}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Mode: {(options.Quick ? "quick (smoke run: numbers are not meaningful)" : "full")}, {options.Repeats} repeat(s) per measurement, every comparison measured side by side in this run; total {elapsed.TotalMinutes:0.0} min");
        sb.AppendLine("- Reproduce: `dotnet run -c Release --project benchmarks/TorchTrials.Benchmarks` (add `--only NAME` for one, written to its own file in the temp folder unless `--out`, `--quick` for a smoke run, `--keep` to keep the work folder).");
        sb.AppendLine();
        sb.AppendLine("| benchmark | ratio | goal | met |");
        sb.AppendLine("|---|---|---|---|");
        foreach (var o in outcomes)
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {o.Title} | {(o.Ratio is { } r ? r.ToString("0.###", CultureInfo.InvariantCulture) : "n/a")} ({o.RatioDescription}) | {o.Goal} | {(o.GoalMet is null ? "n/a" : o.GoalMet.Value ? "yes" : "**no**")} |");
        sb.AppendLine();
        foreach (var o in outcomes)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"## {o.Title} (`{o.Name}`)");
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"Goal: {o.Goal}.");
            sb.AppendLine();
            sb.AppendLine("| measurement | median (min–max, n) |");
            sb.AppendLine("|---|---|");
            foreach (var m in o.Measurements) sb.AppendLine(CultureInfo.InvariantCulture, $"| {m.Name} | {m.Format()} |");
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"Ratio: {(o.Ratio is { } r ? r.ToString("0.###", CultureInfo.InvariantCulture) : "n/a")} ({o.RatioDescription}). Goal {(o.GoalMet is null ? "not judged" : o.GoalMet.Value ? "met" : "missed")}.");
            if (!string.IsNullOrWhiteSpace(o.Notes))
            {
                sb.AppendLine();
                sb.AppendLine(o.Notes.Trim());
            }
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
