using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Data;
using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

// The class of examples/byo-class.cs, word for word (a test keeps them equal).
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
