using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Schedulers.Pbt;

public class PopulationBasedTrainingTests
{
    private static PopulationBasedTraining Pbt(bool synch = false, double quantile = 0.25, int seed = 3, IReadOnlyDictionary<string, PbtMutation>? mutations = null) =>
        new(new PbtOptions
        {
            TimeAttr = TrialResult.TrainingIterationKey, Metric = "score", Mode = MetricMode.Max, PerturbationInterval = 2,
            HyperparamMutations = mutations ?? new Dictionary<string, PbtMutation> { ["lr"] = PbtMutation.Uniform(0.001, 0.1) },
            QuantileFraction = quantile, Synch = synch, Seed = seed, LogConfig = false,
        });

    /// <summary>Reports like the controller: the trial runs, and a PAUSE decision pauses it (saving its state).</summary>
    private static SchedulerDecision Report(PopulationBasedTraining pbt, FakeTrialControl control, Trial trial, long t, double score)
    {
        trial.Status = TrialStatus.Running;
        var result = Results.At(t, score);
        var decision = pbt.OnTrialResult(control, trial, result);
        trial.LastResult = result;
        if (decision == SchedulerDecision.Pause && trial.Status == TrialStatus.Running) control.PauseTrial(trial);
        return decision;
    }

    private static (FakeTrialControl Control, Trial[] Trials) Population(PopulationBasedTraining pbt, int n)
    {
        var control = new FakeTrialControl { Scheduler = pbt };
        var trials = Enumerable.Range(0, n).Select(i => control.Add(((char)('a' + i)).ToString(), TrialConfig.From(("lr", 0.01 * (i + 1))), tag: $"{i}_lr={0.01 * (i + 1)}")).ToArray();
        foreach (var t in trials) pbt.OnTrialAdd(control, t);
        return (control, trials);
    }

    [Fact]
    public void Explore_shifts_list_values_to_a_neighbour_and_scales_continuous_ones()
    {
        var mutations = new Dictionary<string, PbtMutation>
        {
            ["batch"] = PbtMutation.Choice(16, 32, 64),
            ["lr"] = PbtMutation.Uniform(0, 1),
            ["layers"] = PbtMutation.RandInt(1, 10),
            ["opt"] = PbtMutation.Nested(new Dictionary<string, PbtMutation> { ["momentum"] = PbtMutation.Choice(0.8, 0.9, 0.99) }),
        };
        var config = TrialConfig.From(("batch", 32), ("lr", 0.5), ("layers", 5), ("opt", TrialConfig.From(("momentum", 0.9))), ("fixed", "x"));
        var random = new Random(11);
        for (int i = 0; i < 50; i++)
        {
            var (explored, operations) = PbtExplore.Explore(config, mutations, resampleProbability: 0, new[] { 1.2, 0.8 }, null, random);
            // Without resampling: 32 -> 16 or 64; 0.5 -> 0.6 or 0.4; 5 -> int(6.0) = 6 or int(4.0) = 4, still whole.
            Assert.Contains(explored["batch"], new object[] { 16L, 64L });
            Assert.Contains((double)explored["lr"]!, new[] { 0.5 * 1.2, 0.5 * 0.8 });
            Assert.Contains(explored["layers"], new object[] { 6L, 4L });
            Assert.Contains(((TrialConfig)explored["opt"]!)["momentum"], new object[] { 0.8, 0.99 });
            Assert.Equal("x", explored["fixed"]);
            Assert.StartsWith("shift ", operations["batch"]);
        }

        // At the end of a list the shift may be a no-op; a value not in the list is always resampled.
        var edge = TrialConfig.From(("batch", 64), ("lr", 0.5), ("layers", 5), ("opt", TrialConfig.From(("momentum", 0.95))));
        var seen = new HashSet<object?>();
        for (int i = 0; i < 50; i++)
        {
            var (explored, operations) = PbtExplore.Explore(edge, mutations, 0, new[] { 1.2, 0.8 }, null, random);
            seen.Add(explored["batch"]);
            if (explored["batch"] is 64L) Assert.Equal("shift right (noop)", operations["batch"]);
            Assert.Equal("resample", operations["opt/momentum"]);
        }
        Assert.Equal(new HashSet<object?> { 32L, 64L }, seen);

        // With resampling always on, values come from the domains; the custom function runs last.
        var (resampled, ops) = PbtExplore.Explore(config, mutations, 1, new[] { 1.2, 0.8 }, c => c.With("fixed", "custom"), random);
        Assert.All(new[] { "batch", "lr", "layers" }, k => Assert.Equal("resample", ops[k]));
        Assert.InRange((double)resampled["lr"]!, 0, 1);
        Assert.Equal("custom", resampled["fixed"]);
    }

    [Fact]
    public void Bottom_quantile_exploits_a_top_quantile_donor_that_has_a_checkpoint_and_never_one_without()
    {
        var pbt = Pbt();
        var (control, t) = Population(pbt, 4);
        var (a, b, c, d) = (t[0], t[1], t[2], t[3]);

        // a at t=2 (score 4) is alone: no quantiles, nothing saved.
        Assert.Equal(SchedulerDecision.Continue, Report(pbt, control, a, 2, 4));
        // b (3): ranked [b, a], ceil(2 * 0.25) = 1 each side. b is at the bottom, a on top, but a took no checkpoint
        // when it reported (it was alone), so b does not exploit it (Ray #27170).
        Report(pbt, control, b, 2, 3);
        Assert.Empty(control.Exploits);
        // a again at t=4 (5): on top now, so it saves its state (42).
        control.State[a] = 42;
        Report(pbt, control, a, 4, 5);
        Assert.Contains("save a", control.Log);
        // c (1): ranked [c 1, b 3, a 5]: ceil(0.75) = 1; c is the bottom, a the top with a checkpoint: c takes a's state.
        Report(pbt, control, c, 2, 1);

        var exploit = Assert.Single(control.Exploits);
        Assert.Same(c, exploit.Recipient);
        Assert.Equal(42, control.State[c]);
        double lr = exploit.Config.GetDouble("lr");
        Assert.True(lr == 0.01 * 1.2 || lr == 0.01 * 0.8 || lr is >= 0.001 and < 0.1, $"lr {lr} is neither a's lr perturbed nor resampled");
        Assert.Matches(@"^2_lr=0\.03@perturbed\[lr=[0-9.e-]+\]$", exploit.Tag);
        var p = Assert.Single(pbt.Perturbations);
        Assert.Equal(("c", "a", 2.0, 4L), (p.RecipientId, p.DonorId, p.Time, p.DonorIteration));
        Assert.Contains(p.Operations["lr"], new[] { "* 1.2", "* 0.8", "resample" });
        // c took over a's clock: its next perturbation is due at 4 + 2, so at t=5 nothing happens.
        Assert.Equal(SchedulerDecision.Continue, Report(pbt, control, c, 5, 0));
        Assert.Single(control.Exploits);
        Assert.Equal(1, pbt.NumPerturbations);
    }

    [Fact]
    public void A_donor_paused_after_its_checkpoint_is_exploited_through_its_pause_checkpoint()
    {
        // Population of 3 with d waiting: every perturbation step PAUSEs to let waiting trials run. The pause re-saves the
        // donor's state and replaces the checkpoint PBT took; the exploit uses the pause checkpoint, which holds the same
        // state at the same time.
        var pbt = Pbt(quantile: 0.5);
        var (control, t) = Population(pbt, 4);
        var (a, b, d) = (t[0], t[1], t[3]);
        d.Status = TrialStatus.Pending;
        t[2].Status = TrialStatus.Terminated;

        control.State[a] = 7;
        Assert.Equal(SchedulerDecision.Pause, Report(pbt, control, a, 2, 10));
        Assert.Equal(SchedulerDecision.Pause, Report(pbt, control, b, 2, 1));
        Assert.Empty(control.Exploits);
        // Ranked [b 1, a 10] with quantile 0.5: 1 each side. a reports again on top: saves, then pauses (re-saving).
        control.State[a] = 8;
        Report(pbt, control, a, 4, 11);
        Assert.Equal(TrialStatus.Paused, a.Status);
        Report(pbt, control, b, 4, 2);

        var exploit = Assert.Single(control.Exploits);
        Assert.Same(b, exploit.Recipient);
        Assert.Equal(8, control.State[b]);
        Assert.Same(a.Checkpoints.NewestMemory, exploit.Donor);
    }

    [Fact]
    public void Waiting_trials_make_it_pause_and_the_least_trained_waiting_trial_runs_next()
    {
        var pbt = Pbt();
        var (control, t) = Population(pbt, 3);
        t[1].Status = TrialStatus.Pending;
        t[2].Status = TrialStatus.Paused;
        Assert.Equal(SchedulerDecision.Pause, Report(pbt, control, t[0], 2, 1));
        // t0 has trained to 2, t1 and t2 to 0; t1 comes first in order. Trials that do not fit are skipped.
        Assert.Same(t[1], pbt.ChooseTrialToRun(control));
        control.Fits = x => x != t[1];
        Assert.Same(t[2], pbt.ChooseTrialToRun(control));
    }

    [Fact]
    public void Synchronous_mode_waits_for_everyone_then_perturbs_all_top_first()
    {
        var pbt = Pbt(synch: true);
        var (control, t) = Population(pbt, 3);
        var (a, b, c) = (t[0], t[1], t[2]);
        control.State[a] = 5;

        Assert.Equal(SchedulerDecision.Pause, Report(pbt, control, a, 2, 3));
        Assert.Equal(SchedulerDecision.Pause, Report(pbt, control, b, 2, 1));
        Assert.Empty(control.Exploits);
        // c (2) is the last to reach 2: ranked [b 1, c 2, a 3], one on each side. a (paused) offers its pause checkpoint,
        // c (the middle) drops its, b (bottom, paused) takes a's state.
        Assert.Equal(SchedulerDecision.Pause, Report(pbt, control, c, 2, 2));
        var exploit = Assert.Single(control.Exploits);
        Assert.Same(b, exploit.Recipient);
        Assert.Equal(5, control.State[b]);
        Assert.Equal(TrialStatus.Paused, c.Status);
        // The next barrier is at max(2 + 2, 2) = 4: everyone is short of it again; a trained least-recently-first order.
        Assert.Same(a, pbt.ChooseTrialToRun(control));
        Report(pbt, control, a, 3, 3);
        Assert.Equal(SchedulerDecision.Pause, Report(pbt, control, a, 4, 3));
        Assert.NotSame(a, pbt.ChooseTrialToRun(control));
    }

    [Fact]
    public void Synchronous_mode_releases_the_barrier_when_the_last_trial_ends_instead_of_reporting()
    {
        var pbt = Pbt(synch: true);
        var (control, t) = Population(pbt, 3);
        var (a, b, c) = (t[0], t[1], t[2]);
        Report(pbt, control, a, 2, 3);
        Report(pbt, control, b, 2, 1);
        // c finishes (its own stopping criteria) before reaching 2. Nobody is short of the barrier any more.
        c.Status = TrialStatus.Terminated;

        var next = pbt.ChooseTrialToRun(control);

        var exploit = Assert.Single(control.Exploits);
        Assert.Same(b, exploit.Recipient);
        Assert.Same(a, next);
    }

    [Fact]
    public void Missing_attributes_fail_the_trial_unless_not_required_and_missing_config_keys_are_sampled()
    {
        var pbt = Pbt();
        var control = new FakeTrialControl();
        var trial = control.Add("x", TrialConfig.From(("other", 1)));
        pbt.OnTrialAdd(control, trial);
        Assert.InRange(trial.Config.GetDouble("lr"), 0.001, 0.1);
        Assert.True(trial.EvaluatedParams.ContainsKey("lr"));
        Assert.Contains("metric 'score'", Assert.Throws<KeyNotFoundException>(() => pbt.OnTrialResult(control, trial, Results.At(2, 1, metric: "loss"))).Message);

        var lenient = new PopulationBasedTraining(new PbtOptions
        {
            Metric = "score", Mode = MetricMode.Max, RequireAttrs = false,
            HyperparamMutations = new Dictionary<string, PbtMutation> { ["lr"] = PbtMutation.Uniform(0.001, 0.1) },
        });
        lenient.OnTrialAdd(control, trial);
        Assert.Equal(SchedulerDecision.Continue, lenient.OnTrialResult(control, trial, Results.At(2, 1, metric: "loss")));
    }

    [Fact]
    public void Bad_options_fail_at_construction_naming_the_option()
    {
        var lr = new Dictionary<string, PbtMutation> { ["lr"] = PbtMutation.Uniform(0, 1) };
        Assert.Contains("PbtOptions.HyperparamMutations", Assert.Throws<OptionException>(() => new PopulationBasedTraining(new PbtOptions())).Message);
        Assert.Contains("PbtOptions.QuantileFraction", Assert.Throws<OptionException>(() => new PopulationBasedTraining(new PbtOptions { HyperparamMutations = lr, QuantileFraction = 0.6 })).Message);
        Assert.Contains("PbtOptions.PerturbationInterval", Assert.Throws<OptionException>(() => new PopulationBasedTraining(new PbtOptions { HyperparamMutations = lr, PerturbationInterval = 0 })).Message);
        Assert.Contains("PbtOptions.ResampleProbability", Assert.Throws<OptionException>(() => new PopulationBasedTraining(new PbtOptions { HyperparamMutations = lr, ResampleProbability = 2 })).Message);
        Assert.Contains("PbtOptions.PerturbationFactors", Assert.Throws<OptionException>(() => new PopulationBasedTraining(new PbtOptions { HyperparamMutations = lr, PerturbationFactors = Array.Empty<double>() })).Message);
        Assert.Contains("low < high", Assert.Throws<ArgumentException>(() => PbtMutation.Uniform(1, 1)).Message);
    }
}
