using System.Collections;
using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TorchTrials.Trainables;

/// <summary>
/// A trial's hyperparameters: an immutable, ordered map from names to values. Values are normalised to
/// long, double, bool, string, null, nested <see cref="TrialConfig"/> or <see cref="ImmutableArray{T}"/> of those,
/// so configs compare by value and round-trip through JSON.
/// </summary>
public sealed class TrialConfig : IReadOnlyDictionary<string, object?>, IEquatable<TrialConfig>
{
    private readonly ImmutableDictionary<string, object?> _values;
    private readonly ImmutableArray<string> _order;

    private TrialConfig(ImmutableDictionary<string, object?> values, ImmutableArray<string> order)
    {
        _values = values;
        _order = order;
    }

    public static TrialConfig Empty { get; } = new(ImmutableDictionary<string, object?>.Empty.WithComparers(StringComparer.Ordinal), ImmutableArray<string>.Empty);

    public static TrialConfig From(IEnumerable<KeyValuePair<string, object?>> values)
    {
        var config = Empty;
        foreach (var (key, value) in values) config = config.With(key, value);
        return config;
    }

    public static TrialConfig From(params (string Key, object? Value)[] values) =>
        From(values.Select(v => new KeyValuePair<string, object?>(v.Key, v.Value)));

    /// <summary>A copy with <paramref name="key"/> set (added at the end when new).</summary>
    public TrialConfig With(string key, object? value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var normalised = Normalise(value, key);
        var order = _values.ContainsKey(key) ? _order : _order.Add(key);
        return new TrialConfig(_values.SetItem(key, normalised), order);
    }

    public TrialConfig Without(string key) =>
        _values.ContainsKey(key) ? new TrialConfig(_values.Remove(key), _order.Remove(key)) : this;

    /// <summary>This config with every entry of <paramref name="other"/> laid over it.</summary>
    public TrialConfig Merge(TrialConfig other)
    {
        var result = this;
        foreach (var (key, value) in other) result = result.With(key, value);
        return result;
    }

    public object? this[string key] =>
        _values.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"config key '{key}' is missing");

    public IEnumerable<string> Keys => _order;

    public IEnumerable<object?> Values => _order.Select(k => _values[k]);

    public int Count => _order.Length;

    public bool ContainsKey(string key) => _values.ContainsKey(key);

    public bool TryGetValue(string key, out object? value) => _values.TryGetValue(key, out value);

    public double GetDouble(string key, double? fallback = null) => Get(key, fallback, v => v switch
    {
        double d => d,
        long l => l,
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var p) => p,
        _ => (double?)null,
    }, "a number");

    public int GetInt(string key, int? fallback = null) => Get(key, fallback, v => v switch
    {
        long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
        double d when d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue => (int)d,
        string s when int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var p) => p,
        _ => (int?)null,
    }, "a whole number");

    /// <summary>The whole number at <paramref name="key"/> (or <paramref name="fallback"/>), which must be at least <paramref name="min"/>.</summary>
    public int GetInt(string key, int fallback, int min)
    {
        int value = GetInt(key, fallback);
        if (value < min)
            throw new ArgumentOutOfRangeException(key, min == 0
                ? $"config key '{key}' must not be negative, got {value}"
                : $"config key '{key}' must be at least {min}, got {value}");
        return value;
    }

    /// <summary>The number at <paramref name="key"/> (or <paramref name="fallback"/>), which must lie in [<paramref name="min"/>, <paramref name="maxExclusive"/>).</summary>
    public double GetDouble(string key, double fallback, double min, double maxExclusive)
    {
        double value = GetDouble(key, fallback);
        if (!(value >= min && value < maxExclusive))
            throw new ArgumentOutOfRangeException(key, FormattableString.Invariant($"config key '{key}' must be in [{min}, {maxExclusive}), got {value}"));
        return value;
    }

    public long GetLong(string key, long? fallback = null) => Get(key, fallback, v => v switch
    {
        long l => l,
        double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => (long)d,
        _ => (long?)null,
    }, "a whole number");

    public bool GetBool(string key, bool? fallback = null) => Get(key, fallback, v => v switch
    {
        bool b => b,
        string s when bool.TryParse(s, out var p) => p,
        long l => l != 0,
        _ => (bool?)null,
    }, "true or false");

    public string GetString(string key, string? fallback = null)
    {
        if (!_values.TryGetValue(key, out var value) || value is null)
            return fallback ?? throw new KeyNotFoundException($"config key '{key}' is missing");
        return value switch
        {
            string s => s,
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            long l => l.ToString(CultureInfo.InvariantCulture),
            bool b => b ? "true" : "false",
            _ => value.ToString() ?? "",
        };
    }

    private T Get<T>(string key, T? fallback, Func<object, T?> convert, string expected) where T : struct
    {
        if (!_values.TryGetValue(key, out var value) || value is null)
            return fallback ?? throw new KeyNotFoundException($"config key '{key}' is missing");
        return convert(value) ?? throw new FormatException($"config key '{key}' must be {expected}, got '{Format(value)}'");
    }

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() =>
        _order.Select(k => new KeyValuePair<string, object?>(k, _values[k])).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public bool Equals(TrialConfig? other) =>
        other is not null && other.Count == Count && _values.All(kv => other._values.TryGetValue(kv.Key, out var v) && ValueEquals(kv.Value, v));

    public override bool Equals(object? obj) => Equals(obj as TrialConfig);

    public override int GetHashCode()
    {
        int hash = 0;
        foreach (var (key, value) in _values) hash ^= HashCode.Combine(key, value is ImmutableArray<object?> ? 1 : value?.GetHashCode() ?? 0);
        return hash;
    }

    /// <summary>"lr=0.01,width=64": the short form used in experiment tags.</summary>
    public override string ToString() => string.Join(",", _order.Select(k => $"{k}={Format(_values[k])}"));

    public static string Format(object? value) => value switch
    {
        null => "null",
        double d => d.ToString("G6", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        ImmutableArray<object?> a => "[" + string.Join(",", a.Select(Format)) + "]",
        TrialConfig c => "{" + c + "}",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    public JsonObject ToJsonObject()
    {
        var obj = new JsonObject();
        foreach (var key in _order) obj[key] = ToNode(_values[key]);
        return obj;
    }

    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer)) WriteTo(writer);
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>Writes the config as a JSON object without building a DOM.</summary>
    public void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        foreach (var key in _order)
        {
            writer.WritePropertyName(key);
            WriteValue(writer, _values[key]);
        }
        writer.WriteEndObject();
    }

    /// <summary>Writes one canonical config value.</summary>
    public static void WriteValue(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null: writer.WriteNullValue(); break;
            case long l: writer.WriteNumberValue(l); break;
            case double d when IsWholeDouble(d): writer.WriteRawValue(WholeDoubleText(d)); break;
            case double d when double.IsFinite(d): writer.WriteNumberValue(d); break;
            case double d: writer.WriteStringValue(d.ToString("R", CultureInfo.InvariantCulture)); break;
            case bool b: writer.WriteBooleanValue(b); break;
            case string s: writer.WriteStringValue(s); break;
            case TrialConfig c: c.WriteTo(writer); break;
            case ImmutableArray<object?> a:
                writer.WriteStartArray();
                foreach (var item in a) WriteValue(writer, item);
                writer.WriteEndArray();
                break;
            default: writer.WriteStringValue(value.ToString()); break;
        }
    }

    public static TrialConfig FromJson(string json) =>
        FromJsonNode(JsonNode.Parse(json) as JsonObject ?? throw new FormatException("a config must be a JSON object"));

    public static TrialConfig FromJsonNode(JsonObject obj) =>
        From(obj.Select(kv => new KeyValuePair<string, object?>(kv.Key, FromNode(kv.Value))));

    public static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        long l => JsonValue.Create(l),
        double d when IsWholeDouble(d) => JsonNode.Parse(WholeDoubleText(d)),
        double d => double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(d.ToString("R", CultureInfo.InvariantCulture)),
        bool b => JsonValue.Create(b),
        string s => JsonValue.Create(s),
        TrialConfig c => c.ToJsonObject(),
        ImmutableArray<object?> a => new JsonArray(a.Select(ToNode).ToArray()),
        _ => JsonValue.Create(value.ToString()),
    };

    public static object? FromNode(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => FromJsonNode(o),
        JsonArray a => a.Select(FromNode).ToImmutableArray(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => v.TryGetValue<long>(out var l) ? (object)l : v.GetValue<double>(),
            _ => null,
        },
        _ => null,
    };

    /// <summary>A whole double is written as "3.0" so that it reads back as a double, not as the integer 3.</summary>
    private static bool IsWholeDouble(double d) => double.IsFinite(d) && d == Math.Floor(d) && Math.Abs(d) < 1e15;

    private static string WholeDoubleText(double d) => d.ToString("F1", CultureInfo.InvariantCulture);

    /// <summary>Brings a CLR value to the config's canonical types; names <paramref name="key"/> when it cannot.</summary>
    public static object? Normalise(object? value, string key) => value switch
    {
        null => null,
        string s => s,
        bool b => b,
        double d => d,
        float f => (double)f,
        decimal m => (double)m,
        long l => l,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        uint u => (long)u,
        ulong u when u <= long.MaxValue => (long)u,
        TrialConfig c => c,
        ImmutableArray<object?> a => a,
        JsonElement e => FromNode(JsonNode.Parse(e.GetRawText())),
        JsonNode n => FromNode(n),
        IEnumerable<KeyValuePair<string, object?>> map => From(map),
        IDictionary dict => From(dict.Keys.Cast<object>().Select(k => new KeyValuePair<string, object?>(k.ToString()!, dict[k]))),
        IEnumerable items => items.Cast<object?>().Select(v => Normalise(v, key)).ToImmutableArray(),
        Enum e => e.ToString(),
        _ => throw new ArgumentException($"config key '{key}' has a value of unsupported type {value.GetType().Name}", key),
    };

    private static bool ValueEquals(object? a, object? b) => (a, b) switch
    {
        (ImmutableArray<object?> x, ImmutableArray<object?> y) => x.Length == y.Length && x.Zip(y).All(p => ValueEquals(p.First, p.Second)),
        _ => Equals(a, b),
    };
}
