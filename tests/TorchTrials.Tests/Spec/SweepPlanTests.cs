using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Spec;
using TorchTrials.Runner.Stoppers;

namespace TorchTrials.Tests.Spec;

public class SweepPlanTests
{
    private const string Head = "trainable: __fake\nmetric: episode_reward_mean\nmode: max\n";

    [Theory]
    [InlineData("scheduler: {type: fifo}", typeof(FifoScheduler))]
    [InlineData("scheduler: {type: asha, max_t: 30, grace_period: 2, reduction_factor: 3}", typeof(AshaScheduler))]
    [InlineData("scheduler: {type: asha_promotion, max_t: 27, reduction_factor: 3}", typeof(AshaPromotionScheduler))]
    [InlineData("scheduler: {type: hyperband, max_t: 27}", typeof(HyperBandScheduler))]
    [InlineData("scheduler: {type: median_stopping, grace_period: 5, time_attr: training_iteration}", typeof(MedianStoppingRule))]
    [InlineData("scheduler: {type: pbt, time_attr: training_iteration, perturbation_interval: 4, hyperparam_mutations: {lr: {loguniform: [0.0001, 0.1]}, width: [32, 64]}}", typeof(PopulationBasedTraining))]
    [InlineData("scheduler: {type: pb2, time_attr: training_iteration, perturbation_interval: 4, hyperparam_bounds: {lr: [0.0001, 0.1]}}", typeof(Pb2))]
    [InlineData("scheduler: {type: resource_changing, base: {type: asha}, increase_by: {cpu: 1}}", typeof(TorchTrials.Runner.Schedulers.ResourceChangingScheduler))]
    public void Every_scheduler_is_selectable_from_the_spec(string line, Type expected)
    {
        var plan = SweepPlan.Parse(Head + line + "\n", "test.yaml");
        Assert.IsType(expected, plan.Tune.Scheduler);
    }

    // The shared keys, then the type's own required options (PBT and PB2 need something to explore).
    [Theory]
    [InlineData("asha", "", "training_iteration")]
    [InlineData("asha_promotion", "", "training_iteration")]
    [InlineData("hyperband", "", "training_iteration")]
    [InlineData("median_stopping", "", "time_total_s")]
    [InlineData("pbt", ", hyperparam_mutations: {lr: [0.1, 0.01]}", "time_total_s")]
    [InlineData("pb2", ", hyperparam_bounds: {lr: [0.0001, 0.1]}", "time_total_s")]
    public void Every_metric_scheduler_takes_metric_mode_and_time_attr_from_its_section_or_keeps_its_own_defaults(
        string type, string own, string defaultTimeAttr)
    {
        var given = SweepPlan.Parse("trainable: __fake\n" + $"scheduler: {{type: {type}, metric: loss, mode: min, time_attr: epoch{own}}}\n", "t.yaml");
        var inherited = SweepPlan.Parse(Head + $"scheduler: {{type: {type}{own}}}\n", "t.yaml");

        Assert.Equal(("loss", MetricMode.Min, "epoch"), Target(given.Tune.Scheduler));
        Assert.Equal(("episode_reward_mean", MetricMode.Max, defaultTimeAttr), Target(inherited.Tune.Scheduler));
    }

    private static (string?, MetricMode?, string) Target(object? scheduler)
    {
        MetricSchedulerOptions options = scheduler switch
        {
            AshaScheduler s => s.Options,
            AshaPromotionScheduler s => s.Options,
            HyperBandScheduler s => s.Options,
            MedianStoppingRule s => s.Options,
            Pb2 s => s.Options,
            PopulationBasedTraining s => s.Options,
            _ => throw new InvalidOperationException($"not a metric scheduler: {scheduler}"),
        };
        return (options.Metric, options.Mode, options.TimeAttr);
    }

    [Theory]
    [InlineData("searcher: {type: tpe, n_startup_trials: 5}", typeof(TpeSearcher))]
    [InlineData("searcher: {type: random, seed: 3}", typeof(RandomSearcher))]
    [InlineData("searcher: {type: tpe, max_concurrent: 2}", typeof(ConcurrencyLimiter))]
    [InlineData("searcher: {type: random, repeat: 3}", typeof(Repeater))]
    public void Every_searcher_is_selectable_from_the_spec(string line, Type expected)
    {
        var plan = SweepPlan.Parse(Head + line + "\n", "test.yaml");
        Assert.IsType(expected, plan.Tune.Searcher);
    }

    [Fact]
    public void The_basic_generator_takes_its_options_from_the_spec()
    {
        var plan = SweepPlan.Parse(Head + "searcher: {type: basic, max_concurrent: 3, constant_grid_search: true}\nseed: 9\n", "test.yaml");
        Assert.Null(plan.Tune.Searcher);
        Assert.Equal(3, plan.Tune.Variants!.MaxConcurrent);
        Assert.True(plan.Tune.Variants.ConstantGridSearch);
        Assert.Equal(9, plan.Tune.Variants.Seed);
    }

    [Fact]
    public void Stoppers_combine_from_a_list()
    {
        var plan = SweepPlan.Parse(Head + "stoppers:\n  - {type: maximum_iteration, max_iter: 5}\n  - {type: trial_plateau, metric: episode_reward_mean}\n  - {type: timeout, seconds: 60}\n", "test.yaml");
        Assert.IsType<CombinedStopper>(plan.Run.Stopper);
        Assert.IsType<MaximumIterationStopper>(SweepPlan.Parse(Head + "stoppers: [{type: maximum_iteration, max_iter: 5}]\n", "t.yaml").Run.Stopper);
    }

    [Theory]
    [InlineData("scheduler: {type: asha, grace_period: 0}", "scheduler.grace_period", "grace_period")]
    [InlineData("scheduler: {type: asha, reduction_factor: 1}", "scheduler.reduction_factor", "reduction_factor")]
    [InlineData("scheduler: {type: pbt, quantile_fraction: 0.9, hyperparam_mutations: {lr: [0.1, 0.01]}}", "scheduler.quantile_fraction", "quantile_fraction")]
    [InlineData("scheduler: {type: pb2}", "scheduler.", "hyperparam_bounds")]
    [InlineData("scheduler: {type: pbt, hyperparam_mutations: {lr: {gaussian: [0, 1]}}}", "scheduler.hyperparam_mutations.lr", "must be a list of values")]
    [InlineData("scheduler: {type: hyperband, max_tt: 3}", "scheduler.max_tt", "did you mean 'max_t'")]
    [InlineData("searcher: {type: tpe, n_ei_candidates: 0}", "searcher.n_ei_candidates", "at least 1")]
    [InlineData("stoppers: [{type: maximum_iteration}]", "stoppers[0].max_iter", "is required")]
    [InlineData("stoppers: [{type: plateau}]", "stoppers[0].type", "must be one of")]
    public void Bad_algorithm_options_are_reported_with_their_key(string line, string path, string message)
    {
        var error = Assert.Throws<SpecValidationException>(() => SweepPlan.Parse(Head + line + "\n", "test.yaml"));
        Assert.Contains(error.Errors, e => e.Path.StartsWith(path, StringComparison.Ordinal) && e.Message.Contains(message, StringComparison.Ordinal));
    }

    public static TheoryData<string, string, string> SingleProblems => new()
    {
        { "trainable: __fake\nsearch_space: {lr: {loguniform: [0.001, 0.01]}\nmetric: x\nmode: max\n", "search_space", "the flow mapping '{' opened here is never closed" },
        { "trainable: __fake\nresources_per_trial: {cpu: 1000}\n", "resources_per_trial", "requests 1000 CPUs but this machine has" },
        { "trainable: __fake\ninventory: \"cpus=2,gpus=2x16GiB\"\nresources_per_trial: {gpu: 1.5}\n", "resources_per_trial", "a request above one GPU must be a whole number" },
        { "trainable: __fake\nscheduler: {type: asha}\n", "scheduler", "needs a metric and a mode" },
        { "trainable: __fake\nmetric: x\nmode: maximize\n", "mode", "must be one of max, min, got 'maximize'" },
        { "trainable: __fake\nscheduler: {type: ashaa, grace_period: 2}\n", "scheduler.type", "(did you mean 'asha'?)" },
        { "trainable: __fake\nstoppers: [{type: maximum_iteratoin, max_iter: 3}]\n", "stoppers[0].type", "(did you mean 'maximum_iteration'?)" },
        { "trainable: __fake\nsearch_space: {lr: {loguniorm: [0.001, 0.01]}}\n", "search_space.lr", "(did you mean 'loguniform'?)" },
        { Head + "searcher: {type: tpe, n_startup: 2}\n", "searcher.n_startup", "unknown key (did you mean 'n_startup_trials'?)" },
    };

    [Theory]
    [MemberData(nameof(SingleProblems))]
    public void Each_problem_is_reported_once_naming_its_key(string yaml, string path, string message)
    {
        var error = Assert.Single(Assert.Throws<SpecValidationException>(() => SweepPlan.Parse(yaml, "test.yaml")).Errors);
        Assert.Equal(path, error.Path);
        Assert.Contains(message, error.Message);
        Assert.NotNull(error.Line);
    }

    [Fact]
    public void Without_a_name_each_run_gets_a_folder_named_after_the_spec_and_its_start_time()
    {
        var plan = SweepPlan.Parse(Head, "/tmp/specs/my-sweep.yaml");
        Assert.Matches(@"^my-sweep_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$", plan.Name);
        Assert.Equal("fixed", SweepPlan.Parse(Head + "name: fixed\n", "/tmp/specs/my-sweep.yaml").Name);
    }

    [Fact]
    public void Run_ahead_is_on_unless_the_executor_section_turns_it_off()
    {
        Assert.True(SweepPlan.Parse(Head, "t.yaml").Tune.RunAhead);
        Assert.False(SweepPlan.Parse(Head + "executor: {run_ahead: false}\n", "t.yaml").Tune.RunAhead);
    }

    [Fact]
    public void Fusion_is_off_unless_the_executor_section_turns_it_on_with_its_lane_count()
    {
        Assert.Null(SweepPlan.Parse(Head, "t.yaml").Tune.Fusion);
        var auto = SweepPlan.Parse(Head + "executor: {fuse: auto}\n", "t.yaml").Tune.Fusion!;
        Assert.Equal(TorchTrials.Runner.Execution.FuseMode.Auto, auto.Fuse);
        Assert.Equal(TorchTrials.Runner.Execution.FusionOptions.DefaultMaxMembers, auto.MaxMembers);
        var eight = SweepPlan.Parse(Head + "executor: {fuse: auto, max_members: 8}\n", "t.yaml").Tune.Fusion!;
        Assert.Equal(8, eight.MaxMembers);
        Assert.Equal(TorchTrials.Runner.Execution.FuseMode.Off, SweepPlan.Parse(Head + "executor: {fuse: off}\n", "t.yaml").Tune.Fusion!.Fuse);
    }

    [Theory]
    [InlineData("executor: {fuse: always}", "executor.fuse", "must be one of")]
    [InlineData("executor: {fuse: auto, max_members: 0}", "executor.max_members", "")]
    [InlineData("executor: {fuse: auto, max_member: 4}", "executor.max_member", "max_members")]
    [InlineData("executor: {type: inline, fuse: auto}", "executor.fuse", "concurrent executor")]
    public void Bad_fusion_options_are_reported_with_their_key(string line, string path, string message)
    {
        var error = Assert.Throws<SpecValidationException>(() => SweepPlan.Parse(Head + line + "\n", "test.yaml"));
        Assert.Contains(error.Errors, e => e.Path.StartsWith(path, StringComparison.Ordinal) && e.Message.Contains(message, StringComparison.Ordinal));
    }
}
