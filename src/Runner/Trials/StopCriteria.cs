using System.Collections;
using System.Collections.Immutable;
using System.Globalization;
using TorchTrials.Trainables;

namespace TorchTrials.Runner;

/// <summary>
/// Stopping criteria in Ray's dict form (<c>tune.RunConfig(stop={"training_iteration": 10})</c>): a trial stops as soon as
/// <c>result[key] &gt;= value</c> for any one key. Build them with <see cref="Stop"/>; a plain dictionary works wherever these do.
/// </summary>
public sealed class StopCriteria : IReadOnlyDictionary<string, double>
{
    private readonly ImmutableDictionary<string, double> _values;

    private StopCriteria(ImmutableDictionary<string, double> values) => _values = values;

    internal static StopCriteria Of(string key, double value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        if (double.IsNaN(value)) throw new ArgumentOutOfRangeException(nameof(value), $"stop value for '{key}' must be a number, got NaN");
        return new StopCriteria(ImmutableDictionary.Create<string, double>(StringComparer.Ordinal).Add(key, value));
    }

    /// <summary>These criteria and <paramref name="other"/>'s: the trial stops when any of them is met.</summary>
    public StopCriteria Or(StopCriteria other)
    {
        var values = _values;
        foreach (var (key, value) in other._values)
        {
            if (values.ContainsKey(key)) throw new ArgumentException($"stop criterion '{key}' is given twice", nameof(other));
            values = values.Add(key, value);
        }
        return new StopCriteria(values);
    }

    public double this[string key] => _values[key];

    public IEnumerable<string> Keys => _values.Keys;

    public IEnumerable<double> Values => _values.Values;

    public int Count => _values.Count;

    public bool ContainsKey(string key) => _values.ContainsKey(key);

    public bool TryGetValue(string key, out double value) => _values.TryGetValue(key, out value);

    public IEnumerator<KeyValuePair<string, double>> GetEnumerator() => _values.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() =>
        string.Join(" or ", _values.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} >= {kv.Value}")));
}

/// <summary>Typed stopping criteria for <see cref="RunConfig.Stop"/>: <c>Stop.AfterIterations(10).Or(Stop.WhenAtLeast("val_accuracy", 0.98))</c>.</summary>
public static class Stop
{
    /// <summary>Stop after <paramref name="iterations"/> results (training_iteration &gt;= iterations).</summary>
    public static StopCriteria AfterIterations(long iterations) =>
        iterations >= 1
            ? StopCriteria.Of(TrialResult.TrainingIterationKey, iterations)
            : throw new ArgumentOutOfRangeException(nameof(iterations), $"stop after iterations must be at least 1, got {iterations}");

    /// <summary>Stop once the trial has trained <paramref name="seconds"/> in all (time_total_s &gt;= seconds).</summary>
    public static StopCriteria AfterSeconds(double seconds) =>
        seconds > 0
            ? StopCriteria.Of(TrialResult.TimeTotalKey, seconds)
            : throw new ArgumentOutOfRangeException(nameof(seconds), $"stop after seconds must be greater than 0, got {seconds}");

    /// <summary>Stop once a result's <paramref name="metric"/> reaches <paramref name="value"/> (result[metric] &gt;= value).</summary>
    public static StopCriteria WhenAtLeast(string metric, double value) => StopCriteria.Of(metric, value);
}
