using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Spec;

namespace TorchTrials.Tests.Runner;

/// <summary>One obvious way to choose a search, and errors that name options as the API they came through spells them.</summary>
public class ApiErrorLanguageTests
{
    [Fact]
    public void Search_settings_that_the_chosen_search_would_ignore_are_refused_naming_the_properties()
    {
        // Given a searcher plus options of the basic generator it replaces, or a whole search algorithm plus a searcher
        var withVariants = new TuneConfig { Searcher = new RandomSearcher(seed: 1), Variants = new BasicVariantOptions { MaxConcurrent = 2 } };
        var withAlgorithm = new TuneConfig { Searcher = new RandomSearcher(seed: 1), SearchAlgorithm = new TrialListSearch() };

        // When a tuner is made of either, then it refuses, naming both C# properties
        var variants = Assert.Throws<ArgumentException>(() => new Tuner("__fake", tuneConfig: withVariants));
        Assert.Contains("TuneConfig.Variants", variants.Message);
        Assert.Contains("TuneConfig.Searcher", variants.Message);
        var algorithm = Assert.Throws<ArgumentException>(() => new Tuner("__fake", tuneConfig: withAlgorithm));
        Assert.Contains("TuneConfig.SearchAlgorithm", algorithm.Message);
        Assert.Contains("TuneConfig.Searcher", algorithm.Message);
    }

    [Fact]
    public void Tuner_settings_out_of_range_are_named_as_CSharp_properties()
    {
        var samples = Assert.Throws<ArgumentOutOfRangeException>(() => new Tuner("__fake", tuneConfig: new TuneConfig { NumSamples = 0 }));
        var failures = Assert.Throws<ArgumentOutOfRangeException>(() => new Tuner("__fake", runConfig: new RunConfig { MaxFailures = -2 }));

        Assert.StartsWith("TuneConfig.NumSamples must be at least 1, got 0", samples.Message);
        Assert.StartsWith("RunConfig.MaxFailures must be -1 (unlimited) or more, got -2", failures.Message);
    }

    [Fact]
    public void One_rejected_option_reads_in_CSharp_names_from_code_and_in_spec_keys_from_a_spec()
    {
        // Given a grace period above max_t, once as C# options and once in a sweep spec
        var inCode = Assert.Throws<OptionException>(() => new AshaScheduler(new AshaOptions { GracePeriod = 20, MaxT = 10 }));
        var inSpec = Assert.Throws<SpecValidationException>(() => SweepPlan.Parse(
            "trainable: __fake\nmetric: m\nmode: max\nscheduler: {type: asha, grace_period: 20, max_t: 10}\n", "t.yaml"));

        // Then the C# error names the properties, and the spec error names the keys under the key it is about
        Assert.Equal("AshaOptions.GracePeriod must be at most AshaOptions.MaxT (10), got 20", inCode.Message);
        Assert.Equal("GracePeriod", inCode.ParamName);
        var error = Assert.Single(inSpec.Errors);
        Assert.Equal("scheduler.grace_period", error.Path);
        Assert.Equal("grace_period must be at most max_t (10), got 20", error.Message);
    }
}
