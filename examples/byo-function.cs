#:project ../src/Runner/TorchTrials.Runner.csproj

// Your own TorchSharp model, function form:  dotnet run examples/byo-function.cs
using TorchSharp;
using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Data;
using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

static nn.Module<Tensor, Tensor> Model(TrialConfig c) => nn.Sequential(nn.Linear(64, c.GetInt("width")), nn.ReLU(), nn.Linear(c.GetInt("width"), 10));

// One yield per epoch. What the function creates before its first yield (data, model) lives until it returns.
static IEnumerable<Metrics> Train(TrialConfig config, FunctionContext context)
{
    var digits = DigitsDataset.Split(validationFraction: 0.2);
    var (x, y) = (tensor(digits.TrainX, device: context.Device).reshape(-1, 64), tensor(digits.TrainY, device: context.Device));
    var (validX, validY) = (tensor(digits.ValidX, device: context.Device).reshape(-1, 64), tensor(digits.ValidY, device: context.Device));
    using var model = Model(config).to(context.Device);
    using var optimizer = new Adam(model.parameters(), lr: config.GetDouble("lr"));
    using var shuffle = new Generator((ulong)context.Trial.Seed, context.Device);
    context.Checkpoint?.RestoreInto(model, optimizer); // set when the trial resumes from a checkpoint
    while (true)
    {
        foreach (var batch in randperm(digits.TrainCount, generator: shuffle, device: context.Device).split(64))
        {
            optimizer.zero_grad();
            nn.functional.cross_entropy(model.forward(x.index_select(0, batch)), y.index_select(0, batch)).backward();
            optimizer.step();
        }
        var accuracy = model.forward(validX).argmax(1).eq(validY).to(float32).mean();
        yield return new Metrics { ["val_accuracy"] = accuracy, Checkpoint = TrainableState.Capture(model, optimizer) };
    }
}

var tuner = new Tuner(Train, new SearchSpace { { "lr", Domain.LogUniform(1e-3, 3e-2) }, { "width", Domain.Choice(32, 128) } },
    new TuneConfig { Metric = "val_accuracy", Mode = MetricMode.Max, NumSamples = 4 },
    new RunConfig { StoragePath = Path.Combine(Path.GetTempPath(), "torchtrials-byo"), Stop = Stop.AfterIterations(10),
        Checkpoint = new CheckpointConfig { AtEnd = true } });
var best = (await tuner.FitAsync()).GetBestResult();
using var bestModel = best.LoadCheckpointInto(Model(best.Config));
Console.WriteLine($"best: {best.Config} val_accuracy={best.LastResult!.GetDouble("val_accuracy"):0.000}; {best.CheckpointPath}");

// Use the loaded model: it scores what its trial reported (the exit code says whether it did).
var digits = DigitsDataset.Split(validationFraction: 0.2);
using var validX = tensor(digits.ValidX).reshape(-1, 64);
using var validY = tensor(digits.ValidY);
double accuracy = bestModel.forward(validX).argmax(1).eq(validY).to(float32).mean().item<float>();
return accuracy == best.LastResult.GetDouble("val_accuracy") && accuracy >= 0.9 ? 0 : 1;
