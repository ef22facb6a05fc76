using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;
using Xunit.Abstractions;

namespace TorchTrials.Tests.Schedulers.Pbt;

/// <summary>PBT and PB2 on toy problems, through the controller with the inline executor; measured numbers are printed.</summary>
public class PbtToyTests(ITestOutputHelper output)
{
    private static readonly double[] FixedLearningRates = { 0.0005, 0.001, 0.002, 0.003, 0.005, 0.007, 0.01, 0.02 };

    internal static (double Best, int Perturbations) Run(string trainable, TrainFunction function, ITrialScheduler? scheduler, IEnumerable<TrialConfig> configs, int iterations, long seed, string metric, int cpus)
    {
        var registry = TrainableRegistry.CreateDefault().RegisterFunction(trainable, function);
        using var h = new Harness(cpus: cpus, registry: registry, scheduler: scheduler, seed: seed);
        var trials = configs.Select(c => new Trial(trainable, c, stop: Stop.AfterIterations(iterations))).ToArray();
        h.Add(trials);
        h.RunToEnd(maxSteps: 100_000);
        Assert.All(trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        return (trials.Max(t => t.LastResult!.GetDouble(metric)), (scheduler as PopulationBasedTraining)?.NumPerturbations ?? 0);
    }

    private static PopulationBasedTraining QuadraticPbt(int seed) => new(new PbtOptions
    {
        TimeAttr = TrialResult.TrainingIterationKey, Metric = "q", Mode = MetricMode.Max, PerturbationInterval = 4, Seed = seed, Synch = true,
        HyperparamMutations = new Dictionary<string, PbtMutation> { ["h0"] = PbtMutation.Uniform(0, 1), ["h1"] = PbtMutation.Uniform(0, 1) },
    });

    [Fact]
    public void Pbt_on_the_papers_quadratic_toy_beats_the_same_two_workers_without_it()
    {
        // Two workers, h = (1, 0) and (0, 1), 100 steps. Alone, each shrinks one coordinate of θ = (0.9, 0.9) and can
        // reach at most Q = 1.2 - 0.81 = 0.39. With PBT (ready every 4 steps), the worse copies the better and explores h.
        // The two workers' Q are equal at every step, so the lockstep (synchronous) variant is used: asynchronously, the
        // reporting worker is always ranked at or above the other and never exploits (ties keep their order, as in Ray).
        var workers = new[] { TrialConfig.From(("h0", 1.0), ("h1", 0.0)), TrialConfig.From(("h0", 0.0), ("h1", 1.0)) };
        var (withoutPbt, _) = Run("quadratic", PbtToys.Quadratic, null, workers, 100, seed: 0, "q", cpus: 2);
        output.WriteLine($"no PBT: best Q = {withoutPbt:F4}");
        // 0.9 * 0.98^100 = 0.119 left on the trained coordinate: Q = 1.2 - 0.81 - 0.014 = 0.376.
        Assert.InRange(withoutPbt, 0.37, 0.39);
        for (int seed = 0; seed < 5; seed++)
        {
            var (withPbt, perturbations) = Run("quadratic", PbtToys.Quadratic, QuadraticPbt(seed), workers, 100, seed, "q", cpus: 2);
            output.WriteLine($"PBT seed {seed}: best Q = {withPbt:F4} after {perturbations} exploits");
            Assert.True(withPbt > 2 * withoutPbt, $"seed {seed}: PBT reached only Q = {withPbt}");
        }
    }

    private static PopulationBasedTraining LearningRatePbt(int seed) => new(new PbtOptions
    {
        TimeAttr = TrialResult.TrainingIterationKey, Metric = "mean_accuracy", Mode = MetricMode.Max, PerturbationInterval = 4, Seed = seed,
        HyperparamMutations = new Dictionary<string, PbtMutation> { ["lr"] = PbtMutation.Uniform(0.0001, 0.02) },
    });

    [Fact]
    public void Pbt_beats_the_best_fixed_learning_rate_when_the_best_rate_changes_over_time()
    {
        const int iterations = 120;
        for (int seed = 0; seed < 3; seed++)
        {
            var fixedResults = FixedLearningRates
                .Select(lr => (Lr: lr, Best: Run("lr_toy", PbtToys.ChangingLearningRate, null, new[] { TrialConfig.From(("lr", lr)) }, iterations, seed * 100 + Array.IndexOf(FixedLearningRates, lr), "mean_accuracy", cpus: 1).Best))
                .ToList();
            var bestFixed = fixedResults.MaxBy(r => r.Best);
            // Ray's example: 8 trials all starting at lr = 0.0001, resampling from U(0.0001, 0.02), ready every 4.
            var population = Enumerable.Range(0, 8).Select(_ => TrialConfig.From(("lr", 0.0001)));
            var (pbt, perturbations) = Run("lr_toy", PbtToys.ChangingLearningRate, LearningRatePbt(seed), population, iterations, seed, "mean_accuracy", cpus: 4);
            output.WriteLine($"seed {seed}: PBT {pbt:F1} ({perturbations} exploits) vs best fixed lr {bestFixed.Lr} {bestFixed.Best:F1} " +
                $"[{string.Join(", ", fixedResults.Select(r => $"{r.Lr}: {r.Best:F1}"))}]");
            Assert.True(pbt > bestFixed.Best, $"seed {seed}: PBT {pbt:F1} did not beat lr {bestFixed.Lr} ({bestFixed.Best:F1})");
        }
    }
}

public class PbtHarnessTests
{
    [Fact]
    public void Synchronous_pbt_runs_a_population_larger_than_the_machine_in_lockstep_and_logs_every_step()
    {
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("lr_toy", PbtToys.ChangingLearningRate);
        var pbt = new PopulationBasedTraining(new PbtOptions
        {
            TimeAttr = TrialResult.TrainingIterationKey, Metric = "mean_accuracy", Mode = MetricMode.Max, PerturbationInterval = 5, Seed = 4,
            Synch = true, HyperparamMutations = new Dictionary<string, PbtMutation> { ["lr"] = PbtMutation.Uniform(0.0001, 0.02) },
        });
        var trace = new TrialStatusSnapshotTaker();
        using var h = new Harness(cpus: 2, registry: registry, scheduler: pbt, callbacks: new[] { trace });
        var trials = Enumerable.Range(0, 6).Select(i => new Trial("lr_toy", TrialConfig.From(("lr", 0.001 * (i + 1))), trialId: $"p{i}", stop: Stop.AfterIterations(40))).ToArray();
        h.Add(trials);

        h.RunToEnd(maxSteps: 100_000);

        Assert.All(trials, t => Assert.Equal(40, t.LastResult!.TrainingIteration));
        Assert.True(trace.MaxRunningTrials() <= 2);
        // Every perturbation happens at a barrier: 5, 10, ..., 35 (40 ends the trials before a step).
        Assert.NotEmpty(pbt.Perturbations);
        Assert.All(pbt.Perturbations, p => Assert.Equal(0, p.Time % 5));
        // ceil(6 * 0.25) = 2 exploits per barrier, 7 barriers.
        Assert.Equal(14, pbt.NumPerturbations);

        var global = File.ReadAllLines(Path.Combine(h.Directory, "pbt_global.txt"));
        Assert.Equal(pbt.Perturbations.Count, global.Length);
        var last = pbt.Perturbations[^1];
        Assert.True(File.Exists(Path.Combine(h.Directory, $"pbt_policy_{last.RecipientId}.txt")));
        Assert.Contains("@perturbed[lr=", h.Trials.Single(t => t.Id == last.RecipientId).ExperimentTag);
    }
}
