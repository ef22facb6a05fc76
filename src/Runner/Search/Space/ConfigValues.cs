using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>Comparisons and formatting of normalised config values (long, double, bool, string, null, arrays, nested configs).</summary>
public static class ConfigValues
{
    /// <summary>Deep equality; a long and a double holding the same number are equal (JSON round trips turn 2.0 into 2).</summary>
    public static bool Equal(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (long x, double y) => x == y,
        (double x, long y) => x == y,
        (ImmutableArray<object?> x, ImmutableArray<object?> y) => x.Length == y.Length && x.Zip(y).All(p => Equal(p.First, p.Second)),
        (TrialConfig x, TrialConfig y) => x.Equals(y),
        _ => Equals(a, b),
    };

    /// <summary>A number as double; false for anything that is not a number.</summary>
    public static bool TryGetNumber(object? value, out double number)
    {
        switch (value)
        {
            case double d: number = d; return true;
            case long l: number = l; return true;
            case int i: number = i; return true;
            case float f: number = f; return true;
            case decimal m: number = (double)m; return true;
            default: number = double.NaN; return false;
        }
    }

    /// <summary>Invariant round-trip text of a double, for error messages.</summary>
    public static string Num(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>
    /// Ray's <c>format_vars</c>: "key=value" pairs sorted by key, joined by commas, values cleaned so the tag can be part of a
    /// directory name (runs of characters other than letters, digits, '_', '-' and '.' become '_'). Numbers use the config's
    /// short form (0.01, 64) where Ray prints floats with four decimals.
    /// </summary>
    public static string FormatTag(IEnumerable<KeyValuePair<string, object?>> values) =>
        string.Join(",", values.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{Clean(kv.Key)}={Clean(TrialConfig.Format(kv.Value))}"));

    private static string Clean(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool lastInvalid = false;
        foreach (char c in text)
        {
            bool valid = char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.';
            if (valid) sb.Append(c);
            else if (!lastInvalid) sb.Append('_');
            lastInvalid = !valid;
        }
        return sb.ToString().Trim('_');
    }
}
