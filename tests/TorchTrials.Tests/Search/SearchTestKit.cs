using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Search;

/// <summary>Small builders shared by the search tests.</summary>
internal static class SearchTestKit
{
    public static TrialTemplate Template(TrialConfig? baseConfig = null) => new() { TrainableName = "__fake", BaseConfig = baseConfig ?? TrialConfig.Empty };

    public static TrialResult Result(string metric, double value, long iteration = 1) => new()
    {
        Metrics = new[] { new KeyValuePair<string, object>(metric, value) },
        TrainingIteration = iteration,
    };

    public static TrialResult Loss(double value, long iteration = 1) => Result("loss", value, iteration);

    /// <summary>Drains a search algorithm (completing every trial it produces at once) and returns the trials in order.</summary>
    public static List<Trial> Drain(ISearchAlgorithm search, int max = 100_000)
    {
        var trials = new List<Trial>();
        while (!search.IsFinished && trials.Count < max)
        {
            var trial = search.NextTrial();
            if (trial is null) break;
            trials.Add(trial);
            search.OnTrialComplete(trial.Id, null, TrialOutcome.Completed);
        }
        return trials;
    }

    /// <summary>A searcher configured on <paramref name="space"/> for metric "loss", mode min.</summary>
    public static T Configured<T>(T searcher, SearchSpace space) where T : ISearcher
    {
        Assert.True(searcher.SetSearchProperties("loss", MetricMode.Min, space));
        return searcher;
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
