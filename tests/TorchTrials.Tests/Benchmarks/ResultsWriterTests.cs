using TorchTrials.Benchmarks;

namespace TorchTrials.Tests.Benchmarks;

/// <summary>Where the benchmark harness writes: RESULTS.md is replaced only by a full run.</summary>
public sealed class ResultsWriterTests
{
    private static readonly DateTime Now = new(2026, 12, 4, 20, 40, 5);

    [Fact]
    public void A_full_run_writes_results_md_and_a_quick_run_writes_nothing()
    {
        Assert.Equal(Path.Combine("/repo", "benchmarks", "RESULTS.md"), ResultsWriter.OutputPath(null, quick: false, only: null, "/repo", "/tmp", Now));
        Assert.Null(ResultsWriter.OutputPath(null, quick: true, only: null, "/repo", "/tmp", Now));
    }

    [Fact]
    public void A_run_of_some_benchmarks_leaves_results_md_alone()
    {
        var path = ResultsWriter.OutputPath(null, quick: false, only: new[] { "fusion-sweep", "report" }, "/repo", "/tmp", Now);

        Assert.Equal(Path.Combine("/tmp", "torchtrials-bench-fusion-sweep+report-20261204-204005.md"), path);
    }

    [Fact]
    public void Out_wins()
    {
        Assert.Equal("/x.md", ResultsWriter.OutputPath("/x.md", quick: false, only: new[] { "report" }, "/repo", "/tmp", Now));
        Assert.Equal("/x.md", ResultsWriter.OutputPath("/x.md", quick: true, only: null, "/repo", "/tmp", Now));
    }
}
