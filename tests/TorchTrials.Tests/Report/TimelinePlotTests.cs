using TorchTrials.Runner;
using TorchTrials.Runner.Report;
using TorchTrials.Runner.Store;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Report;

/// <summary>Picture 6 from sweeps built in memory: which row each running span gets, with and without recorded slots.</summary>
public class TimelinePlotTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 3, 8, 0, 0, TimeSpan.Zero);

    private static SweepTrial Ran(string id, TrialStatus status, params (double Start, double? End)[] spans) =>
        new(id, long.Parse(id[1..]), status, new Dictionary<string, object?>(), [],
            spans.Select(s => new RunningSpan(T0.AddSeconds(s.Start), s.End is { } e ? T0.AddSeconds(e) : null)).ToList());

    private static string RowOf(TimelineLayout layout, string trialId) =>
        layout.Rows[layout.Bars.Single(b => b.Trial.Id == trialId).Row].Label;

    [Fact]
    public void Without_slot_records_overlapping_spans_get_different_rows_and_a_gap_lets_a_row_be_reused()
    {
        // t1 [0,10] and t2 [5,15] overlap: rows 1 and 2. t3 starts at 12, after t1 ended: row 1 again.
        // t4 starts at 16: t2 ended at 15, t3 runs to 20, so row 2. At most two ran at once: two rows.
        var data = new SweepData
        {
            Trials =
            [
                Ran("t1", TrialStatus.Terminated, (0, 10)),
                Ran("t2", TrialStatus.Terminated, (5, 15)),
                Ran("t3", TrialStatus.Error, (12, 20)),
                Ran("t4", TrialStatus.Running, (16, null)),
                Ran("t5", TrialStatus.Pending),
            ],
        };

        var layout = TimelinePlot.Layout(data)!;

        Assert.False(layout.SlotsRecorded);
        Assert.Equal(new[] { "1", "2" }, layout.Rows.Select(r => r.Label));
        Assert.Equal(("1", "2", "1", "2"), (RowOf(layout, "t1"), RowOf(layout, "t2"), RowOf(layout, "t3"), RowOf(layout, "t4")));
        Assert.DoesNotContain(layout.Bars, b => b.Trial.Id == "t5");
        // the open span of the running trial ends at the latest time the store knows of: t3's end at 20 s
        var open = layout.Bars.Single(b => b.Trial.Id == "t4");
        Assert.True(open is { Open: true, Start: 16, End: 20 }, open.ToString());
        Assert.Equal(20, layout.Seconds);

        var plot = TimelinePlot.Draw(data)!;
        Assert.Equal(TimelinePlot.UnrecordedAxis, plot.Axes.Left.Label.Text);
    }

    [Fact]
    public void With_slot_records_trials_group_under_their_device_or_fused_array_with_one_row_per_lane()
    {
        // GPU0 ran t1 [0,10] and t2 [2,6] at once (two rows) and t3 [6,9] after t2 (t2's row again); GPU1 ran t4.
        // Array a1 ran lanes 0 and 2 (lane 1 stayed idle, still a row). t7 kept no record (an older trial resumed).
        var data = new SweepData
        {
            Trials =
            [
                Ran("t1", TrialStatus.Terminated, (0, 10)) with { Slot = "GPU0" },
                Ran("t2", TrialStatus.Terminated, (2, 6)) with { Slot = "GPU0", StoppedBy = "AshaScheduler" },
                Ran("t3", TrialStatus.Terminated, (6, 9)) with { Slot = "GPU0" },
                Ran("t4", TrialStatus.Paused, (1, 4), (7, 8)) with { Slot = "GPU1" },
                Ran("t5", TrialStatus.Terminated, (3, 12)) with { Slot = "GPU1", Lane = "a1.0" },
                Ran("t6", TrialStatus.Terminated, (3, 11)) with { Slot = "GPU1", Lane = "a1.2" },
                Ran("t7", TrialStatus.Terminated, (5, 7)),
            ],
        };

        var layout = TimelinePlot.Layout(data)!;

        Assert.True(layout.SlotsRecorded);
        Assert.Equal(new[] { "GPU0 #1", "GPU0 #2", "GPU1", "a1.0", "a1.1", "a1.2", "not recorded" }, layout.Rows.Select(r => r.Label));
        Assert.Equal(new[] { "GPU0", "GPU0", "GPU1", "a1", "a1", "a1", "" }, layout.Rows.Select(r => r.Group));
        Assert.Equal(("GPU0 #1", "GPU0 #2", "GPU0 #2"), (RowOf(layout, "t1"), RowOf(layout, "t2"), RowOf(layout, "t3")));
        Assert.All(layout.Bars.Where(b => b.Trial.Id == "t4"), b => Assert.Equal("GPU1", layout.Rows[b.Row].Label));
        Assert.Equal(2, layout.Bars.Count(b => b.Trial.Id == "t4"));
        Assert.Equal(("a1.0", "a1.2", "not recorded"), (RowOf(layout, "t5"), RowOf(layout, "t6"), RowOf(layout, "t7")));

        var plot = TimelinePlot.Draw(data)!;
        Assert.Equal(new[] { "terminated: 5 trials", "stopped early: 1 trial", "paused: 1 trial" }, plot.Legend.ManualItems.Select(i => i.LabelText));
        PictureChecks.AssertPicture(ReportStyle.Png(plot), ReportStyle.Width, ReportStyle.Height, "timeline");
    }

    [Fact]
    public void A_sweep_where_no_trial_ever_ran_has_no_timeline_and_the_library_says_why()
    {
        var data = new SweepData { Trials = [Ran("t1", TrialStatus.Pending), Ran("t2", TrialStatus.Pending)] };

        Assert.Null(TimelinePlot.Layout(data));
        Assert.Null(TimelinePlot.Draw(data));
        using var temp = new TempDir();
        Assert.DoesNotContain(SweepReport.Write(data, temp.Path).Pictures, p => Path.GetFileName(p) == "timeline.png");
        var e = Assert.Throws<InvalidOperationException>(() => new SweepPlots(data).Timeline());
        Assert.Contains("no trial ever ran", e.Message);
    }

    [Fact]
    public void The_store_keeps_the_slot_a_trial_ran_in_beside_its_lane()
    {
        var trial = new Trial("mlp_digits", TrialConfig.From(("lr", 0.01)), trialId: "t1") { Slot = "GPU1", Lane = "a2.3" };

        var decoded = TrialStateCodec.Decode(new StoredTrial(TrialStateCodec.Encode(trial), []));
        var alone = TrialStateCodec.Decode(new StoredTrial(TrialStateCodec.Encode(new Trial("mlp_digits", trialId: "t2")), []));

        Assert.Equal(("GPU1", "a2.3"), (decoded.Slot, decoded.Lane));
        Assert.Null(alone.Slot);
    }
}
