using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using ScalarEvent = YamlDotNet.Core.Events.Scalar;
using YamlDotNet.RepresentationModel;

namespace TorchTrials.Runner.Spec;

/// <summary>One problem in a sweep spec: where (key path and line) and what is wrong.</summary>
public sealed record SpecError(string Path, int? Line, string Message)
{
    public override string ToString() => Line is { } l ? $"line {l}: {Path}: {Message}" : $"{Path}: {Message}";
}

/// <summary>Every problem found in a sweep spec, reported together.</summary>
public sealed class SpecValidationException(string source, IReadOnlyList<SpecError> errors)
    : Exception($"{source}: {errors.Count} problem{(errors.Count == 1 ? "" : "s")}: " + string.Join("; ", errors))
{
    public string SpecSource { get; } = source;

    public IReadOnlyList<SpecError> Errors { get; } = errors;
}

/// <summary>YAML to JSON nodes (YAML 1.2 core schema for untagged scalars), remembering each key path's line.</summary>
public static class YamlJson
{
    public static (JsonNode? Root, Dictionary<string, int> Lines) Parse(string text, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new SpecValidationException(source, new[] { new SpecError("(document)", (int)e.Start.Line, $"not valid YAML: {e.InnerException?.Message ?? e.Message}") });
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner fails this way on some unclosed flow collections, without a position: find it ourselves.
            throw new SpecValidationException(source, new[] { UnclosedCollection(text) });
        }
        var lines = new Dictionary<string, int>(StringComparer.Ordinal);
        if (stream.Documents.Count == 0) return (null, lines);
        return (Convert(stream.Documents[0].RootNode, "", lines), lines);
    }

    /// <summary>Replays the parser's events up to the failure and names the innermost flow collection left open, with its key and line.</summary>
    private static SpecError UnclosedCollection(string text)
    {
        var open = new List<(string? Key, int Line, bool Flow, bool Mapping, bool NextIsKey)>();
        string? key = null;
        int line = 1;
        var parser = new Parser(new StringReader(text));
        try
        {
            while (parser.MoveNext())
            {
                var current = parser.Current!;
                line = (int)current.Start.Line;
                bool underKey = open.Count > 0 && open[^1].Mapping;
                switch (current)
                {
                    case ScalarEvent scalar when underKey && open[^1].NextIsKey:
                        key = scalar.Value;
                        open[^1] = open[^1] with { NextIsKey = false };
                        break;
                    case ScalarEvent when underKey:
                        open[^1] = open[^1] with { NextIsKey = true };
                        break;
                    case MappingStart or SequenceStart:
                        string? under = underKey ? key : null;
                        if (underKey) open[^1] = open[^1] with { NextIsKey = true };
                        bool flow = current is MappingStart m ? m.Style == MappingStyle.Flow : ((SequenceStart)current).Style == SequenceStyle.Flow;
                        open.Add((under, line, flow, current is MappingStart, true));
                        break;
                    case MappingEnd or SequenceEnd:
                        if (open.Count > 0) open.RemoveAt(open.Count - 1);
                        break;
                }
            }
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException)
        {
        }
        int innermost = open.FindLastIndex(o => o.Flow);
        if (innermost < 0) return new SpecError("(document)", line, "not valid YAML: the parser stopped here");
        var path = string.Join(".", open.Take(innermost + 1).Select(o => o.Key).Where(k => k is not null));
        var (_, at, _, mapping, _) = open[innermost];
        return new SpecError(path.Length > 0 ? path : "(document)", at, $"not valid YAML: the flow {(mapping ? "mapping '{' opened" : "sequence '[' opened")} here is never closed");
    }

    private static JsonNode? Convert(YamlNode node, string path, Dictionary<string, int> lines)
    {
        lines.TryAdd(path, (int)node.Start.Line);
        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JsonObject();
                foreach (var (k, v) in map.Children)
                {
                    var key = (k as YamlScalarNode)?.Value ?? k.ToString();
                    var childPath = path.Length == 0 ? key : $"{path}.{key}";
                    lines[childPath] = (int)k.Start.Line;
                    obj[key] = Convert(v, childPath, lines);
                }
                return obj;
            case YamlSequenceNode seq:
                var arr = new JsonArray();
                int i = 0;
                foreach (var item in seq.Children) arr.Add(Convert(item, $"{path}[{i++}]", lines));
                return arr;
            case YamlScalarNode scalar:
                return Scalar(scalar);
            default:
                return null;
        }
    }

    private static JsonNode? Scalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded)
            return JsonValue.Create(text);
        switch (text)
        {
            case "" or "~" or "null" or "Null" or "NULL": return null;
            case "true" or "True" or "TRUE": return JsonValue.Create(true);
            case "false" or "False" or "FALSE": return JsonValue.Create(false);
            case ".inf" or ".Inf" or "+.inf": return JsonValue.Create(double.PositiveInfinity.ToString(CultureInfo.InvariantCulture));
            case "-.inf" or "-.Inf": return JsonValue.Create(double.NegativeInfinity.ToString(CultureInfo.InvariantCulture));
        }
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)) return JsonValue.Create(d);
        return JsonValue.Create(text);
    }
}

/// <summary>
/// Reads one object of a spec: typed getters that record a problem (instead of throwing) when a value is missing, of the
/// wrong type or out of range, and <see cref="Finish"/> that reports every key nobody asked for. Errors are shared by all
/// readers of one spec, so the whole spec is checked before anything runs.
/// </summary>
public sealed class SpecReader
{
    private readonly JsonObject _object;
    private readonly string _path;
    private readonly IReadOnlyDictionary<string, int> _lines;
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public SpecReader(JsonObject obj, string path, IReadOnlyDictionary<string, int> lines, List<SpecError> errors)
    {
        _object = obj;
        _path = path;
        _lines = lines;
        Errors = errors;
    }

    public List<SpecError> Errors { get; }

    /// <summary>Line numbers by key path, shared by every reader of the spec.</summary>
    public IReadOnlyDictionary<string, int> Lines => _lines;

    public JsonObject Object => _object;

    public string Path => _path;

    public bool Has(string key) => _object.ContainsKey(key);

    public string KeyPath(string key) => _path.Length == 0 ? key : $"{_path}.{key}";

    public void Error(string key, string message) => Errors.Add(new SpecError(KeyPath(key), LineOf(KeyPath(key)), message));

    public int? LineOf(string path) => _lines.TryGetValue(path, out var line) ? line : null;

    public JsonNode? Raw(string key)
    {
        _read.Add(key);
        return _object[key];
    }

    public string? String(string key, string? fallback = null, IReadOnlyCollection<string>? allowed = null)
    {
        var node = Raw(key);
        if (node is null) return fallback;
        var text = node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : node.ToJsonString();
        if (allowed is not null && !allowed.Contains(text))
        {
            Error(key, $"must be one of {string.Join(", ", allowed)}, got '{text}'{DidYouMean.Suggest(text, allowed)}");
            return fallback;
        }
        return text;
    }

    public double? Double(string key, double? fallback = null, double? min = null, double? max = null, bool exclusiveMin = false)
    {
        var node = Raw(key);
        if (node is null) return fallback;
        if (!TryNumber(node, out var d))
        {
            Error(key, $"must be a number, got {node.ToJsonString()}");
            return fallback;
        }
        if (double.IsNaN(d) || (min is { } lo && (exclusiveMin ? d <= lo : d < lo)) || (max is { } hi && d > hi))
        {
            var range = (min, max) switch
            {
                (not null, not null) => $"between {min} and {max}",
                (not null, null) => exclusiveMin ? $"greater than {min}" : $"at least {min}",
                _ => $"at most {max}",
            };
            Error(key, $"must be {range}, got {d.ToString(CultureInfo.InvariantCulture)}");
            return fallback;
        }
        return d;
    }

    /// <summary>A JSON number (integral or not) or numeric text such as ".inf".</summary>
    public static bool TryNumber(JsonNode? node, out double value)
    {
        value = double.NaN;
        if (node is not JsonValue v) return false;
        if (v.TryGetValue<long>(out var l)) { value = l; return true; }
        if (v.TryGetValue<double>(out value)) return true;
        return v.TryGetValue<string>(out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }

    public int? Int(string key, int? fallback = null, int? min = null, int? max = null)
    {
        var node = Raw(key);
        if (node is null) return fallback;
        if (node is not JsonValue v || !v.TryGetValue<long>(out var l) || l is > int.MaxValue or < int.MinValue)
        {
            Error(key, $"must be a whole number, got {node.ToJsonString()}");
            return fallback;
        }
        if ((min is { } lo && l < lo) || (max is { } hi && l > hi))
        {
            Error(key, min is not null && max is not null ? $"must be between {min} and {max}, got {l}" : min is not null ? $"must be at least {min}, got {l}" : $"must be at most {max}, got {l}");
            return fallback;
        }
        return (int)l;
    }

    public bool? Bool(string key, bool? fallback = null)
    {
        var node = Raw(key);
        if (node is null) return fallback;
        if (node is JsonValue v && v.TryGetValue<bool>(out var b)) return b;
        Error(key, $"must be true or false, got {node.ToJsonString()}");
        return fallback;
    }

    /// <summary>A byte count: a whole number, or text such as "512MiB", "4GiB", "1.5GB".</summary>
    public long? Bytes(string key, long? fallback = null)
    {
        var node = Raw(key);
        if (node is null) return fallback;
        if (node is JsonValue v && v.TryGetValue<long>(out var l) && l >= 0) return l;
        if (node is JsonValue s && s.TryGetValue<string>(out var text) && ParseBytes(text) is { } parsed) return parsed;
        Error(key, $"must be a byte count such as 2147483648 or \"2GiB\", got {node.ToJsonString()}");
        return fallback;
    }

    public SpecReader? Child(string key)
    {
        var node = Raw(key);
        if (node is null) return null;
        if (node is JsonObject o) return new SpecReader(o, KeyPath(key), _lines, Errors);
        Error(key, $"must be a mapping (key: value lines), got {node.ToJsonString()}");
        return null;
    }

    public JsonObject? ObjectValue(string key)
    {
        var node = Raw(key);
        if (node is null) return null;
        if (node is JsonObject o) return o;
        Error(key, $"must be a mapping, got {node.ToJsonString()}");
        return null;
    }

    /// <summary>Reports every key that no getter read, with a suggestion when one is close to a known key.</summary>
    public void Finish(IReadOnlyCollection<string>? known = null)
    {
        var expected = known ?? _read;
        foreach (var (key, _) in _object)
            if (!_read.Contains(key))
                Error(key, $"unknown key{DidYouMean.Suggest(key, expected.Concat(_read).Distinct().ToList())}");
    }

    public static long? ParseBytes(string text)
    {
        text = text.Trim();
        var units = new (string Suffix, double Factor)[]
        {
            ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("B", 1),
        };
        foreach (var (suffix, factor) in units)
        {
            if (!text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)) continue;
            var number = text[..^suffix.Length].Trim();
            if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= 0) return (long)(n * factor);
            return null;
        }
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var plain) ? plain : null;
    }
}
