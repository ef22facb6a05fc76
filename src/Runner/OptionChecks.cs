using System.Globalization;

namespace TorchTrials.Runner;

/// <summary>
/// One-line option errors (<see cref="OptionException"/>) naming the option by its C# name and its owner
/// (<c>AshaOptions.MaxT must be positive, got 0</c>); the sweep spec renders the same error with its own keys.
/// </summary>
internal static class OptionChecks
{
    public static string NotEmpty(string? value, string owner, string option) =>
        string.IsNullOrWhiteSpace(value) ? throw Fail(owner, option, n => $"{n(option)} must not be empty") : value;

    public static double Positive(double value, string owner, string option) =>
        value > 0 && !double.IsNaN(value) ? value : throw Fail(owner, option, n => $"{n(option)} must be positive, got {Fmt(value)}");

    public static double NonNegative(double value, string owner, string option) =>
        value >= 0 ? value : throw Fail(owner, option, n => $"{n(option)} must be 0 or more, got {Fmt(value)}");

    public static int AtLeast(int value, int minimum, string owner, string option) =>
        value >= minimum ? value : throw Fail(owner, option, n => $"{n(option)} must be at least {minimum}, got {value}");

    public static double Finite(double value, string owner, string option) =>
        double.IsFinite(value) ? value : throw Fail(owner, option, n => $"{n(option)} must be a finite number, got {Fmt(value)}");

    public static double Between(double value, double low, double high, string owner, string option) =>
        value >= low && value <= high ? value : throw Fail(owner, option, n => $"{n(option)} must be between {Fmt(low)} and {Fmt(high)}, got {Fmt(value)}");

    public static double GreaterThan(double value, double bound, string owner, string option) =>
        value > bound ? value : throw Fail(owner, option, n => $"{n(option)} must be greater than {Fmt(bound)}, got {Fmt(value)}");

    /// <summary>The checks every successive-halving schedule shares: 0 &lt; GracePeriod &lt;= MaxT, ReductionFactor &gt; 1.</summary>
    public static void Rungs(string owner, double maxT, double gracePeriod, double reductionFactor)
    {
        Positive(maxT, owner, "MaxT");
        Positive(gracePeriod, owner, "GracePeriod");
        if (gracePeriod > maxT) throw Fail(owner, "GracePeriod", n => $"{n("GracePeriod")} must be at most {n("MaxT")} ({Fmt(maxT)}), got {Fmt(gracePeriod)}");
        GreaterThan(reductionFactor, 1, owner, "ReductionFactor");
    }

    public static void MetricAndMode(object scheduler, string? metric, MetricMode? mode)
    {
        if (string.IsNullOrWhiteSpace(metric) || mode is null)
            throw new InvalidOperationException(
                $"{scheduler.GetType().Name} has no metric ({metric ?? "none"}) or mode ({mode?.ToString() ?? "none"}): set them in its options or in the experiment");
    }

    /// <summary>An error about <paramref name="option"/> of <paramref name="owner"/>; <paramref name="describe"/> names every option it mentions through its argument.</summary>
    public static OptionException Fail(string owner, string option, Func<Func<string, string>, string> describe) => new(owner, option, describe);

    public static string Fmt(double value) => value.ToString("G6", CultureInfo.InvariantCulture);
}
