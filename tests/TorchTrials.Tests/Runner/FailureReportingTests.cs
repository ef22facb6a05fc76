using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner;

/// <summary>Issue 11, item 3: a library fit whose trials fail says so while it runs, in its grid, and in GetBestResult.</summary>
public class FailureReportingTests
{
    private static readonly TuneConfig ByScore = new() { Metric = "score", Mode = MetricMode.Max };

    private static RunConfig Config(string storage, TextWriter? output = null, bool quiet = false) => new()
    {
        Name = "exp",
        StoragePath = storage,
        Stop = Stop.AfterIterations(3),
        ResourcesPerTrial = new Resources(cpu: 1),
        Inventory = DeviceInventory.Simulated(2),
        Loggers = TrialFileOptions.None,
        ProgressOutput = output,
        Quiet = quiet,
    };

    /// <summary>Reports one excellent score, then crashes with a two-line message (as native errors carry a trace after their first line).</summary>
    private static IEnumerable<Metrics> CrashAfterOneResult(TrialConfig config, FunctionContext context)
    {
        yield return new Metrics { { "score", 100.0 } };
        throw new InvalidOperationException("boom in step 2\n   at native frame 0x1234");
    }

    /// <summary>Trials with fail=true behave as <see cref="CrashAfterOneResult"/>; the others score 1, 2, 3 and finish.</summary>
    private static IEnumerable<Metrics> FailWhenAsked(TrialConfig config, FunctionContext context)
    {
        for (int i = 1; i <= 3; i++)
        {
            if (config.GetBool("fail") && i == 2) throw new InvalidOperationException("boom in step 2\n   at native frame 0x1234");
            yield return new Metrics { { "score", config.GetBool("fail") ? 100.0 : i } };
        }
    }

    [Fact]
    public async Task A_fit_whose_trials_all_error_says_so_in_the_grid_and_GetBestResult_names_the_first_error()
    {
        using var temp = new TempDir();

        // Given three trials that each report one result and then crash
        var tuner = new Tuner(CrashAfterOneResult, tuneConfig: ByScore with { NumSamples = 3 }, runConfig: Config(temp.Path, quiet: true));

        // When the fit ends
        var grid = await tuner.FitAsync();

        // Then the grid says every trial errored, in its counts, its flag and its text
        Assert.Equal(3, grid.NumErrors);
        Assert.Equal(0, grid.NumTerminated);
        Assert.True(grid.AllErrored);
        Assert.Contains("all trials errored", grid.ToString());
        // And GetBestResult refuses to call a crashed trial the best, naming the first error and its error.txt
        var error = Assert.Throws<InvalidOperationException>(() => grid.GetBestResult());
        Assert.Contains("all 3 trial(s) errored", error.Message);
        Assert.Contains("boom in step 2", error.Message);
        Assert.DoesNotContain("native frame", error.Message);
        Assert.Contains(grid[0].ErrorFile!, error.Message);
        Assert.True(File.Exists(grid[0].ErrorFile));
    }

    [Fact]
    public async Task The_best_result_of_a_mixed_run_ignores_an_errored_trial_even_when_its_one_result_scores_higher()
    {
        using var temp = new TempDir();

        // Given a crashing trial whose only result (100) beats the finishing trial's last (3)
        var space = new SearchSpace { { "fail", Domain.Grid(true, false) } };
        var tuner = new Tuner(FailWhenAsked, space, ByScore, Config(temp.Path, quiet: true));

        // When the fit ends
        var grid = await tuner.FitAsync();

        // Then the best result is the trial that finished, under every scope
        Assert.Equal(1, grid.NumErrors);
        Assert.False(grid.AllErrored);
        foreach (var scope in new[] { MetricScope.Last, MetricScope.All, MetricScope.Average })
        {
            var best = grid.GetBestResult(scope: scope);
            Assert.Equal(TrialStatus.Terminated, best.Status);
            Assert.Equal(3.0, best.LastResult!.GetDouble("score"));
        }
    }

    [Fact]
    public async Task Without_a_logger_factory_a_fit_reports_trial_starts_errors_with_their_error_file_and_the_end_of_the_run()
    {
        using var temp = new TempDir();
        var output = new StringWriter();

        // Given a library fit with no logger factory, one trial crashing and one finishing, on the concurrent executor
        var space = new SearchSpace { { "fail", Domain.Grid(true, false) } };
        var tuner = new Tuner(FailWhenAsked, space, ByScore, Config(temp.Path, output));

        // When the fit ends
        var grid = await tuner.FitAsync();

        // Then the output names each start, the error's first line with its error.txt, and the run's end
        var text = output.ToString();
        var failed = grid.Errors.Single();
        foreach (var trial in grid) Assert.Contains($"Trial {trial.TrialId} started", text);
        Assert.Contains($"Trial {failed.TrialId} errored: boom in step 2 (see {failed.ErrorFile})", text);
        Assert.True(File.Exists(failed.ErrorFile));
        Assert.DoesNotContain("native frame", text);
        Assert.Contains("Run finished: 2 trial(s), 1 terminated, 1 errored", text);
    }

    [Fact]
    public async Task A_run_whose_trials_all_error_ends_its_output_saying_the_run_failed()
    {
        using var temp = new TempDir();
        var output = new StringWriter();

        // Given two trials that both crash
        var tuner = new Tuner(CrashAfterOneResult, tuneConfig: ByScore with { NumSamples = 2 }, runConfig: Config(temp.Path, output));

        // When the fit ends
        await tuner.FitAsync();

        // Then the last line says the run failed, not that it finished
        var last = output.ToString().TrimEnd().Split('\n')[^1];
        Assert.StartsWith("Run failed: all 2 trial(s) errored", last);
    }

    [Fact]
    public async Task A_quiet_fit_prints_nothing_even_when_trials_error()
    {
        using var temp = new TempDir();
        var output = new StringWriter();

        // Given a quiet fit whose trials crash
        var tuner = new Tuner(CrashAfterOneResult, tuneConfig: ByScore with { NumSamples = 2 }, runConfig: Config(temp.Path, output, quiet: true));

        // When the fit ends
        var grid = await tuner.FitAsync();

        // Then nothing was written, and the failures are still in the grid
        Assert.Equal("", output.ToString());
        Assert.Equal(2, grid.NumErrors);
    }
}
