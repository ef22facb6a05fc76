using Spectre.Console.Testing;
using TorchTrials.Cli;
using TorchTrials.Runner.Results;

namespace TorchTrials.IntegrationTests.Cli;

/// <summary>
/// Issue 11, item 4: a researcher's own trainable, built as a class library (examples/byo-assembly, built before this
/// project through its ProjectReference), sweeps from the CLI with the example's own spec.
/// </summary>
public class ByoAssemblyTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-byo-cli", Guid.NewGuid().ToString("N")[..12]);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "TorchTrials.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no TorchTrials.sln above {AppContext.BaseDirectory}");
    }

    [Fact]
    public void The_example_spec_sweeps_the_trainable_of_its_class_library_and_keeps_a_loadable_best_checkpoint()
    {
        // Given the example spec naming byo_mlp in examples/byo-assembly/bin/ByoModels.dll
        var spec = Path.Combine(RepoRoot(), "examples", "byo-assembly", "byo-mlp.yaml");
        var console = new TestConsole();
        console.Profile.Width = 400;

        // When the CLI runs it
        int code = CliApp.Run(new[] { "run", spec, "--results-dir", _dir }, console, plain: true);

        // Then its 4 trials train to the end, and the best one learned the digits and kept its checkpoint on disk
        Assert.True(code == ExitCodes.Success, console.Output);
        Assert.Contains("4 trials: 4 terminated", console.Output);
        var grid = ResultGrid.Open(Assert.Single(Directory.GetDirectories(_dir)));
        Assert.All(grid, t => Assert.Equal("byo_mlp", t.TrainableName));
        var best = grid.GetBestResult();
        Assert.True(best.LastResult!.GetDouble("val_accuracy") >= 0.9, $"best val_accuracy {best.LastResult.GetDouble("val_accuracy")}");
        Assert.NotNull(best.CheckpointPath);
    }
}
