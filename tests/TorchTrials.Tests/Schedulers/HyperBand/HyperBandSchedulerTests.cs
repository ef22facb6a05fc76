using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Schedulers.HyperBand;

public class HyperBandSchedulerTests
{
    private static HyperBandScheduler HyperBand(double maxT = 81, double eta = 3) =>
        new(new HyperBandOptions { Metric = "score", Mode = MetricMode.Max, MaxT = maxT, ReductionFactor = eta });

    private static SchedulerDecision Report(HyperBandScheduler hb, FakeTrialControl control, Trial trial, long t, double score)
    {
        trial.Status = TrialStatus.Running;
        var decision = hb.OnTrialResult(control, trial, Results.At(t, score));
        if (decision == SchedulerDecision.Pause) trial.Status = TrialStatus.Paused;
        if (decision == SchedulerDecision.Stop) trial.Status = TrialStatus.Terminated;
        return decision;
    }

    [Fact]
    public void Brackets_follow_the_papers_n_and_r_for_max_t_81_and_eta_3()
    {
        // s_max + 1 = round(log 81 / log 3) + 1 = 5; n0 = ceil(5 / (s + 1) * 3^s) = 5, 8 (7.5), 15, 34 (33.75), 81;
        // r0 = int(81 * 3^-s) = 81, 27, 9, 3, 1.
        var hb = HyperBand();
        Assert.Equal(5, hb.BracketsPerBand);
        Assert.Equal(new[] { (5, 81), (8, 27), (15, 9), (34, 3), (81, 1) }, hb.BracketShapes);
    }

    [Fact]
    public void Trials_fill_brackets_in_order_and_spill_into_a_new_band()
    {
        var control = new FakeTrialControl();
        var hb = HyperBand();
        var placements = new List<(int Band, int S)>();
        for (int i = 0; i < 5 + 8 + 15 + 34 + 81 + 1; i++)
        {
            var t = control.Add($"t{i}", status: TrialStatus.Pending);
            hb.OnTrialAdd(control, t);
            var p = hb.Placement(t)!.Value;
            placements.Add((p.Band, p.S));
        }
        Assert.Equal((0, 0), placements[4]);
        Assert.Equal((0, 1), placements[5]);
        Assert.Equal((0, 1), placements[12]);
        Assert.Equal((0, 2), placements[13]);
        Assert.Equal((0, 4), placements[142]);
        Assert.Equal((1, 0), placements[143]);
    }

    /// <summary>max_t 9, eta 3: s_max + 1 = 3; brackets (n0, r0) = (3, 9), (5, 3), (9, 1). Trials 0-2 fill s = 0, 3-7 fill s = 1.</summary>
    private static (HyperBandScheduler Hb, FakeTrialControl Control, Trial[] Bracket1) SmallBand()
    {
        var hb = HyperBand(maxT: 9);
        var control = new FakeTrialControl { Scheduler = hb };
        var trials = Enumerable.Range(0, 8).Select(i => control.Add($"t{i}", status: TrialStatus.Pending)).ToArray();
        foreach (var t in trials) hb.OnTrialAdd(control, t);
        return (hb, control, trials[3..]);
    }

    [Fact]
    public void Successive_halving_pauses_at_the_milestone_keeps_the_top_third_and_stops_the_rest()
    {
        var (hb, control, b) = SmallBand();
        Assert.Equal((0, 1, 3.0, 5), hb.Placement(b[0]));

        // Below the milestone 3 everyone continues.
        Assert.Equal(SchedulerDecision.Continue, Report(hb, control, b[0], 2, 0));
        // At 3, trials wait (PAUSE) until the whole bracket is there. Scores: b0 5, b1 1, b2 4, b3 2.
        Assert.Equal(SchedulerDecision.Pause, Report(hb, control, b[0], 3, 5));
        Assert.Equal(SchedulerDecision.Pause, Report(hb, control, b[1], 3, 1));
        Assert.Equal(SchedulerDecision.Pause, Report(hb, control, b[2], 3, 4));
        Assert.Equal(SchedulerDecision.Pause, Report(hb, control, b[3], 3, 2));

        // The last one (b4, score 3) completes the milestone: n = ceil(5 / 3) = 2 kept: b0 (5) and b2 (4);
        // b1, b3 (paused) are stopped, and b4 itself gets STOP. The milestone becomes min(3 * 3, 9) = 9.
        Assert.Equal(SchedulerDecision.Stop, Report(hb, control, b[4], 3, 3));
        Assert.Equal(TrialStatus.Terminated, b[1].Status);
        Assert.Equal(TrialStatus.Terminated, b[3].Status);
        Assert.Equal(TrialStatus.Paused, b[0].Status);
        Assert.Equal((0, 1, 9.0, 2), hb.Placement(b[0]));
        Assert.Equal(3, hb.NumStopped);

        // The kept paused trials are offered to run again (the s = 0 trials are pending and also offered; brackets
        // are served least complete first, and s = 1 has done 5 * 3 of its 5 * 3 + 2 * 9 work, s = 0 none).
        control.Fits = t => b.Contains(t);
        Assert.Same(b[0], hb.ChooseTrialToRun(control));
        Assert.Equal(SchedulerDecision.Continue, Report(hb, control, b[0], 4, 6));
        Assert.Same(b[2], hb.ChooseTrialToRun(control));

        // At 9 the bracket is finished once both are there: the first waits, the second stops and so does the waiting one.
        Assert.Equal(SchedulerDecision.Pause, Report(hb, control, b[0], 9, 7));
        Assert.Equal(SchedulerDecision.Stop, Report(hb, control, b[2], 9, 8));
        Assert.Equal(TrialStatus.Terminated, b[0].Status);
    }

    [Fact]
    public void A_trial_finishing_early_releases_the_bracket_waiting_for_it()
    {
        var (hb, control, b) = SmallBand();
        Report(hb, control, b[0], 3, 5);
        Report(hb, control, b[1], 3, 1);
        Report(hb, control, b[2], 3, 4);
        Report(hb, control, b[3], 3, 2);
        // b4 ends at t = 2 (its own stopping criteria): the other four are all at the milestone, so the bracket is
        // halved at once. Ray keeps ceil(n0 / 3) = 2 of the 4: b0 and b2 go on; b1 and b3 stop.
        b[4].Status = TrialStatus.Running;
        hb.OnTrialComplete(control, b[4], Results.At(2, 0));
        Assert.Equal(new[] { TrialStatus.Paused, TrialStatus.Terminated, TrialStatus.Paused, TrialStatus.Terminated }, b[..4].Select(t => t.Status));
        control.Fits = t => b.Contains(t);
        Assert.Same(b[0], hb.ChooseTrialToRun(control));
    }

    [Fact]
    public void A_trial_leaving_a_bracket_that_is_then_finished_does_not_strand_the_others()
    {
        // After the halving at 3, b0 and b2 go on to the final milestone 9. b0 gets there and waits; b2 errors at 5.
        // The bracket is now finished (no halvings left, every live trial at 9): b0 is stopped there (Ray leaves it paused).
        var (hb, control, b) = SmallBand();
        Report(hb, control, b[0], 3, 5);
        Report(hb, control, b[1], 3, 1);
        Report(hb, control, b[2], 3, 4);
        Report(hb, control, b[3], 3, 2);
        Report(hb, control, b[4], 3, 3);
        Assert.Equal(SchedulerDecision.Pause, Report(hb, control, b[0], 9, 7));
        Assert.Equal(SchedulerDecision.Continue, Report(hb, control, b[2], 5, 7));

        b[2].Status = TrialStatus.Error;
        hb.OnTrialError(control, b[2]);

        Assert.Equal(TrialStatus.Terminated, b[0].Status);
    }

    [Fact]
    public void After_a_first_halving_a_trial_leaving_early_still_triggers_the_next_one()
    {
        // Bracket s = 2 of the small band: 9 trials, r0 = 1. Scores 1..9 at t = 1: keep ceil(9 / 3) = 3 (c6, c7, c8),
        // the milestone becomes 3. c6 and c7 get to 3 and wait; c8 errors. Ray's stuck is_being_processed flag would
        // leave them waiting; here the bracket is halved again: keep ceil(3 / 3) = 1, the better of c6 (10) and c7 (11).
        var hb = HyperBand(maxT: 9);
        var control = new FakeTrialControl { Scheduler = hb };
        var all = Enumerable.Range(0, 17).Select(i => control.Add($"t{i}", status: TrialStatus.Pending)).ToArray();
        foreach (var t in all) hb.OnTrialAdd(control, t);
        var c = all[8..];
        Assert.Equal((0, 2, 1.0, 9), hb.Placement(c[0]));

        for (int i = 0; i < 8; i++) Assert.Equal(SchedulerDecision.Pause, Report(hb, control, c[i], 1, i + 1));
        Assert.Equal(SchedulerDecision.Continue, Report(hb, control, c[8], 1, 9));
        Assert.Equal(6, c.Count(t => t.Status == TrialStatus.Terminated));
        Assert.Equal((0, 2, 3.0, 3), hb.Placement(c[6]));

        Assert.Equal(SchedulerDecision.Pause, Report(hb, control, c[6], 3, 10));
        Assert.Equal(SchedulerDecision.Pause, Report(hb, control, c[7], 3, 11));
        c[8].Status = TrialStatus.Error;
        hb.OnTrialError(control, c[8]);

        Assert.Equal(TrialStatus.Terminated, c[6].Status);
        Assert.Equal(TrialStatus.Paused, c[7].Status);
        Assert.Equal((0, 2, 9.0, 1), hb.Placement(c[7]));
        control.Fits = t => c.Contains(t);
        Assert.Same(c[7], hb.ChooseTrialToRun(control));
    }

    [Fact]
    public void A_toy_sweep_stops_the_bad_trials_of_each_bracket_at_their_milestone()
    {
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("curve", Toys.ResumableCurve);
        var hb = HyperBand(maxT: 9);
        using var h = new Harness(cpus: 2, registry: registry, scheduler: hb);
        // Bracket s = 0 (3 trials, straight to 9) then s = 1 (5 trials, halved at 3).
        var qualities = new[] { 1.0, 2, 3, 5, 9, 6, 8, 7 };
        var trials = qualities.Select((q, i) => new Trial("curve", TrialConfig.From(("q", q)), trialId: $"t{i}q{q}")).ToArray();
        h.Add(trials);

        h.RunToEnd();

        var iterations = trials.Select(t => t.LastResult!.TrainingIteration).ToArray();
        Assert.All(trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        // s = 0: all three reach 9. s = 1: q9 and q8 are kept at 3 and reach 9; q5, q6, q7 stop at 3.
        Assert.Equal(new long[] { 9, 9, 9, 3, 9, 3, 9, 3 }, iterations);
    }
}
