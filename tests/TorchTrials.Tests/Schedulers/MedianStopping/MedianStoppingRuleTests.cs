using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Schedulers.MedianStopping;

public class MedianStoppingRuleTests
{
    private static MedianStoppingRule Rule(double grace = 2, int minSamples = 2, double minTimeSlice = 0, bool hardStop = true, MetricMode mode = MetricMode.Max) =>
        new(new MedianStoppingOptions
        {
            TimeAttr = TrialResult.TrainingIterationKey, Metric = "score", Mode = mode, GracePeriod = grace,
            MinSamplesRequired = minSamples, MinTimeSlice = minTimeSlice, HardStop = hardStop,
        });

    private static SchedulerDecision[] Feed(MedianStoppingRule rule, FakeTrialControl control, Trial trial, params double[] values) =>
        values.Select((v, i) => rule.OnTrialResult(control, trial, Results.At(i + 1, v))).ToArray();

    [Fact]
    public void A_trial_whose_best_is_below_the_median_of_running_averages_is_stopped()
    {
        // grace 2, 2 samples needed. Running averages use results with 2 <= t <= now:
        //   a: 10, 4, 6, 8  -> at t=2: 4, at t=3: (4+6)/2 = 5
        //   b:  0, 2, 8     -> at t=2: 2, at t=3: (2+8)/2 = 5
        //   c:  9, 1, 3     -> at t=2: 1, at t=3: (1+3)/2 = 2; its best 9 (before grace counts) beats medians 3 and 5
        //   d:  0, 2.5, 0   -> at t=2 the median of a 4, b 2, c 1 is 2 < best 2.5: continue;
        //                      at t=3 the median of a 5, b 5, c 2 is 5 > best 2.5: stop.
        var control = new FakeTrialControl();
        var rule = Rule();
        var (a, b, c, d) = (control.Add("a"), control.Add("b"), control.Add("c"), control.Add("d"));
        foreach (var t in control.Trials) rule.OnTrialAdd(control, t);

        Feed(rule, control, a, 10, 4, 6, 8);
        Feed(rule, control, b, 0, 2, 8);
        Assert.All(Feed(rule, control, c, 9, 1, 3), x => Assert.Equal(SchedulerDecision.Continue, x));
        Assert.Equal(new[] { SchedulerDecision.Continue, SchedulerDecision.Continue, SchedulerDecision.Stop }, Feed(rule, control, d, 0, 2.5, 0));
        Assert.Equal(1, rule.NumStopped);
    }

    [Fact]
    public void Min_mode_compares_the_lowest_loss_with_the_median()
    {
        // Losses: a 1, 1; b 3, 3; then c 2, 4 at t=2: median of running means (a 1, b 3) = 2; c's best 2 is not
        // strictly worse: continue. e 5, 2.5: best 2.5 > 2: stop.
        var control = new FakeTrialControl();
        var rule = Rule(grace: 1, mode: MetricMode.Min);
        var (a, b, c, e) = (control.Add("a"), control.Add("b"), control.Add("c"), control.Add("e"));
        foreach (var t in control.Trials) rule.OnTrialAdd(control, t);
        Feed(rule, control, a, 1, 1);
        Feed(rule, control, b, 3, 3);
        // c at t=1: samples a, b with means 1 and 3: median 2; best 2: continue. At t=2 the same.
        Assert.All(Feed(rule, control, c, 2, 4), x => Assert.Equal(SchedulerDecision.Continue, x));
        // e at t=1: samples a 1, b 3, c 2 -> median 2; best 5: stop.
        Assert.Equal(SchedulerDecision.Stop, Feed(rule, control, e, 5, 2.5)[0]);
    }

    [Fact]
    public void With_too_few_samples_a_trial_yields_to_waiting_trials_once_per_time_slice()
    {
        var control = new FakeTrialControl();
        var rule = Rule(grace: 1, minSamples: 2, minTimeSlice: 2);
        var a = control.Add("a");
        var waiting = control.Add("w", status: TrialStatus.Pending);
        rule.OnTrialAdd(control, a);

        // t=1: no other trial got this far and someone waits: yield (last pause -inf). t=2, 3: 2 - 1, 3 - 1 are not > 2.
        // t=4: 4 - 1 = 3 > 2: yield again.
        Assert.Equal(new[] { SchedulerDecision.Pause, SchedulerDecision.Continue, SchedulerDecision.Continue, SchedulerDecision.Pause },
            Feed(rule, control, a, 1, 1, 1, 1));
        waiting.Status = TrialStatus.Running;
        Assert.Equal(SchedulerDecision.Continue, rule.OnTrialResult(control, a, Results.At(9, 1)));
    }

    [Fact]
    public void Without_hard_stop_a_bad_trial_is_paused_once_and_then_runs_fifo()
    {
        var control = new FakeTrialControl();
        var rule = Rule(grace: 1, hardStop: false);
        var (a, b, c) = (control.Add("a"), control.Add("b"), control.Add("c"));
        foreach (var t in control.Trials) rule.OnTrialAdd(control, t);
        Feed(rule, control, a, 5, 5);
        Feed(rule, control, b, 5, 5);
        Assert.Equal(SchedulerDecision.Pause, rule.OnTrialResult(control, c, Results.At(1, 1)));
        Assert.Equal(SchedulerDecision.Continue, rule.OnTrialResult(control, c, Results.At(2, 0)));
    }

    [Fact]
    public void Results_without_the_metric_or_time_are_ignored_and_options_are_validated()
    {
        var control = new FakeTrialControl();
        var rule = Rule(grace: 0, minSamples: 1);
        var (a, b) = (control.Add("a"), control.Add("b"));
        Feed(rule, control, a, 5);
        Assert.Equal(SchedulerDecision.Continue, rule.OnTrialResult(control, b, Results.At(1, 0, metric: "other")));
        Assert.Contains("MedianStoppingOptions.MinSamplesRequired", Assert.Throws<OptionException>(() => new MedianStoppingRule(new MedianStoppingOptions { MinSamplesRequired = 0 })).Message);
        Assert.Contains("MedianStoppingOptions.GracePeriod", Assert.Throws<OptionException>(() => new MedianStoppingRule(new MedianStoppingOptions { GracePeriod = -1 })).Message);
    }

    [Fact]
    public void A_toy_sweep_stops_the_trials_below_the_median()
    {
        // Four trials in lockstep (4 CPUs), reporting q4, q3, q2, q1 at each iteration. At t = 2, q2 sees q4 and q3
        // (means 1.57 and 1.18) and its 0.79 is below: stop; q1 sees q4, q3, q2: median 1.18 > 0.39: stop.
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("curve", Toys.SaturatingCurve);
        using var h = new Harness(cpus: 4, registry: registry, scheduler: Rule(grace: 2, minSamples: 2));
        var trials = new[] { 4.0, 3, 2, 1 }.Select(q => new Trial("curve", TrialConfig.From(("q", q)), trialId: $"q{q}", stop: Stop.AfterIterations(10))).ToArray();
        h.Add(trials);

        h.RunToEnd();

        Assert.Equal(new long[] { 10, 10, 2, 2 }, trials.Select(t => t.LastResult!.TrainingIteration));
        Assert.All(trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
    }
}
