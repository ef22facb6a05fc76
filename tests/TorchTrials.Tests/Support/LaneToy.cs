using System.Collections.Concurrent;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace TorchTrials.Tests.Support;

/// <summary>
/// A fusable toy for the fused executor's tests: one scalar weight w fitted to 3 by gradient descent on (w - 3)^2 with
/// the trial's own lr, so every iteration is known in closed form: (w_n - 3) = (w_0 - 3)(1 - 2 lr)^n, w_0 = seed % 7.
/// Alone it is <see cref="LaneToy"/>; fused it is <see cref="LaneToyArray"/>: w and lr are vectors over the lanes and one
/// step updates the stepped lanes with one index_select / index_copy_. Config: lr (0.1), group (fusion key, 0),
/// nan_at (the iteration whose loss is NaN: a lane error fused, a throw alone), mock_error (fails the second step, as
/// Ray's mock trainer), reset_supported (true), step_ms (alone, a sleep per step, 0: so trials on different workers overlap
/// in time). Every step reports loss, w and timesteps_this_iter = 10.
/// </summary>
public sealed class LaneToy : Trainable
{
    private Tensor _w = null!;
    private double _lr;

    public static double Initial(long seed) => seed % 7;

    /// <summary>The loss after <paramref name="iterations"/> steps from w_0 at a constant lr.</summary>
    public static double LossAfter(double w0, double lr, int iterations)
    {
        double d = (w0 - 3) * Math.Pow(1 - 2 * lr, iterations);
        return d * d;
    }

    /// <summary>Registers the toy under <paramref name="name"/>, fusable; <paramref name="recorder"/> sees every fused step.</summary>
    public static TrainableRegistry Register(TrainableRegistry registry, string name = "lane_toy", LaneToyRecorder? recorder = null) =>
        registry.Register(new RegisteredTrainable(name, () => new LaneToy(), fusionKey: c => $"toy{c.GetInt("group", 0)}",
            createFusedArray: ctx => new LaneToyArray(recorder)));

    /// <summary>
    /// A PBT population of 8 toy trials (lr 0.01 to 0.29, 12 iterations, 1 CPU each) and its scheduler: loss minimised,
    /// perturbation every 3 iterations, lr resampled from U(0.01, 0.3), seed 7.
    /// </summary>
    public static (List<TorchTrials.Runner.Trial> Trials, TorchTrials.Runner.Schedulers.PopulationBasedTraining Pbt) PbtPopulation(bool synch)
    {
        var trials = Enumerable.Range(0, 8)
            .Select(i => new TorchTrials.Runner.Trial("lane_toy", TrialConfig.From(("lr", 0.01 + 0.04 * i)), $"p{i}", new TorchTrials.Gpu.Resources(cpu: 1),
                stop: new Dictionary<string, double> { ["training_iteration"] = 12 }))
            .ToList();
        var pbt = new TorchTrials.Runner.Schedulers.PopulationBasedTraining(new TorchTrials.Runner.Schedulers.PbtOptions
        {
            Metric = "loss",
            Mode = TorchTrials.Runner.MetricMode.Min,
            TimeAttr = "training_iteration",
            PerturbationInterval = 3,
            HyperparamMutations = new Dictionary<string, TorchTrials.Runner.Schedulers.PbtMutation> { ["lr"] = TorchTrials.Runner.Schedulers.PbtMutation.Uniform(0.01, 0.3) },
            Synch = synch,
            Seed = 7,
        });
        return (trials, pbt);
    }

    public override void Setup(TrialConfig config)
    {
        _w = tensor(Initial(Context.Seed), ScalarType.Float64);
        _lr = config.GetDouble("lr", 0.1);
    }

    public override Metrics Step()
    {
        if (Config.GetInt("step_ms", 0) is > 0 and var pause) Thread.Sleep(pause);
        if (Config.GetBool("mock_error", false) && Iteration == 1) throw new InvalidOperationException("mock error");
        if (Config.GetLong("nan_at", -1) == Iteration + 1) throw new ArithmeticException("loss is NaN");
        // Scalars LibTorch reads are held by locals, never left to the finalizer.
        using var three = 3.0.ToScalar();
        using var rate = (2 * _lr).ToScalar();
        _w.sub_(_w.sub(three).mul(rate));
        return new Metrics { { "loss", _w.sub(three).square() }, { "w", _w.clone() }, { Metrics.TimestepsThisIterKey, 10L } };
    }

    public override TrainableState Save() => new(new[] { new KeyValuePair<string, Tensor>("w", _w.clone()) });

    public override void Restore(TrainableState state) => _w.copy_(state["w"]);

    public override bool Reset(TrialConfig newConfig)
    {
        if (!newConfig.GetBool("reset_supported", true)) return false;
        _lr = newConfig.GetDouble("lr", 0.1);
        return true;
    }

    protected override void Dispose(bool disposing) => _w?.Dispose();
}

/// <summary>What the arrays did: the lanes of each fused step, lane copies.</summary>
public sealed class LaneToyRecorder
{
    public ConcurrentQueue<int[]> Steps { get; } = new();

    public int Copies;

    public int Arrays;
}

/// <summary>The fused <see cref="LaneToy"/>: w and lr over the lanes.</summary>
public sealed class LaneToyArray(LaneToyRecorder? recorder) : FusedTrainable
{
    private Tensor? _w;
    private Tensor? _lr;

    public override void SetupLane(FusedLane lane)
    {
        if (_w is null)
        {
            _w = zeros(Capacity, ScalarType.Float64).DetachFromDisposeScope();
            _lr = zeros(Capacity, ScalarType.Float64).DetachFromDisposeScope();
            if (recorder is not null) Interlocked.Increment(ref recorder.Arrays);
        }
        using var scope = NewDisposeScope();
        _w[lane.Index].copy_(tensor(LaneToy.Initial(lane.Trial.Seed), ScalarType.Float64));
        _lr![lane.Index].copy_(tensor(lane.Config.GetDouble("lr", 0.1), ScalarType.Float64));
    }

    public override IReadOnlyList<LaneStepOutcome> Step(IReadOnlyList<FusedLane> lanes)
    {
        recorder?.Steps.Enqueue(lanes.Select(l => l.Index).ToArray());
        var outcomes = new LaneStepOutcome[lanes.Count];
        var stepped = new List<int>();
        for (int k = 0; k < lanes.Count; k++)
        {
            var lane = lanes[k];
            if (lane.Config.GetBool("mock_error", false) && lane.Iteration == 1)
                outcomes[k] = LaneStepOutcome.Failed(new InvalidOperationException("mock error"));
            else if (lane.Config.GetLong("nan_at", -1) == lane.Iteration + 1)
                outcomes[k] = LaneStepOutcome.Failed(new ArithmeticException($"lane {lane.Index}: loss is NaN"));
            else stepped.Add(k);
        }
        if (stepped.Count == 0) return outcomes;
        using var index = tensor(stepped.Select(k => (long)lanes[k].Index).ToArray());
        var w = _w!.index_select(0, index);
        using var three = 3.0.ToScalar();
        using var two = 2.0.ToScalar();
        var next = w.sub(w.sub(three).mul(_lr!.index_select(0, index)).mul(two));
        _w.index_copy_(0, index, next);
        var loss = next.sub(three).square();
        for (int j = 0; j < stepped.Count; j++)
            outcomes[stepped[j]] = LaneStepOutcome.Ok(new Metrics { { "loss", loss[j] }, { "w", next[j] }, { Metrics.TimestepsThisIterKey, 10L } });
        return outcomes;
    }

    public override TrainableState SaveLane(FusedLane lane) => new(new[] { new KeyValuePair<string, Tensor>("w", _w![lane.Index].clone()) });

    public override void RestoreLane(FusedLane lane, TrainableState state) => _w![lane.Index].copy_(state["w"]);

    public override bool ReconfigureLane(FusedLane lane, TrialConfig config)
    {
        using var scope = NewDisposeScope();
        _lr![lane.Index].copy_(tensor(config.GetDouble("lr", 0.1), ScalarType.Float64));
        return true;
    }

    public override void CopyLane(FusedLane from, FusedLane to)
    {
        _w![to.Index].copy_(_w[from.Index]);
        if (recorder is not null) Interlocked.Increment(ref recorder.Copies);
    }

    protected override void Dispose(bool disposing)
    {
        _w?.Dispose();
        _lr?.Dispose();
    }
}
