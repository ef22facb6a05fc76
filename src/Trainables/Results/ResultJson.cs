using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TorchTrials.Trainables;

/// <summary>
/// The one home of a result's JSON form: written by the result.json logger and the experiment store (one
/// Utf8JsonWriter pass, no DOM) and read back by the store, checkpoints and resumes.
/// </summary>
public static class ResultJson
{
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? _buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? _writer;

    /// <summary>One JSON object: metrics, auto-filled fields, and the config under "config" when given.</summary>
    public static string Serialize(TrialResult result, TrialConfig? config = null) => Encoding.UTF8.GetString(SerializeUtf8(result, config));

    /// <summary>As <see cref="Serialize"/>, as UTF-8 in a per-thread buffer valid until the next call on this thread.</summary>
    public static ReadOnlySpan<byte> SerializeUtf8(TrialResult result, TrialConfig? config = null)
    {
        var writer = Begin(out var buffer);
        Write(writer, result, compact: false, config);
        writer.Flush();
        return buffer.WrittenSpan;
    }

    /// <summary>
    /// The store's form: metrics and the per-result fields only (trial id, tag, host and pid live in the trial's row).
    /// UTF-8 in a per-thread buffer valid until the next call on this thread.
    /// </summary>
    public static ReadOnlySpan<byte> SerializeCompactUtf8(TrialResult result)
    {
        var writer = Begin(out var buffer);
        Write(writer, result, compact: true, config: null);
        writer.Flush();
        return buffer.WrittenSpan;
    }

    public static void Write(Utf8JsonWriter writer, TrialResult result, TrialConfig? config = null) => Write(writer, result, compact: false, config);

    /// <summary>A result from its JSON form (either form; fields the compact form leaves out are empty).</summary>
    public static TrialResult Parse(string json) => Read(JsonNode.Parse(json)!.AsObject());

    /// <summary>A result from its JSON object: keys other than the auto-filled fields are its metrics.</summary>
    public static TrialResult Read(JsonObject obj)
    {
        var metrics = new List<KeyValuePair<string, object>>();
        foreach (var (key, node) in obj)
            if (!TrialResult.IsAutoKey(key) && TrialConfig.FromNode(node) is { } v and (double or long or bool or string))
                metrics.Add(new(key, v));
        long L(string k) => obj[k] is JsonValue v && v.TryGetValue<long>(out var l) ? l : (obj[k] is JsonValue d && d.TryGetValue<double>(out var x) ? (long)x : 0);
        long? NL(string k) => obj.ContainsKey(k) && obj[k] is not null ? L(k) : null;
        double D(string k) => obj[k] is JsonValue v && v.TryGetValue<double>(out var d) ? d : 0;
        string S(string k) => obj[k] is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";
        return new TrialResult
        {
            Metrics = metrics,
            TrainingIteration = L(TrialResult.TrainingIterationKey),
            TimeThisIterS = D(TrialResult.TimeThisIterKey),
            TimeTotalS = D(TrialResult.TimeTotalKey),
            TimeSinceRestore = D(TrialResult.TimeSinceRestoreKey),
            IterationsSinceRestore = L(TrialResult.IterationsSinceRestoreKey),
            TimestepsSinceRestore = L(TrialResult.TimestepsSinceRestoreKey),
            TimestepsTotal = NL(TrialResult.TimestepsTotalKey),
            EpisodesTotal = NL(TrialResult.EpisodesTotalKey),
            Done = obj[TrialResult.DoneKey] is JsonValue dv && dv.TryGetValue<bool>(out var done) && done,
            TrialId = S(TrialResult.TrialIdKey),
            ExperimentTag = S(TrialResult.ExperimentTagKey),
            Timestamp = L(TrialResult.TimestampKey),
            Pid = (int)L(TrialResult.PidKey),
            Hostname = S(TrialResult.HostnameKey),
        };
    }

    private static Utf8JsonWriter Begin(out ArrayBufferWriter<byte> buffer)
    {
        buffer = _buffer ??= new ArrayBufferWriter<byte>(512);
        buffer.ResetWrittenCount();
        var writer = _writer ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        return writer;
    }

    /// <summary>The fields in their fixed order; <paramref name="compact"/> leaves out those the trial's own row holds.</summary>
    private static void Write(Utf8JsonWriter writer, TrialResult result, bool compact, TrialConfig? config)
    {
        writer.WriteStartObject();
        foreach (var (key, value) in result.Metrics) WriteValue(writer, key, value);
        writer.WriteNumber(TrialResult.TrainingIterationKey, result.TrainingIteration);
        WriteDouble(writer, TrialResult.TimeThisIterKey, result.TimeThisIterS);
        WriteDouble(writer, TrialResult.TimeTotalKey, result.TimeTotalS);
        WriteDouble(writer, TrialResult.TimeSinceRestoreKey, result.TimeSinceRestore);
        writer.WriteNumber(TrialResult.IterationsSinceRestoreKey, result.IterationsSinceRestore);
        writer.WriteNumber(TrialResult.TimestepsSinceRestoreKey, result.TimestepsSinceRestore);
        if (result.TimestepsTotal is { } ts) writer.WriteNumber(TrialResult.TimestepsTotalKey, ts);
        if (result.EpisodesTotal is { } ep) writer.WriteNumber(TrialResult.EpisodesTotalKey, ep);
        writer.WriteBoolean(TrialResult.DoneKey, result.Done);
        if (!compact)
        {
            writer.WriteString(TrialResult.TrialIdKey, result.TrialId);
            writer.WriteString(TrialResult.ExperimentTagKey, result.ExperimentTag);
        }
        writer.WriteNumber(TrialResult.TimestampKey, result.Timestamp);
        if (!compact)
        {
            writer.WriteString(TrialResult.DateKey, result.Date);
            writer.WriteNumber(TrialResult.PidKey, result.Pid);
            writer.WriteString(TrialResult.HostnameKey, result.Hostname);
        }
        if (config is not null)
        {
            writer.WritePropertyName("config");
            config.WriteTo(writer);
        }
        writer.WriteEndObject();
    }

    private static void WriteValue(Utf8JsonWriter writer, string key, object value)
    {
        switch (value)
        {
            case double d: WriteDouble(writer, key, d); break;
            case long l: writer.WriteNumber(key, l); break;
            case bool b: writer.WriteBoolean(key, b); break;
            case string s: writer.WriteString(key, s); break;
            default: writer.WriteString(key, Convert.ToString(value, CultureInfo.InvariantCulture)); break;
        }
    }

    /// <summary>JSON has no NaN or infinities: they are written as strings, as Python's json module would not but pandas reads.</summary>
    private static void WriteDouble(Utf8JsonWriter writer, string key, double value)
    {
        if (double.IsFinite(value)) writer.WriteNumber(key, value);
        else writer.WriteString(key, value.ToString(CultureInfo.InvariantCulture));
    }
}
