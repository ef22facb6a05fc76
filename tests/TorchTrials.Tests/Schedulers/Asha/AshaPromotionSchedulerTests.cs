using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Schedulers.Asha;

public class AshaPromotionSchedulerTests
{
    private static AshaPromotionScheduler Asha(double maxT = 16, double eta = 2, int s = 0) =>
        new(new AshaPromotionOptions { Metric = "score", Mode = MetricMode.Max, MaxT = maxT, GracePeriod = 1, ReductionFactor = eta, MinEarlyStoppingRate = s });

    /// <summary>What the controller does with a chosen trial.</summary>
    private static Trial Start(AshaPromotionScheduler asha, FakeTrialControl control)
    {
        var trial = asha.ChooseTrialToRun(control) ?? throw new InvalidOperationException("nothing chosen");
        trial.Status = TrialStatus.Running;
        return trial;
    }

    private static SchedulerDecision Report(AshaPromotionScheduler asha, FakeTrialControl control, Trial trial, long t, double score)
    {
        var decision = asha.OnTrialResult(control, trial, Results.At(t, score));
        if (decision == SchedulerDecision.Pause) trial.Status = TrialStatus.Paused;
        if (decision == SchedulerDecision.Stop) trial.Status = TrialStatus.Terminated;
        return decision;
    }

    [Fact]
    public void Rungs_are_r_times_eta_to_the_s_plus_k_up_to_the_top()
    {
        // K = floor(log2(16 / 1)) - 0 = 4: 1, 2, 4, 8, 16. With s = 1: K = 3, rungs 2, 4, 8, 16.
        Assert.Equal(new[] { 1.0, 2, 4, 8, 16 }, Asha().Milestones);
        Assert.Equal(new[] { 2.0, 4, 8, 16 }, Asha(s: 1).Milestones);
        Assert.Contains("AshaPromotionOptions.MinEarlyStoppingRate", Assert.Throws<OptionException>(() => Asha(s: 5)).Message);
    }

    [Fact]
    public void Get_job_promotes_the_best_unpromoted_of_the_top_1_over_eta_from_the_highest_rung_else_starts_a_new_trial()
    {
        var control = new FakeTrialControl();
        var asha = Asha();
        var (a, b, c, d) = (control.Add("a", status: TrialStatus.Pending), control.Add("b", status: TrialStatus.Pending),
            control.Add("c", status: TrialStatus.Pending), control.Add("d", status: TrialStatus.Pending));
        foreach (var t in control.Trials) asha.OnTrialAdd(control, t);

        // Rung 0 is empty: start a. It reaches rung 0 (t = 1) and pauses there.
        Assert.Same(a, Start(asha, control));
        Assert.Equal(SchedulerDecision.Pause, Report(asha, control, a, 1, 1));
        // |rung 0| = 1, floor(1/2) = 0 promotable: start b.
        Assert.Same(b, Start(asha, control));
        Assert.Equal(SchedulerDecision.Pause, Report(asha, control, b, 1, 3));
        // Rung 0 = {a: 1, b: 3}: top floor(2/2) = 1 is b, not yet promoted: b is promoted and resumes to rung 1 (t = 2).
        Assert.Same(b, Start(asha, control));
        Assert.Equal(SchedulerDecision.Pause, Report(asha, control, b, 2, 4));
        // Rung 1 = {b}: quota 0. Rung 0 top 1 = b, already promoted. So a new trial: c.
        Assert.Same(c, Start(asha, control));
        Assert.Equal(SchedulerDecision.Pause, Report(asha, control, c, 1, 2));
        // Rung 0 = {a 1, b 3, c 2}: top 1 = b (promoted): start d.
        Assert.Same(d, Start(asha, control));
        Assert.Equal(SchedulerDecision.Pause, Report(asha, control, d, 1, 5));
        // Rung 0 = {a 1, b 3, c 2, d 5}: top 2 = d, b; d is promotable.
        Assert.Same(d, Start(asha, control));
        Assert.Equal(SchedulerDecision.Pause, Report(asha, control, d, 2, 6));
        // Rung 1 = {b 4, d 6}: top 1 = d: promoted from rung 1 before anything from rung 0.
        Assert.Same(d, Start(asha, control));
        Assert.Equal(1, asha.PromotionsFrom(1));
        Assert.Equal(2, asha.PromotionsFrom(0));
        Assert.Equal(SchedulerDecision.Pause, Report(asha, control, d, 4, 7));

        // Nothing runs, nothing waits, nothing is promotable (rung 2 = {d}: quota 0; rung 1 top = d; rung 0 top = d, b):
        // the paused trials can never move again and are stopped.
        Assert.Null(asha.ChooseTrialToRun(control));
        Assert.All(new[] { a, b, c, d }, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        Assert.Equal(4, asha.NumStopped);
    }

    [Fact]
    public void Trials_promoted_into_the_top_rung_train_to_max_t_and_stop()
    {
        // R = 4, eta = 2: rungs 1, 2, 4; trials pause at 1 and 2 only.
        var control = new FakeTrialControl();
        var asha = Asha(maxT: 4);
        var trials = new[] { "a", "b", "c", "d" }.Select(id => control.Add(id, status: TrialStatus.Pending)).ToArray();
        var (a, b, c, d) = (trials[0], trials[1], trials[2], trials[3]);
        foreach (var t in trials) asha.OnTrialAdd(control, t);

        Assert.Same(a, Start(asha, control));
        Report(asha, control, a, 1, 4);
        Assert.Same(b, Start(asha, control));
        Report(asha, control, b, 1, 3);
        // Rung 0 = {a 4, b 3}: top 1 = a.
        Assert.Same(a, Start(asha, control));
        Assert.Equal(SchedulerDecision.Pause, Report(asha, control, a, 2, 5));
        // Rung 1 = {a}: quota 0; rung 0 top = a, promoted: new trial c.
        Assert.Same(c, Start(asha, control));
        Report(asha, control, c, 1, 2);
        Assert.Same(d, Start(asha, control));
        Report(asha, control, d, 1, 6);
        // Rung 0 = {a 4, b 3, c 2, d 6}: top 2 = d, a: d goes to rung 1.
        Assert.Same(d, Start(asha, control));
        Assert.Equal(SchedulerDecision.Pause, Report(asha, control, d, 2, 7));
        // Rung 1 = {a 5, d 7}: top 1 = d: into the top rung, where it runs to max_t.
        Assert.Same(d, Start(asha, control));
        Assert.Equal(SchedulerDecision.Continue, Report(asha, control, d, 3, 8));
        Assert.Equal(SchedulerDecision.Stop, Report(asha, control, d, 4, 9));
        Assert.Equal(new[] { (d, 9.0) }, asha.RecordedAt(2));
    }

    [Fact]
    public void A_toy_sweep_promotes_the_best_to_max_t_and_stops_the_rest()
    {
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("curve", Toys.ResumableCurve);
        // R = 8, eta = 2: rungs 1, 2, 4 and the top at 8. Eight trials: at most 4 promoted from rung 0, 2 from rung 1, 1 from 2.
        var asha = Asha(maxT: 8, eta: 2);
        using var h = new Harness(cpus: 2, registry: registry, scheduler: asha);
        var trials = new[] { 3, 7, 1, 8, 5, 2, 6, 4 }.Select(q => new Trial("curve", TrialConfig.From(("q", (double)q)), trialId: $"q{q}")).ToArray();
        h.Add(trials);

        h.RunToEnd();

        var iterations = trials.ToDictionary(t => t.Id, t => t.LastResult!.TrainingIteration);
        Assert.All(trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        Assert.Equal(8, iterations["q8"]);
        Assert.Equal(1, iterations["q1"]);
        Assert.Equal((4, 2, 1), (asha.PromotionsFrom(0), asha.PromotionsFrom(1), asha.PromotionsFrom(2)));
        // 8 trials to rung 0, 4 of them one more iteration to rung 1, 2 of those 2 more to rung 2, 1 of those 4 more to 8.
        Assert.Equal(8 + 4 * 1 + 2 * 2 + 1 * 4, iterations.Values.Sum());
    }
}
