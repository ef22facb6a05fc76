using System.Buffers.Binary;
using System.Text;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner;

/// <summary>
/// Issue 13: TensorBoard's HParams dashboard shows the sweep. Everything is read back from the files a real sweep wrote,
/// through an independent TFRecord reader (both masked CRCs checked) and a minimal protobuf reader, against the field
/// numbers of tensorboard/plugins/hparams/api.proto and plugin_data.proto and TensorFlow's event.proto / summary.proto.
/// </summary>
public class TensorBoardHParamsTests
{
    private static readonly TuneConfig ByScore = new() { Metric = "score", Mode = MetricMode.Max };

    private static SearchSpace Space() => new()
    {
        { "lr", Domain.LogUniform(1e-4, 1e-1) },
        { "width", Domain.RandInt(8, 64) },
        { "act", Domain.Choice("relu", "tanh") },
        { "fail", Domain.Grid(true, false) },
        { "fixed", 3 },
    };

    private static RunConfig Config(string storage) => new()
    {
        Name = "exp",
        StoragePath = storage,
        Stop = Stop.AfterIterations(3),
        ResourcesPerTrial = new Resources(cpu: 1),
        Inventory = DeviceInventory.Simulated(2),
        Quiet = true,
    };

    /// <summary>Scores 1, 2, 3 and reports a loss; with fail=true (while <paramref name="failing"/> says so) it throws at step 2.</summary>
    private static TrainFunction Train(Func<bool> failing) => (config, context) => Steps(config, failing);

    private static IEnumerable<Metrics> Steps(TrialConfig config, Func<bool> failing)
    {
        for (int i = 1; i <= 3; i++)
        {
            if (config.GetBool("fail") && failing() && i == 2) throw new InvalidOperationException("boom");
            yield return new Metrics { { "score", (double)i }, { "loss", 1.0 / i } };
        }
    }

    [Fact]
    public async Task A_sweep_writes_the_experiment_with_every_hyperparameter_and_metric_and_each_trial_a_session_that_ended_as_it_did()
    {
        using var temp = new TempDir();

        // Given a sweep of 4 trials over a log range, an integer range, a string choice and a bool grid, half of them crashing
        var tuner = new Tuner(Train(() => true), Space(), ByScore with { NumSamples = 2 }, Config(temp.Path));

        // When it runs to the end
        var grid = await tuner.FitAsync();
        Assert.Equal(2, grid.NumErrors);

        // Then the experiment folder holds one experiment record, after the file_version event
        var top = Directory.GetFiles(grid.ExperimentPath, "events.out.tfevents.*").Single();
        var topEvents = ReadEvents(top);
        Assert.Equal(2, topEvents.Count);
        Assert.Equal("brain.Event:2", topEvents[0].String(3));
        var experiment = PluginData(topEvents[1], "_hparams_/experiment").Message(2);

        // listing each searched dimension with its type (api.proto DataType: STRING 1, BOOL 2, FLOAT64 3) and its domain
        var infos = experiment.Messages(4).ToDictionary(i => i.String(1));
        Assert.Equal(new[] { "lr", "width", "act", "fail" }, experiment.Messages(4).Select(i => i.String(1)));
        Assert.Equal(3ul, infos["lr"].Varint(4));
        Assert.Equal((1e-4, 1e-1), Interval(infos["lr"]));
        Assert.Equal(3ul, infos["width"].Varint(4));
        Assert.Equal((8.0, 64.0), Interval(infos["width"]));
        Assert.Equal(1ul, infos["act"].Varint(4));
        Assert.Equal(new object[] { "relu", "tanh" }, infos["act"].Message(5).Messages(1).Select(ValueOf));
        Assert.Equal(2ul, infos["fail"].Varint(4));
        Assert.Equal(new object[] { true, false }, infos["fail"].Message(5).Messages(1).Select(ValueOf));
        // and the sweep's metric first, then the other numeric result keys, each the tag its scalars are written under
        var metrics = experiment.Messages(5).Select(m => m.Message(1)).ToList();
        Assert.All(metrics, m => Assert.False(m.Has(1), "a metric's group names a sub-run; the trials' scalars are in the run itself"));
        Assert.Equal(new[] { "torchtrials/score", "torchtrials/loss" }, metrics.Select(m => m.String(2)));

        foreach (var trial in grid)
        {
            var events = Directory.GetFiles(trial.LogDirectory!, "events.out.tfevents.*").Order(StringComparer.Ordinal).SelectMany(ReadEvents).ToList();
            // And each trial's run starts a session holding its sampled values under the trial's id
            var start = events.Select(e => TryPluginData(e, "_hparams_/session_start_info")).First(p => p is not null)!.Message(3);
            var hparams = start.Messages(1).ToDictionary(e => e.String(1), e => ValueOf(e.Message(2)));
            Assert.Equal(trial.Config.GetDouble("lr"), (double)hparams["lr"]);
            Assert.Equal((double)trial.Config.GetLong("width"), (double)hparams["width"]);
            Assert.Equal(trial.Config.GetString("act"), (string)hparams["act"]);
            Assert.Equal(trial.Config.GetBool("fail"), (bool)hparams["fail"]);
            Assert.Equal(3.0, (double)hparams["fixed"]);
            Assert.Equal(trial.TrialId, start.String(4));
            double started = start.Double(5);
            Assert.True(started > 1.7e9, $"start_time_secs {started} is seconds since the epoch");

            // and ends it once, STATUS_SUCCESS (1) for a finished trial and STATUS_FAILURE (2) for a crashed one
            var ends = events.Select(e => TryPluginData(e, "_hparams_/session_end_info")).OfType<Proto>().ToList();
            var end = Assert.Single(ends).Message(4);
            Assert.Equal(trial.Status == TrialStatus.Error ? 2ul : 1ul, end.Varint(1));
            Assert.Equal(trial.Config.GetBool("fail"), trial.Status == TrialStatus.Error);
            Assert.True(end.Double(2) >= started);

            // and every metric of the experiment that the trial reported is a scalar tag of its run: the dashboard joins on it
            var tags = events.Where(e => e.Has(5)).SelectMany(e => e.Message(5).Messages(1)).Where(v => v.Has(2)).Select(v => v.String(1)).ToHashSet();
            Assert.Contains("torchtrials/score", tags);
            Assert.Contains("torchtrials/loss", tags);
        }
    }

    [Fact]
    public async Task A_restarted_errored_trial_loses_its_failure_record_so_the_dashboard_shows_how_the_rerun_ended()
    {
        using var temp = new TempDir();

        // Given a sweep whose fail=true trials crashed
        bool failing = true;
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("train", Train(() => failing));
        var first = new Tuner("train", Space(), ByScore, Config(temp.Path), registry).Fit();
        var crashed = first.Single(t => t.Status == TrialStatus.Error);
        Assert.Equal(new[] { 2ul }, SessionEnds(crashed.LogDirectory!));

        // When it is restored with errored trials restarted, and the cause of the crash is gone
        failing = false;
        var second = Tuner.Restore(first.ExperimentPath, "train", new ResumeOptions { RestartErrored = true }, Space(), ByScore, Config(temp.Path), registry).Fit();

        // Then the trial's run holds only its success: TensorBoard keeps the first end record of a run, so the failure had to go
        Assert.Equal(TrialStatus.Terminated, second.Single(t => t.TrialId == crashed.TrialId).Status);
        Assert.Equal(new[] { 1ul }, SessionEnds(crashed.LogDirectory!));
        // and the finished trial, never restarted, keeps its one success
        var finished = first.Single(t => t.Status == TrialStatus.Terminated);
        Assert.Equal(new[] { 1ul }, SessionEnds(finished.LogDirectory!));
    }

    /// <summary>The statuses of every session end record in the run, files in TensorBoard's (name) order.</summary>
    private static List<ulong> SessionEnds(string run) =>
        Directory.GetFiles(run, "events.out.tfevents.*").Order(StringComparer.Ordinal).SelectMany(ReadEvents)
            .Select(e => TryPluginData(e, "_hparams_/session_end_info")).Where(p => p is not null).Select(p => p!.Message(4).Varint(1)).ToList();

    [Fact]
    public void The_protobuf_reader_decodes_every_wire_type_it_is_used_for()
    {
        // field 1 varint 300, field 2 fixed64 1.5, field 3 bytes "hi", field 4 fixed32 7
        var bytes = new byte[] { 0x08, 0xAC, 0x02, 0x11, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x1A, 0x02, (byte)'h', (byte)'i', 0x25, 7, 0, 0, 0 };
        var m = Proto.Parse(bytes);
        Assert.Equal(300ul, m.Varint(1));
        Assert.Equal(1.5, m.Double(2));
        Assert.Equal("hi", m.String(3));
        Assert.Equal(7u, m.Fixed32(4));
    }

    /// <summary>Event.summary (5) .value (1), the one value tagged <paramref name="tag"/>: its HParamsPluginData, checked on the way.</summary>
    private static Proto PluginData(Proto ev, string tag) =>
        TryPluginData(ev, tag) ?? throw new Xunit.Sdk.XunitException($"the event holds no {tag} value");

    private static Proto? TryPluginData(Proto ev, string tag)
    {
        if (!ev.Has(5)) return null;
        var value = ev.Message(5).Messages(1).FirstOrDefault(v => v.String(1) == tag);
        if (value is null) return null;
        // Summary.Value.metadata (9) .plugin_data (1) {plugin_name 1, content 2}
        var plugin = value.Message(9).Message(1);
        Assert.Equal("hparams", plugin.String(1));
        // Summary.Value.tensor (8): metadata.py's NULL_TENSOR, DT_FLOAT (1) of shape [0]
        var tensor = value.Message(8);
        Assert.Equal(1ul, tensor.Varint(1));
        Assert.Single(tensor.Message(2).Messages(2));
        var data = Proto.Parse(plugin.Bytes(2));
        Assert.Equal(0ul, data.Varint(1)); // PLUGIN_DATA_VERSION
        return data;
    }

    /// <summary>HParamInfo.domain_interval (6) {min_value 1, max_value 2}.</summary>
    private static (double, double) Interval(Proto info) => (info.Message(6).Double(1), info.Message(6).Double(2));

    /// <summary>google.protobuf.Value: number_value 2, string_value 3, bool_value 4.</summary>
    private static object ValueOf(Proto value) =>
        value.Has(2) ? value.Double(2) : value.Has(3) ? value.String(3) : value.Has(4) ? value.Varint(4) != 0 : throw new Xunit.Sdk.XunitException("an empty Value");

    /// <summary>Every Event of an event file, through an independent TFRecord reader that checks both masked CRC32C values.</summary>
    private static List<Proto> ReadEvents(string path)
    {
        var file = File.ReadAllBytes(path);
        var events = new List<Proto>();
        int at = 0;
        while (at < file.Length)
        {
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(at));
            Assert.Equal(MaskedCrc32C(file.AsSpan(at, 8)), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 8)));
            var data = file.AsSpan(at + 12, (int)length);
            Assert.Equal(MaskedCrc32C(data), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 12 + (int)length)));
            events.Add(Proto.Parse(data.ToArray()));
            at += 12 + (int)length + 4;
        }
        Assert.Equal(file.Length, at);
        return events;
    }

    /// <summary>TFRecord's mask over CRC32C (Castagnoli, reflected 0x82F63B78), computed bit by bit.</summary>
    private static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0x82F63B78 ^ (crc >> 1) : crc >> 1;
        }
        crc = ~crc;
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8;
    }

    /// <summary>A minimal protobuf reader: each field number's values in order, for wire types 0, 1, 2 and 5.</summary>
    private sealed class Proto
    {
        private readonly Dictionary<int, List<(int Wire, ulong Number, byte[] Bytes)>> _fields = new();

        public static Proto Parse(byte[] data)
        {
            var proto = new Proto();
            int at = 0;
            while (at < data.Length)
            {
                ulong key = ReadVarint(data, ref at);
                int field = (int)(key >> 3), wire = (int)(key & 7);
                (int, ulong, byte[]) value;
                switch (wire)
                {
                    case 0:
                        value = (0, ReadVarint(data, ref at), Array.Empty<byte>());
                        break;
                    case 1:
                        value = (1, BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(at, 8)), Array.Empty<byte>());
                        at += 8;
                        break;
                    case 2:
                        int length = (int)ReadVarint(data, ref at);
                        value = (2, 0, data[at..(at + length)]);
                        at += length;
                        break;
                    case 5:
                        value = (5, BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at, 4)), Array.Empty<byte>());
                        at += 4;
                        break;
                    default:
                        throw new Xunit.Sdk.XunitException($"wire type {wire} at byte {at}");
                }
                if (!proto._fields.TryGetValue(field, out var list)) proto._fields[field] = list = new();
                list.Add(value);
            }
            return proto;
        }

        public bool Has(int field) => _fields.ContainsKey(field);

        public ulong Varint(int field) => Has(field) ? One(field, 0).Number : 0;

        public double Double(int field) => Has(field) ? BitConverter.UInt64BitsToDouble(One(field, 1).Number) : 0;

        public uint Fixed32(int field) => Has(field) ? (uint)One(field, 5).Number : 0;

        public byte[] Bytes(int field) => Has(field) ? One(field, 2).Bytes : Array.Empty<byte>();

        public string String(int field) => Encoding.UTF8.GetString(Bytes(field));

        public Proto Message(int field) => Parse(Bytes(field));

        public IEnumerable<Proto> Messages(int field) =>
            _fields.TryGetValue(field, out var list) ? list.Select(v => Parse(v.Bytes)) : Enumerable.Empty<Proto>();

        private (int Wire, ulong Number, byte[] Bytes) One(int field, int wire)
        {
            var value = _fields[field][^1]; // proto3: the last value of a singular field wins
            Assert.Equal(wire, value.Wire);
            return value;
        }

        private static ulong ReadVarint(byte[] data, ref int at)
        {
            ulong value = 0;
            for (int shift = 0; ; shift += 7)
            {
                byte b = data[at++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return value;
            }
        }
    }
}
