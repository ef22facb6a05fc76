#:project ../src/Runner/TorchTrials.Runner.csproj

// A sweep through the library, as a .NET 10 file-based app:  dotnet run examples/quickstart.cs
// The same Tuner works from notebooks and scripts: build a search space, a TuneConfig, a RunConfig, and Fit.
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Search;

var space = new SearchSpace
{
    { "lr", Domain.LogUniform(3e-4, 1e-2) },
    { "width", Domain.Choice(64, 128) },
    { "depth", Domain.Grid(1, 2) },
    { "batch_size", 64 },
};

var tuner = new Tuner(
    "mlp_digits",
    space,
    new TuneConfig { Metric = "val_accuracy", Mode = MetricMode.Max, NumSamples = 2, Seed = 1 },
    new RunConfig
    {
        Name = $"quickstart-{DateTime.Now:yyyyMMdd-HHmmss}",
        StoragePath = Path.Combine(Path.GetTempPath(), "torchtrials-quickstart"),
        Stop = Stop.AfterIterations(10),
        ResourcesPerTrial = new Resources(cpu: 1),
        Checkpoint = new CheckpointConfig { AtEnd = true },
    });

var grid = await tuner.FitAsync();
var best = grid.GetBestResult();
Console.WriteLine($"{grid.Count} trials, {grid.NumErrors} errors; results in {grid.ExperimentPath}");
Console.WriteLine($"best: {best.TrialId} val_accuracy={best.LastResult!.GetDouble("val_accuracy"):0.0000} config: {best.Config}");
Console.WriteLine($"its checkpoint: {best.CheckpointPath}");
return best.LastResult.GetDouble("val_accuracy") >= 0.9 ? 0 : 1;
