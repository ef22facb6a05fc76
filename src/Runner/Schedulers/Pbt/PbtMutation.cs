using System.Collections.Immutable;
using System.Globalization;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// How PBT's explore step may change one hyperparameter: a value of Ray's <c>hyperparam_mutations</c>. A
/// <see cref="Choice"/> list moves to a neighbouring value (or is resampled); a continuous domain (<see cref="Uniform"/>,
/// <see cref="LogUniform"/>, <see cref="RandInt"/>, <see cref="From"/>) is resampled or multiplied by a perturbation
/// factor; <see cref="Nested"/> mutates a nested config.
/// </summary>
public abstract class PbtMutation
{
    private protected PbtMutation() { }

    /// <summary>An ordered list of allowed values (Ray's list or tuple): explore shifts to the left or right neighbour.</summary>
    public static PbtMutation Choice(params object?[] values) => new CategoricalMutation(values);

    /// <summary>Uniform on [low, high).</summary>
    public static PbtMutation Uniform(double low, double high)
    {
        CheckRange(low, high);
        return new ContinuousMutation(r => low + (high - low) * r.NextDouble(), $"uniform({Fmt(low)}, {Fmt(high)})", (low, high));
    }

    /// <summary>Log-uniform on [low, high), 0 &lt; low.</summary>
    public static PbtMutation LogUniform(double low, double high)
    {
        CheckRange(low, high);
        if (low <= 0) throw new ArgumentException($"loguniform low must be positive, got {Fmt(low)}", nameof(low));
        return new ContinuousMutation(r => Math.Exp(Math.Log(low) + (Math.Log(high) - Math.Log(low)) * r.NextDouble()), $"loguniform({Fmt(low)}, {Fmt(high)})", (low, high));
    }

    /// <summary>A whole number in [low, high).</summary>
    public static PbtMutation RandInt(long low, long high)
    {
        if (low >= high) throw new ArgumentException($"randint needs low < high, got [{low}, {high})", nameof(high));
        return new ContinuousMutation(r => r.NextInt64(low, high), $"randint({low}, {high})", (low, high));
    }

    /// <summary>A sampling function (Ray's callable).</summary>
    public static PbtMutation From(Func<Random, object?> sample, string description = "function")
    {
        ArgumentNullException.ThrowIfNull(sample);
        return new ContinuousMutation(sample, description, null);
    }

    /// <summary>Mutations of a nested config (Ray's dict value).</summary>
    public static PbtMutation Nested(IReadOnlyDictionary<string, PbtMutation> mutations)
    {
        ArgumentNullException.ThrowIfNull(mutations);
        if (mutations.Count == 0) throw new ArgumentException("a nested mutation needs at least one key", nameof(mutations));
        return new NestedMutation(mutations);
    }

    /// <summary>A fresh value (used to fill configs that lack the key, and to resample).</summary>
    internal abstract object? Sample(Random random);

    private static void CheckRange(double low, double high)
    {
        if (!double.IsFinite(low) || !double.IsFinite(high) || low >= high)
            throw new ArgumentException($"a range needs finite low < high, got [{Fmt(low)}, {Fmt(high)})", nameof(high));
    }

    internal static string Fmt(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}

/// <summary>Ray's list mutation: resample with resample_probability (or when the current value is not in the list), else shift by one.</summary>
public sealed class CategoricalMutation : PbtMutation
{
    internal CategoricalMutation(object?[] values)
    {
        if (values is null || values.Length == 0) throw new ArgumentException("a choice needs at least one value", nameof(values));
        Values = values.Select((v, i) => TrialConfig.Normalise(v, $"choice[{i}]")).ToImmutableArray();
    }

    public ImmutableArray<object?> Values { get; }

    internal override object? Sample(Random random) => Values[random.Next(Values.Length)];

    internal int IndexOf(object? value)
    {
        for (int i = 0; i < Values.Length; i++)
            if (SameValue(Values[i], value)) return i;
        return -1;
    }

    private static bool SameValue(object? a, object? b) => (a, b) switch
    {
        (long x, double y) => x == y,
        (double x, long y) => x == y,
        _ => Equals(a, b),
    };
}

/// <summary>Ray's domain or callable mutation: resample with resample_probability, else multiply by a perturbation factor.</summary>
public sealed class ContinuousMutation : PbtMutation
{
    private readonly Func<Random, object?> _sample;

    internal ContinuousMutation(Func<Random, object?> sample, string description, (double Low, double High)? bounds)
    {
        _sample = sample;
        Description = description;
        Bounds = bounds;
    }

    public string Description { get; }

    /// <summary>The domain's bounds when it has them.</summary>
    public (double Low, double High)? Bounds { get; }

    internal override object? Sample(Random random) => TrialConfig.Normalise(_sample(random), Description);

    public override string ToString() => Description;
}

/// <summary>Mutations applied inside a nested config.</summary>
public sealed class NestedMutation : PbtMutation
{
    internal NestedMutation(IReadOnlyDictionary<string, PbtMutation> mutations) => Mutations = mutations;

    public IReadOnlyDictionary<string, PbtMutation> Mutations { get; }

    internal override object? Sample(Random random) =>
        TrialConfig.From(Mutations.Select(kv => new KeyValuePair<string, object?>(kv.Key, kv.Value.Sample(random))));
}
