using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Schedulers.Asha;

public class AshaSchedulerTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static AshaScheduler Asha(double maxT = 100, double grace = 1, double rf = 4, int brackets = 1, bool stopLast = true, MetricMode mode = MetricMode.Max, int seed = 1) =>
        new(new AshaOptions { Metric = "score", Mode = mode, MaxT = maxT, GracePeriod = grace, ReductionFactor = rf, Brackets = brackets, StopLastTrials = stopLast, Seed = seed });

    [Fact]
    public void Rungs_sit_at_grace_times_rf_to_the_k_highest_first()
    {
        // int(log(100/1)/log(4) + 1) = int(4.32) = 4 rungs: 4^3, 4^2, 4^1, 4^0.
        Assert.Equal(new[] { 64.0, 16, 4, 1 }, Asha().RungMilestones[0]);
        // Ray's docstring bracket: min_t 1, max_t 10, rf 2 -> int(3.32 + 1) = 4 rungs.
        Assert.Equal(new[] { 8.0, 4, 2, 1 }, Asha(maxT: 10, rf: 2).RungMilestones[0]);
        // Bracket s = 1 starts one rung higher and has one rung fewer.
        Assert.Equal(new[] { 64.0, 16, 4 }, Asha(brackets: 2).RungMilestones[1]);
    }

    [Fact]
    public void Rays_docstring_example_the_third_trial_below_the_median_of_two_is_stopped()
    {
        // rf 2: cutoff is the 50th percentile. Rung 1 gets 2 (first, no cutoff), then 4 (cutoff 2: 4 >= 2),
        // then 1: cutoff = percentile([2, 4], 50) = 3.0 and 1 < 3, so it stops.
        var control = new FakeTrialControl();
        var asha = Asha(maxT: 10, rf: 2);
        var (t1, t2, t3) = (control.Add("t1"), control.Add("t2"), control.Add("t3"));
        foreach (var t in control.Trials) asha.OnTrialAdd(control, t);

        Assert.Equal(SchedulerDecision.Continue, asha.OnTrialResult(control, t1, Results.At(1, 2)));
        Assert.Equal(SchedulerDecision.Continue, asha.OnTrialResult(control, t2, Results.At(1, 4)));
        Assert.Equal(SchedulerDecision.Stop, asha.OnTrialResult(control, t3, Results.At(1, 1)));
        Assert.Equal(new Dictionary<string, double> { ["t1"] = 2, ["t2"] = 4, ["t3"] = 1 }, asha.RecordedAt(0, 3));
        Assert.Equal(1, asha.NumStopped);
    }

    [Fact]
    public void The_cutoff_is_the_linear_75th_percentile_with_rf_4()
    {
        // Rung 4 holds 1, 2, 3, 4 (each continues or not, we only need the record). 75th percentile of [1,2,3,4]:
        // index 0.75 * 3 = 2.25 -> 3 + 0.25 * (4 - 3) = 3.25. A fifth trial with 3.2 stops, a sixth with 3.3 goes on.
        var control = new FakeTrialControl();
        var asha = Asha();
        var trials = Enumerable.Range(1, 6).Select(i => control.Add($"t{i}")).ToList();
        foreach (var t in trials) asha.OnTrialAdd(control, t);
        for (int i = 0; i < 4; i++)
        {
            asha.OnTrialResult(control, trials[i], Results.At(1, 100));
            asha.OnTrialResult(control, trials[i], Results.At(4, i + 1));
        }
        asha.OnTrialResult(control, trials[4], Results.At(1, 100));
        asha.OnTrialResult(control, trials[5], Results.At(1, 100));

        Assert.Equal(SchedulerDecision.Stop, asha.OnTrialResult(control, trials[4], Results.At(4, 3.2)));
        Assert.Equal(SchedulerDecision.Continue, asha.OnTrialResult(control, trials[5], Results.At(4, 3.3)));
    }

    [Fact]
    public void Between_rungs_trials_continue_and_a_result_past_several_rungs_is_judged_at_the_highest()
    {
        var control = new FakeTrialControl();
        var asha = Asha();
        var (a, b) = (control.Add("a"), control.Add("b"));
        asha.OnTrialAdd(control, a);
        asha.OnTrialAdd(control, b);
        asha.OnTrialResult(control, a, Results.At(16, 10));

        // b jumps from nothing to t = 20: rungs 16, 4 and 1 are all reached; only 16 (the highest) is judged and recorded.
        Assert.Equal(SchedulerDecision.Stop, asha.OnTrialResult(control, b, Results.At(20, 5)));
        Assert.True(asha.RecordedAt(0, 1).ContainsKey("b"));
        Assert.False(asha.RecordedAt(0, 2).ContainsKey("b"));
        Assert.Equal(SchedulerDecision.Continue, asha.OnTrialResult(control, a, Results.At(17, 0)));
    }

    [Fact]
    public void Min_mode_stops_the_larger_values()
    {
        var control = new FakeTrialControl();
        var asha = Asha(rf: 2, maxT: 10, mode: MetricMode.Min);
        var trials = new[] { control.Add("a"), control.Add("b"), control.Add("c") };
        foreach (var t in trials) asha.OnTrialAdd(control, t);
        asha.OnTrialResult(control, trials[0], Results.At(1, 1));
        asha.OnTrialResult(control, trials[1], Results.At(1, 3));
        // Signed values -1, -3: cutoff -2; a loss of 2.5 (-2.5) is worse and stops, a loss of 1.5 would not.
        Assert.Equal(SchedulerDecision.Stop, asha.OnTrialResult(control, trials[2], Results.At(1, 2.5)));
    }

    [Fact]
    public void Trials_stop_at_max_t_unless_stop_last_trials_is_off()
    {
        var control = new FakeTrialControl();
        var asha = Asha(maxT: 16);
        var t = control.Add("t");
        asha.OnTrialAdd(control, t);
        Assert.Equal(SchedulerDecision.Stop, asha.OnTrialResult(control, t, Results.At(16, 1)));

        var keepGoing = Asha(maxT: 16, stopLast: false);
        var (a, b) = (control.Add("a"), control.Add("b"));
        keepGoing.OnTrialAdd(control, a);
        keepGoing.OnTrialAdd(control, b);
        keepGoing.OnTrialResult(control, a, Results.At(16, 10));
        Assert.Equal(SchedulerDecision.Continue, keepGoing.OnTrialResult(control, a, Results.At(17, 0)));
        // b below a's value at rung 16 is still stopped when it first gets there.
        Assert.Equal(SchedulerDecision.Stop, keepGoing.OnTrialResult(control, b, Results.At(16, 1)));
    }

    [Fact]
    public void NaN_values_never_stop_and_do_not_move_the_cutoff()
    {
        var control = new FakeTrialControl();
        var asha = Asha(rf: 2, maxT: 10);
        var trials = new[] { control.Add("a"), control.Add("b"), control.Add("c") };
        foreach (var t in trials) asha.OnTrialAdd(control, t);
        asha.OnTrialResult(control, trials[0], Results.At(1, 2));
        Assert.Equal(SchedulerDecision.Continue, asha.OnTrialResult(control, trials[1], Results.At(1, double.NaN)));
        // nanpercentile([2, NaN], 50) = 2: 1.5 < 2 stops.
        Assert.Equal(SchedulerDecision.Stop, asha.OnTrialResult(control, trials[2], Results.At(1, 1.5)));
    }

    [Fact]
    public void Brackets_are_drawn_by_softmax_of_their_rung_counts()
    {
        // 3 brackets with 4, 3, 2 rungs: probabilities e^0, e^-1, e^-2 normalised = 0.665, 0.245, 0.090.
        var control = new FakeTrialControl();
        var asha = Asha(brackets: 3, seed: 7);
        var counts = new int[3];
        for (int i = 0; i < 2000; i++)
        {
            var t = control.Add($"t{i}");
            asha.OnTrialAdd(control, t);
            counts[asha.BracketOf(t)!.Value]++;
        }
        Assert.InRange(counts[0] / 2000.0, 0.62, 0.71);
        Assert.InRange(counts[1] / 2000.0, 0.21, 0.28);
        Assert.InRange(counts[2] / 2000.0, 0.07, 0.11);
    }

    [Fact]
    public void Bad_options_fail_at_construction_naming_the_option()
    {
        Assert.Contains("AshaOptions.GracePeriod", Assert.Throws<OptionException>(() => new AshaScheduler(new AshaOptions { GracePeriod = 0 })).Message);
        Assert.Contains("AshaOptions.MaxT", Assert.Throws<OptionException>(() => new AshaScheduler(new AshaOptions { GracePeriod = 200 })).Message);
        Assert.Contains("AshaOptions.ReductionFactor", Assert.Throws<OptionException>(() => new AshaScheduler(new AshaOptions { ReductionFactor = 1 })).Message);
        Assert.Contains("AshaOptions.Brackets", Assert.Throws<OptionException>(() => new AshaScheduler(new AshaOptions { Brackets = 0 })).Message);
        var control = new FakeTrialControl();
        Assert.Contains("metric", Assert.Throws<InvalidOperationException>(() => new AshaScheduler().OnTrialAdd(control, control.Add("x"))).Message);
    }

    [Fact]
    public void A_toy_sweep_stops_the_bad_trials_early_and_runs_the_best_to_max_t()
    {
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("curve", Toys.SaturatingCurve);
        using var h = new Harness(cpus: 8, registry: registry, scheduler: Asha(maxT: 16, grace: 1, rf: 2));
        // Quality 1..8 in a mixed order, all running in lockstep: each trial is judged against those ahead of it in the order.
        var trials = new[] { 3, 7, 1, 8, 5, 2, 6, 4 }.Select(q => new Trial("curve", TrialConfig.From(("q", (double)q)), trialId: $"q{q}")).ToArray();
        h.Add(trials);

        h.RunToEnd();

        var iterations = trials.ToDictionary(t => t.Id, t => t.LastResult!.TrainingIteration);
        output.WriteLine(string.Join(", ", iterations.Select(kv => $"{kv.Key}: {kv.Value}")) + $"; total {iterations.Values.Sum()} of {8 * 16}");
        Assert.Equal(16, iterations["q8"]);
        Assert.All(trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        Assert.True(iterations["q1"] <= 2, $"the worst trial ran {iterations["q1"]} iterations");
        Assert.True(iterations.Values.Sum() < 8 * 16 / 2, $"ASHA used {iterations.Values.Sum()} of {8 * 16} iterations");
    }
}
