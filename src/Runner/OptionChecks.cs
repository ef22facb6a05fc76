namespace TorchTrials.Runner;

/// <summary>One-line argument errors that name the option (snake_case, as a sweep spec spells it).</summary>
internal static class OptionChecks
{
    public static string NotEmpty(string? value, string option, string param) =>
        string.IsNullOrWhiteSpace(value) ? throw new ArgumentException($"{option} must not be empty", param) : value;

    public static double Positive(double value, string option, string param) =>
        value > 0 && !double.IsNaN(value) ? value : throw new ArgumentException($"{option} must be positive, got {Fmt(value)}", param);

    public static double NonNegative(double value, string option, string param) =>
        value >= 0 ? value : throw new ArgumentException($"{option} must be 0 or more, got {Fmt(value)}", param);

    public static int AtLeast(int value, int minimum, string option, string param) =>
        value >= minimum ? value : throw new ArgumentException($"{option} must be at least {minimum}, got {value}", param);

    public static double Finite(double value, string option, string param) =>
        double.IsFinite(value) ? value : throw new ArgumentException($"{option} must be a finite number, got {Fmt(value)}", param);

    public static double Between(double value, double low, double high, string option, string param) =>
        value >= low && value <= high ? value : throw new ArgumentException($"{option} must be between {Fmt(low)} and {Fmt(high)}, got {Fmt(value)}", param);

    public static double GreaterThan(double value, double bound, string option, string param) =>
        value > bound ? value : throw new ArgumentException($"{option} must be greater than {Fmt(bound)}, got {Fmt(value)}", param);

    /// <summary>The checks every successive-halving schedule shares: 0 &lt; grace_period &lt;= max_t, reduction_factor &gt; 1.</summary>
    public static void Rungs(double maxT, double gracePeriod, double reductionFactor)
    {
        Positive(maxT, "max_t", "MaxT");
        Positive(gracePeriod, "grace_period", "GracePeriod");
        if (gracePeriod > maxT) throw new ArgumentException($"grace_period must be at most max_t ({Fmt(maxT)}), got {Fmt(gracePeriod)}", "GracePeriod");
        GreaterThan(reductionFactor, 1, "reduction_factor", "ReductionFactor");
    }

    public static void MetricAndMode(object scheduler, string? metric, MetricMode? mode)
    {
        if (string.IsNullOrWhiteSpace(metric) || mode is null)
            throw new InvalidOperationException(
                $"{scheduler.GetType().Name} has no metric ({metric ?? "none"}) or mode ({mode?.ToString() ?? "none"}): set them in its options or in the experiment");
    }

    public static string Fmt(double value) => value.ToString("G6", System.Globalization.CultureInfo.InvariantCulture);
}
