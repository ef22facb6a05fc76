using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;
using Xunit.Abstractions;

namespace TorchTrials.Tests.Schedulers.Pbt;

/// <summary>PB2's explore against random exploration, with everything else (PBT's exploit) equal.</summary>
public class Pb2ToyTests(ITestOutputHelper output)
{
    private const int Population = 4;
    private const int Iterations = 80;

    private static Pb2 Pb2(int seed) => new(new Pb2Options
    {
        TimeAttr = TrialResult.TrainingIterationKey, Metric = "score", Mode = MetricMode.Max, PerturbationInterval = 4, Seed = seed,
        HyperparamBounds = new Dictionary<string, (double, double)> { ["x"] = (0, 1) },
    });

    /// <summary>PBT whose explore only ever resamples uniformly from the same bounds: random exploration.</summary>
    private static PopulationBasedTraining RandomExplore(int seed) => new(new PbtOptions
    {
        TimeAttr = TrialResult.TrainingIterationKey, Metric = "score", Mode = MetricMode.Max, PerturbationInterval = 4, Seed = seed,
        ResampleProbability = 1,
        HyperparamMutations = new Dictionary<string, PbtMutation> { ["x"] = PbtMutation.Uniform(0, 1) },
    });

    [Fact]
    public void Pb2_beats_random_exploration_on_a_moving_narrow_optimum()
    {
        // Four trials from random x, ready every 4 of 80 steps; the same exploit, only the explore differs.
        var pb2Scores = new List<double>();
        var randomScores = new List<double>();
        for (int seed = 0; seed < 4; seed++)
        {
            var random = new Random(seed);
            var population = Enumerable.Range(0, Population).Select(_ => TrialConfig.From(("x", random.NextDouble()))).ToList();
            pb2Scores.Add(PbtToyTests.Run("moving", PbtToys.MovingOptimum, Pb2(seed), population, Iterations, seed, "score", cpus: Population).Best);
            randomScores.Add(PbtToyTests.Run("moving", PbtToys.MovingOptimum, RandomExplore(seed), population, Iterations, seed, "score", cpus: Population).Best);
            output.WriteLine($"seed {seed}: PB2 {pb2Scores[^1]:F1}, random explore {randomScores[^1]:F1}");
        }
        output.WriteLine($"mean: PB2 {pb2Scores.Average():F1}, random explore {randomScores.Average():F1}");
        Assert.True(pb2Scores.Average() > randomScores.Average() + 5, $"PB2 {pb2Scores.Average():F1} vs random {randomScores.Average():F1}");
    }
}
