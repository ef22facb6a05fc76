#:package TorchTrials@0.1.0
// Your own TorchSharp model, swept from any folder: `dotnet run own-model.cs` (CI runs it outside the repo).
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

IEnumerable<Metrics> Train(TrialConfig config, FunctionContext context)
{
    var generator = new Generator((ulong)context.Trial.Seed + 1);
    var x = randn(256, 8, generator: generator, device: context.Device);
    var y = x.sin().sum(1, keepdim: true);
    int width = config.GetInt("width");
    using var model = nn.Sequential(nn.Linear(8, width, device: context.Device), nn.Tanh(), nn.Linear(width, 1, device: context.Device));
    var optimizer = new Adam(model.parameters(), lr: config.GetDouble("lr"));
    while (true)
    {
        optimizer.zero_grad();
        var loss = nn.functional.mse_loss(model.forward(x), y);
        loss.backward();
        optimizer.step();
        yield return new Metrics { { "loss", loss } };
    }
}

var space = new SearchSpace { { "lr", Domain.LogUniform(1e-3, 1e-1) }, { "width", Domain.Choice(16, 64) } };
var tuner = new Tuner(Train, space, new TuneConfig { Metric = "loss", Mode = MetricMode.Min, NumSamples = 3, Seed = 1 },
    new RunConfig { Stop = new Dictionary<string, double> { ["training_iteration"] = 20 }, ResourcesPerTrial = new Resources(cpu: 1) });
var best = (await tuner.FitAsync()).GetBestResult();
Console.WriteLine($"best: {best.TrialId} loss={best.LastResult!.GetDouble("loss"):0.0000} config: {best.Config}");
