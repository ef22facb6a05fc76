#:project ../src/Runner/TorchTrials.Runner.csproj

// Your own TorchSharp model, class form:  dotnet run examples/byo-class.cs
using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Data;
using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

var registry = TrainableRegistry.CreateDefault().RegisterAssembly(typeof(DigitsMlp).Assembly); // finds [Trainable("byo_mlp")]
var tuner = new Tuner("byo_mlp", new SearchSpace { { "lr", Domain.LogUniform(1e-3, 3e-2) }, { "width", Domain.Choice(32, 128) } },
    new TuneConfig { Metric = "val_accuracy", Mode = MetricMode.Max, NumSamples = 4, ReuseTrainables = true },
    new RunConfig
    {
        StoragePath = Path.Combine(Path.GetTempPath(), "torchtrials-byo"),
        Stop = Stop.AfterIterations(10),
        Checkpoint = new CheckpointConfig { AtEnd = true, NumToKeep = 1, ScoreAttribute = "val_accuracy" },
    },
    registry);
var grid = await tuner.FitAsync();
var best = grid.GetBestResult();
using var bestModel = best.LoadCheckpointInto(DigitsMlp.BuildModel(best.Config));
Console.WriteLine($"best: {best.Config} val_accuracy={best.LastResult!.GetDouble("val_accuracy"):0.000}; {best.CheckpointPath}");
return grid.NumErrors == 0 && best.LastResult.GetDouble("val_accuracy") >= 0.9 ? 0 : 1;

/// <summary>
/// A two-layer MLP on the digits. Setup once per trial, Step once per epoch, Save and Restore for checkpoints (at the end,
/// and for pauses, PBT and failure recovery), Reset to take the next trial's config without reloading the data.
/// </summary>
[Trainable("byo_mlp", Description = "your own MLP on the digits (class form)")]
public sealed class DigitsMlp : Trainable, IHasDefaultResources
{
    private Tensor _x = null!, _y = null!, _validX = null!, _validY = null!;
    private nn.Module<Tensor, Tensor> _model = null!;
    private Adam _optimizer = null!;
    private Generator _shuffle = null!;

    public static nn.Module<Tensor, Tensor> BuildModel(TrialConfig config) =>
        nn.Sequential(nn.Linear(64, config.GetInt("width")), nn.ReLU(), nn.Linear(config.GetInt("width"), 10));

    /// <summary>What a trial asks for unless RunConfig.ResourcesPerTrial (spec: resources_per_trial) says otherwise.</summary>
    public static Resources? DefaultResourceRequest(TrialConfig config) => new Resources(cpu: 1);

    // Setup's tensors (the data) are kept until the trainable is disposed.
    public override void Setup(TrialConfig config)
    {
        var digits = DigitsDataset.Split(validationFraction: 0.2);
        (_x, _y) = (tensor(digits.TrainX, device: Context.Device).reshape(-1, 64), tensor(digits.TrainY, device: Context.Device));
        (_validX, _validY) = (tensor(digits.ValidX, device: Context.Device).reshape(-1, 64), tensor(digits.ValidY, device: Context.Device));
        Build(config);
    }

    // Modules own their parameters; the model, the optimizer and the generator are freed in Dispose.
    private void Build(TrialConfig config)
    {
        _model = BuildModel(config).to(Context.Device);
        _optimizer = new Adam(_model.parameters(), lr: config.GetDouble("lr"));
        _shuffle = new Generator((ulong)Context.Seed, Context.Device);
    }

    // Step runs inside a dispose scope that frees what it creates; the Metrics owns the tensor it reports.
    public override Metrics Step()
    {
        foreach (var batch in randperm(_y.shape[0], generator: _shuffle, device: Context.Device).split(64))
        {
            _optimizer.zero_grad();
            nn.functional.cross_entropy(_model.forward(_x.index_select(0, batch)), _y.index_select(0, batch)).backward();
            _optimizer.step();
        }
        return new Metrics { ["val_accuracy"] = _model.forward(_validX).argmax(1).eq(_validY).to(float32).mean() };
    }

    public override TrainableState Save()
    {
        var state = TrainableState.Capture(_model, _optimizer);
        state.AddGeneratorState("shuffle", _shuffle);
        return state;
    }

    public override void Restore(TrainableState state)
    {
        state.RestoreInto(_model, _optimizer);
        state.RestoreGeneratorState("shuffle", _shuffle);
    }

    // The next trial's config on the same data (Ray's reset_config); it creates no loose tensors, so it needs no scope.
    public override bool Reset(TrialConfig newConfig)
    {
        DisposeModel();
        Build(newConfig);
        return true;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) DisposeModel();
    }

    private void DisposeModel()
    {
        _optimizer?.Dispose();
        _model?.Dispose();
        _shuffle?.Dispose();
    }
}
