using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Report;

/// <summary>Small real sweeps the report tests draw: digits MLPs under ASHA, and PBT on the changing-learning-rate toy.</summary>
internal static class ReportSweeps
{
    public const int DigitsTrials = 6;

    public const int DigitsIterations = 4;

    public static readonly SearchSpace DigitsSpace = new()
    {
        ["lr"] = Domain.LogUniform(3e-4, 3e-2),
        ["width"] = Domain.Choice(16, 32, 64),
        ["depth"] = Domain.Choice(1, 2),
        ["dropout"] = Domain.Uniform(0.0, 0.3),
        ["batch_size"] = Domain.Choice(64, 128),
    };

    /// <summary>Six digits MLPs for four epochs under ASHA (rungs 1 and 2, reduction 2), one at a time.</summary>
    public static ResultGrid DigitsAsha(string storage, string name = "digits") =>
        new Tuner("mlp_digits", DigitsSpace,
            new TuneConfig
            {
                Seed = 0,
                NumSamples = DigitsTrials,
                Metric = "val_accuracy",
                Mode = MetricMode.Max,
                Scheduler = new AshaScheduler(new AshaOptions { MaxT = DigitsIterations, GracePeriod = 1, ReductionFactor = 2 }),
            },
            new RunConfig
            {
                Name = name,
                StoragePath = storage,
                Stop = Stop.AfterIterations(DigitsIterations),
                Inventory = DeviceInventory.Simulated(1),
                Executor = ExecutorKind.Inline,
                Quiet = true,
            }).Fit();

    /// <summary>Four trials of the changing-learning-rate toy under PBT, ready every 4 iterations, for 24 iterations.</summary>
    public static ResultGrid Pbt(string storage, string name = "pbt") =>
        new Tuner(PbtToys.ChangingLearningRate,
            new SearchSpace { ["lr"] = Domain.Uniform(0.0001, 0.02) },
            new TuneConfig
            {
                Seed = 1,
                NumSamples = 4,
                Metric = "mean_accuracy",
                Mode = MetricMode.Max,
                Scheduler = new PopulationBasedTraining(new PbtOptions
                {
                    TimeAttr = TrialResult.TrainingIterationKey,
                    PerturbationInterval = 4,
                    Seed = 1,
                    Synch = true,
                    HyperparamMutations = new Dictionary<string, PbtMutation> { ["lr"] = PbtMutation.Uniform(0.0001, 0.02) },
                }),
            },
            new RunConfig
            {
                Name = name,
                StoragePath = storage,
                Stop = Stop.AfterIterations(24),
                Inventory = DeviceInventory.Simulated(2),
                Executor = ExecutorKind.Inline,
                Quiet = true,
            }).Fit();
}

/// <summary>The digits ASHA sweep, run once for the whole class.</summary>
public sealed class DigitsSweepFixture : IDisposable
{
    private readonly TempDir _dir = new();

    public DigitsSweepFixture() => Grid = ReportSweeps.DigitsAsha(_dir.Path);

    public ResultGrid Grid { get; }

    public string Experiment => Grid.ExperimentPath;

    public void Dispose() => _dir.Dispose();
}
