using System.Globalization;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>What <see cref="SearchDriver.Run"/> saw: every evaluated config and value, and the best of them.</summary>
public sealed record SearchRun(IReadOnlyList<(TrialConfig Config, double Value)> History, double BestValue, TrialConfig? BestConfig);

/// <summary>
/// Runs a searcher against an objective without the controller, one trial at a time: suggest, evaluate, report the
/// value as a completed trial. For benchmarks of search quality and searcher overhead.
/// </summary>
public static class SearchDriver
{
    public static SearchRun Run(
        ISearcher searcher, SearchSpace space, Func<TrialConfig, double> objective, int evaluations,
        string metric = "loss", MetricMode mode = MetricMode.Min, string trialIdPrefix = "run")
    {
        if (evaluations < 0) throw new ArgumentOutOfRangeException(nameof(evaluations), $"evaluations must be 0 or more, got {evaluations}");
        if (!searcher.SetSearchProperties(metric, mode, space))
            throw new ArgumentException($"{searcher.GetType().Name} is configured with another metric, mode or space than {metric} ({mode})");
        var history = new List<(TrialConfig, double)>(evaluations);
        double best = mode == MetricMode.Min ? double.PositiveInfinity : double.NegativeInfinity;
        TrialConfig? bestConfig = null;
        for (int i = 0; i < evaluations; i++)
        {
            string id = $"{trialIdPrefix}_{i.ToString("D5", CultureInfo.InvariantCulture)}";
            var suggestion = searcher.Suggest(id);
            if (suggestion.Kind == SuggestionKind.Finished) break;
            if (suggestion.Kind == SuggestionKind.NotNow)
                throw new InvalidOperationException($"{searcher.GetType().Name} gave no suggestion for {id} although no trial is running");
            var config = suggestion.Config!;
            double value = objective(config);
            history.Add((config, value));
            if (mode == MetricMode.Min ? value < best : value > best)
            {
                best = value;
                bestConfig = config;
            }
            var result = new TrialResult
            {
                Metrics = new[] { new KeyValuePair<string, object>(metric, value) },
                TrainingIteration = 1,
                TrialId = id,
                Done = true,
            };
            searcher.OnTrialComplete(id, result, TrialOutcome.Completed);
        }
        return new SearchRun(history, best, bestConfig);
    }
}
