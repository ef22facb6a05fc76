using System.Buffers.Binary;
using System.Text;
using TorchTrials.Runner.Report;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Loggers;

/// <summary>How a session ended, as TensorBoard's hparams api.proto numbers <c>Status</c>.</summary>
public enum HParamsSessionStatus
{
    Unknown = 0,
    Success = 1,
    Failure = 2,
    Running = 3,
}

/// <summary>
/// The serialized <c>Summary</c> protos of TensorBoard's HParams plugin, as tensorboard/plugins/hparams/summary_v2.py
/// builds them (hparams_pb, hparams_config_pb) and summary.py (session_end_pb): one value tagged
/// <c>_hparams_/experiment</c>, <c>_hparams_/session_start_info</c> or <c>_hparams_/session_end_info</c>, whose metadata's
/// plugin_data is {plugin_name "hparams", content = HParamsPluginData{version 0, one of experiment / session_start_info /
/// session_end_info}} (plugin_data.proto, api.proto), with metadata.py's NULL_TENSOR (an empty DT_FLOAT tensor of shape [0]).
/// Deviations: integer ranges are FLOAT64 intervals (as summary_v2's IntInterval); categories keep the search space's order
/// (summary_v2's Discrete sorts them); categories that are not all bool, all numbers or all strings, and values that are
/// not scalars, are written as their text.
/// </summary>
public static class HParamsSummaries
{
    public const string ExperimentTag = "_hparams_/experiment";
    public const string SessionStartTag = "_hparams_/session_start_info";
    public const string SessionEndTag = "_hparams_/session_end_info";
    public const string PluginName = "hparams";

    /// <summary>api.proto's DataType.</summary>
    public enum DataType
    {
        Unset = 0,
        String = 1,
        Bool = 2,
        Float64 = 3,
    }

    /// <summary>Experiment{time_created_secs, hparam_infos, metric_infos}; each metric is MetricName{group "", tag}.</summary>
    public static byte[] Experiment(IReadOnlyList<ParamDomain> hparams, IEnumerable<string> metricTags, double timeCreatedSecs)
    {
        var experiment = new ProtoWriter();
        experiment.Double(3, timeCreatedSecs);
        foreach (var domain in hparams) experiment.Message(4, HParamInfo(domain));
        foreach (var tag in metricTags)
        {
            var name = new ProtoWriter();
            name.String(2, tag);
            var info = new ProtoWriter();
            info.Message(1, name);
            experiment.Message(5, info);
        }
        return Summary(ExperimentTag, 2, experiment);
    }

    /// <summary>SessionStartInfo{hparams, group_name, start_time_secs}; keys in ordinal order, as summary_v2 sorts them.</summary>
    public static byte[] SessionStart(IReadOnlyDictionary<string, object?> hparams, string groupName, double startTimeSecs, IReadOnlySet<string>? asText = null)
    {
        var start = new ProtoWriter();
        foreach (var key in hparams.Keys.Order(StringComparer.Ordinal))
        {
            if (hparams[key] is null) continue;
            var entry = new ProtoWriter();
            entry.String(1, key);
            entry.Message(2, Value(hparams[key], asText?.Contains(key) == true));
            start.Message(1, entry);
        }
        start.String(4, groupName);
        start.Double(5, startTimeSecs);
        return Summary(SessionStartTag, 3, start);
    }

    /// <summary>SessionEndInfo{status, end_time_secs}.</summary>
    public static byte[] SessionEnd(HParamsSessionStatus status, double endTimeSecs)
    {
        var end = new ProtoWriter();
        end.Varint(1, (ulong)status);
        end.Double(2, endTimeSecs);
        return Summary(SessionEndTag, 4, end);
    }

    /// <summary>The type TensorBoard is told for <paramref name="domain"/>: numbers for ranges, else what its categories share.</summary>
    public static DataType TypeOf(ParamDomain domain)
    {
        if (domain.Kind != ParamKind.Categorical) return DataType.Float64;
        var values = domain.Categories.Where(v => v is not null).ToList();
        if (values.Count > 0 && values.All(v => v is bool)) return DataType.Bool;
        if (values.Count > 0 && values.All(IsNumber)) return DataType.Float64;
        return DataType.String;
    }

    private static ProtoWriter HParamInfo(ParamDomain domain)
    {
        var info = new ProtoWriter();
        info.String(1, domain.Name);
        var type = TypeOf(domain);
        info.Varint(4, (ulong)type);
        if (domain.Kind == ParamKind.Categorical)
        {
            var list = new ProtoWriter();
            foreach (var value in domain.Categories.Where(v => v is not null)) list.Message(1, Value(value, type == DataType.String));
            info.Message(5, list);
        }
        else
        {
            var interval = new ProtoWriter();
            interval.Double(1, domain.Low);
            interval.Double(2, domain.High);
            info.Message(6, interval);
        }
        return info;
    }

    /// <summary>google.protobuf.Value: number_value (2), string_value (3) or bool_value (4).</summary>
    private static ProtoWriter Value(object? value, bool asText)
    {
        var v = new ProtoWriter();
        if (asText || value is not (bool or string) && !IsNumber(value)) v.String(3, value as string ?? TrialConfig.Format(value), always: true);
        else if (value is bool b) v.Varint(4, b ? 1u : 0u, always: true);
        else if (value is string s) v.String(3, s, always: true);
        else v.Double(2, Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture), always: true);
        return v;
    }

    private static bool IsNumber(object? value) => value is long or int or double or float;

    /// <summary>Summary{value{tag, metadata{plugin_data{plugin_name, content}}, tensor = NULL_TENSOR}}.</summary>
    private static byte[] Summary(string tag, int dataField, ProtoWriter data)
    {
        var pluginData = new ProtoWriter(); // HParamsPluginData; version 0 is proto3's default and not written
        pluginData.Message(dataField, data);
        var plugin = new ProtoWriter();
        plugin.String(1, PluginName);
        plugin.Bytes(2, pluginData.ToArray());
        var metadata = new ProtoWriter();
        metadata.Message(1, plugin);
        var value = new ProtoWriter();
        value.String(1, tag);
        value.Message(9, metadata);
        value.Bytes(8, NullTensor);
        var summary = new ProtoWriter();
        summary.Message(1, value);
        return summary.ToArray();
    }

    /// <summary>TensorProto{dtype DT_FLOAT (1), tensor_shape{dim{size 0}}}: the size-0 Dim serializes empty.</summary>
    private static ReadOnlySpan<byte> NullTensor => [0x08, 0x01, 0x12, 0x02, 0x12, 0x00];

    /// <summary>The few proto3 encodings these messages need; fields at their default value are left out unless asked.</summary>
    private sealed class ProtoWriter
    {
        private readonly MemoryStream _bytes = new();

        public byte[] ToArray() => _bytes.ToArray();

        public void Varint(int field, ulong value, bool always = false)
        {
            if (value == 0 && !always) return;
            Tag(field, 0);
            WriteVarint(value);
        }

        public void Double(int field, double value, bool always = false)
        {
            if (value == 0 && !always) return;
            Tag(field, 1);
            Span<byte> eight = stackalloc byte[8];
            BinaryPrimitives.WriteDoubleLittleEndian(eight, value);
            _bytes.Write(eight);
        }

        public void String(int field, string value, bool always = false)
        {
            if (value.Length == 0 && !always) return;
            Bytes(field, Encoding.UTF8.GetBytes(value));
        }

        public void Bytes(int field, ReadOnlySpan<byte> value)
        {
            Tag(field, 2);
            WriteVarint((ulong)value.Length);
            _bytes.Write(value);
        }

        public void Message(int field, ProtoWriter message) => Bytes(field, message._bytes.GetBuffer().AsSpan(0, (int)message._bytes.Length));

        private void Tag(int field, int wireType) => WriteVarint((ulong)((field << 3) | wireType));

        private void WriteVarint(ulong value)
        {
            while (value >= 0x80)
            {
                _bytes.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }
            _bytes.WriteByte((byte)value);
        }
    }
}
