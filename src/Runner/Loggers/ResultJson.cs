using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Loggers;

/// <summary>Fast JSON of results (one Utf8JsonWriter pass, no DOM), shared by the store and the result.json logger.</summary>
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
        var buffer = _buffer ??= new ArrayBufferWriter<byte>(512);
        buffer.ResetWrittenCount();
        var writer = _writer ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        Write(writer, result, config);
        writer.Flush();
        return buffer.WrittenSpan;
    }

    /// <summary>
    /// The store's form: metrics and the per-result fields only (trial id, tag, host and pid live in the trial's row).
    /// UTF-8 in a per-thread buffer valid until the next call on this thread.
    /// </summary>
    public static ReadOnlySpan<byte> SerializeCompactUtf8(TrialResult result)
    {
        var buffer = _buffer ??= new ArrayBufferWriter<byte>(512);
        buffer.ResetWrittenCount();
        var writer = _writer ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
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
        writer.WriteNumber(TrialResult.TimestampKey, result.Timestamp);
        writer.WriteEndObject();
        writer.Flush();
        return buffer.WrittenSpan;
    }

    public static void Write(Utf8JsonWriter writer, TrialResult result, TrialConfig? config = null)
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
        writer.WriteString(TrialResult.TrialIdKey, result.TrialId);
        writer.WriteString(TrialResult.ExperimentTagKey, result.ExperimentTag);
        writer.WriteNumber(TrialResult.TimestampKey, result.Timestamp);
        writer.WriteString(TrialResult.DateKey, result.Date);
        writer.WriteNumber(TrialResult.PidKey, result.Pid);
        writer.WriteString(TrialResult.HostnameKey, result.Hostname);
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
