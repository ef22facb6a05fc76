using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Schedulers.ResourceChanging;

public class ResourceChangingSchedulerTests
{
    private static (ResourceChangingScheduler Scheduler, FakeTrialControl Control) Setup(int cpus, int gpus = 0, DistributeResources? policy = null)
    {
        var scheduler = new ResourceChangingScheduler(new FifoScheduler(), (policy ?? new DistributeResources()).Allocate);
        return (scheduler, new FakeTrialControl(cpus, gpus) { Scheduler = scheduler });
    }

    private static Trial Add(ResourceChangingScheduler scheduler, FakeTrialControl control, string id, double cpu = 1, double gpu = 0, TrialStatus status = TrialStatus.Running)
    {
        var trial = control.Add(id, resources: new Resources(cpu: cpu, gpu: gpu), status: status);
        scheduler.OnTrialAdd(control, trial);
        return trial;
    }

    [Fact]
    public void Two_one_cpu_trials_on_four_cpus_grow_to_two_each()
    {
        // Fair share: 4 - 2 * 1 = 2 CPUs to spread, one each round-robin: cap 1 step. a: free = 4 - 2 = 2 -> +2 capped
        // to +1 -> 2 CPUs. b: free = 4 - (2 + 1) = 1 -> +1 -> 2 CPUs.
        var (scheduler, control) = Setup(cpus: 4);
        var a = Add(scheduler, control, "a");
        var b = Add(scheduler, control, "b");

        Assert.Equal(SchedulerDecision.Continue, scheduler.OnTrialResult(control, a, Results.At(1, 0)));
        Assert.Equal(SchedulerDecision.Continue, scheduler.OnTrialResult(control, b, Results.At(1, 0)));

        Assert.Equal(new[] { ("a", 2.0), ("b", 2.0) }, control.ResourceChanges.Select(c => (c.Trial.Id, c.Resources.Cpu.ToDouble())));
        // Nothing more to give: the next results change nothing.
        scheduler.OnTrialResult(control, a, Results.At(2, 0));
        Assert.Equal(2, control.ResourceChanges.Count);
    }

    [Fact]
    public void With_three_trials_on_four_cpus_only_one_extra_cpu_is_handed_out()
    {
        // 4 - 3 = 1 CPU to spread: the first trial's share is 1 step. a: free 1 -> 2 CPUs; b: free 0 -> unchanged.
        var (scheduler, control) = Setup(cpus: 4);
        var a = Add(scheduler, control, "a");
        var b = Add(scheduler, control, "b");
        Add(scheduler, control, "c", status: TrialStatus.Pending);
        scheduler.OnTrialResult(control, a, Results.At(1, 0));
        scheduler.OnTrialResult(control, b, Results.At(1, 0));
        var change = Assert.Single(control.ResourceChanges);
        Assert.Equal(("a", 2.0), (change.Trial.Id, change.Resources.Cpu.ToDouble()));
    }

    [Fact]
    public void A_trial_gives_resources_back_when_more_is_asked_than_the_machine_has()
    {
        // a holds 3 CPUs, b and a new pending c ask for 1 each: free = 4 - 5 = -1 -> a gives one step back.
        var (scheduler, control) = Setup(cpus: 4);
        var a = Add(scheduler, control, "a");
        var b = Add(scheduler, control, "b");
        a.SetResourcesFromController(new Resources(cpu: 3));
        Add(scheduler, control, "c", status: TrialStatus.Pending);
        scheduler.OnTrialResult(control, a, Results.At(3, 0));
        Assert.Equal(2, Assert.Single(control.ResourceChanges).Resources.Cpu.ToDouble());
    }

    [Fact]
    public void Gpu_trials_grow_by_whole_gpus_and_nothing_changes_before_the_first_iteration()
    {
        var (scheduler, control) = Setup(cpus: 8, gpus: 4);
        var a = Add(scheduler, control, "a", cpu: 1, gpu: 1);
        Add(scheduler, control, "b", cpu: 1, gpu: 1);
        scheduler.OnTrialResult(control, a, Results.At(0, 0));
        Assert.Empty(control.ResourceChanges);
        // 4 - 2 = 2 GPUs to spread: share 1 step of 1 GPU; free 2: a goes to 2 GPUs, CPUs unchanged.
        scheduler.OnTrialResult(control, a, Results.At(1, 0));
        var change = Assert.Single(control.ResourceChanges);
        Assert.Equal((1.0, 2.0), (change.Resources.Cpu.ToDouble(), change.Resources.Gpu.ToDouble()));
    }

    [Fact]
    public void Increase_by_times_and_reserved_resources_limit_the_growth()
    {
        // 8 CPUs, 1 reserved, one trial: 7 - 1 = 6 to spread, but at most 2 steps of 2 CPUs: 1 + 4 = 5 CPUs.
        var (scheduler, control) = Setup(cpus: 8, policy: new DistributeResources(increaseByCpu: 2, increaseByTimes: 2, reserveCpu: 1));
        var a = Add(scheduler, control, "a");
        scheduler.OnTrialResult(control, a, Results.At(1, 0));
        Assert.Equal(5, Assert.Single(control.ResourceChanges).Resources.Cpu.ToDouble());
    }

    [Fact]
    public void Trials_must_share_the_base_request_and_non_continue_decisions_pass_through()
    {
        var asha = new AshaScheduler(new AshaOptions { Metric = "score", Mode = MetricMode.Max, MaxT = 4, GracePeriod = 1, ReductionFactor = 2 });
        var scheduler = new ResourceChangingScheduler(asha);
        var control = new FakeTrialControl(cpus: 4) { Scheduler = scheduler };
        var a = control.Add("a", resources: new Resources(cpu: 1));
        scheduler.OnTrialAdd(control, a);
        var odd = control.Add("odd", resources: new Resources(cpu: 2));
        Assert.Contains("varying base resources", Assert.Throws<ArgumentException>(() => scheduler.OnTrialAdd(control, odd)).Message);

        // ASHA stops a at max_t: no resizing on a STOP.
        Assert.Equal(SchedulerDecision.Stop, scheduler.OnTrialResult(control, a, Results.At(4, 1)));
        Assert.Empty(control.ResourceChanges);

        var never = ResourceChangingScheduler.WithoutAllocation();
        var b = control.Add("b", resources: new Resources(cpu: 1));
        never.OnTrialAdd(control, b);
        Assert.Equal(SchedulerDecision.Continue, never.OnTrialResult(control, b, Results.At(1, 1)));
        Assert.Empty(control.ResourceChanges);
    }

    [Fact]
    public void Through_the_controller_trials_are_paused_resized_and_resumed_from_their_checkpoint()
    {
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("curve", Toys.ResumableCurve);
        var scheduler = new ResourceChangingScheduler();
        using var h = new Harness(cpus: 4, registry: registry, scheduler: scheduler);
        var trials = new[] { 1.0, 2.0 }.Select(q => new Trial("curve", TrialConfig.From(("q", q)), resources: new Resources(cpu: 1), stop: Stop.AfterIterations(6))).ToArray();
        h.Add(trials);

        h.RunToEnd();

        Assert.All(trials, t => Assert.Equal(new Resources(cpu: 2), t.Resources));
        // Resumed from their checkpoints: six iterations each, the curve continuing where it was.
        Assert.All(trials, t => Assert.Equal(6, t.LastResult!.TrainingIteration));
        Assert.Equal(2 * (1 - Math.Exp(-6 / 4.0)), trials[1].LastResult!.GetDouble("score"), 12);
        Assert.Equal(2, scheduler.NumReallocations);
    }
}
