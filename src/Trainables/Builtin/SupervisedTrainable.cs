using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using TorchTrials.Trainables.Checkpoints;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Builtin;

/// <summary>
/// Shared machinery of the built-in supervised trainables: data resident on the trial's device, one iteration = one
/// pass over the training set in shuffled mini-batches, validation after each pass, metrics reported as device
/// tensors (read in batches by the runner), checkpoints of model and optimizer state through
/// <see cref="TrainableState.Capture(TorchSharp.torch.nn.Module, TorchSharp.torch.optim.Optimizer, System.Text.Json.Nodes.JsonObject)"/> plus the state of <see cref="TrialGenerator"/>. Hyperparameters read from the config:
/// <c>lr</c>, <c>batch_size</c>, <c>optimizer</c> (adam, adamw, sgd, rmsprop), <c>weight_decay</c>, <c>momentum</c> (sgd, rmsprop; 0.9),
/// <c>nesterov</c> (sgd; false), <c>beta1</c>, <c>beta2</c> (adam, adamw; 0.9, 0.999), <c>eps</c> (adam, adamw, rmsprop; 1e-8),
/// <c>alpha</c> (rmsprop; 0.99), as <see cref="Optim.OptimizerSettings"/> reads them (the fused optimizers read the same).
/// </summary>
public abstract class SupervisedTrainable : Trainable
{
    private Tensor? _trainX;
    private Tensor? _trainY;
    private Tensor? _validX;
    private Tensor? _validY;
    private Random _shuffle = new(0);
    private IReadOnlyList<KeyValuePair<string, Tensor>> _modelTensors = Array.Empty<KeyValuePair<string, Tensor>>();

    protected nn.Module<Tensor, Tensor>? Model { get; private set; }

    protected optim.Optimizer? Optimizer { get; private set; }

    /// <summary>
    /// The trial's own random generator on its device, seeded from the trial seed at every build: models draw dropout masks
    /// (<see cref="Modules.SeededDropout"/>) from it, never from LibTorch's process-wide generator that concurrent trials share.
    /// Checkpoints carry its state.
    /// </summary>
    protected Generator TrialGenerator => _generator ?? throw new InvalidOperationException("the trial generator exists only from Setup on");

    private Generator? _generator;

    private const string GeneratorName = "trial";

    /// <summary>Builds the network for <paramref name="config"/>; called in Setup and when a reset changes the architecture.</summary>
    protected abstract nn.Module<Tensor, Tensor> BuildModel(TrialConfig config);

    /// <summary>Training and validation data as host arrays: features row-major, targets (copied to the device by <see cref="LoadDeviceData"/>).</summary>
    protected virtual (Array TrainX, long[] TrainShape, Array TrainY, Array ValidX, long[] ValidShape, Array ValidY) LoadData(TrialConfig config) =>
        throw new NotSupportedException($"{GetType().Name} must override LoadData or LoadDeviceData");

    /// <summary>
    /// Training and validation data on <paramref name="device"/>, owned by this trainable (disposed with it; a view of data
    /// shared with other trials is fine). The default copies <see cref="LoadData"/>'s host arrays to the device.
    /// </summary>
    protected virtual (Tensor TrainX, Tensor TrainY, Tensor ValidX, Tensor ValidY) LoadDeviceData(TrialConfig config, Device device)
    {
        var data = LoadData(config);
        // Setup runs outside the host's step scope: the scope keeps temporaries alive until their native calls return.
        using var scope = NewDisposeScope();
        return (from_array(data.TrainX).reshape(data.TrainShape).to(device).DetachFromDisposeScope(),
            from_array(data.TrainY).to(device).DetachFromDisposeScope(),
            from_array(data.ValidX).reshape(data.ValidShape).to(device).DetachFromDisposeScope(),
            from_array(data.ValidY).to(device).DetachFromDisposeScope());
    }

    /// <summary>The loss of a batch.</summary>
    protected abstract Tensor Loss(Tensor output, Tensor target);

    /// <summary>Adds validation metrics (as 0-d tensors) for the validation outputs.</summary>
    protected abstract void AddValidationMetrics(Metrics metrics, Tensor output, Tensor target);

    public override void Setup(TrialConfig config)
    {
        (_trainX, _trainY, _validX, _validY) = LoadDeviceData(config, Context.Device);
        Build(config);
    }

    private void Build(TrialConfig config)
    {
        Optimizer?.Dispose();
        Model?.Dispose();
        _generator?.Dispose();
        // Another stream than the weight initialiser's (which is seeded with the trial seed itself).
        _generator = new Generator(GeneratorSeed(Context.Seed), Context.Device);
        var model = BuildModel(config);
        InitialiseWeights(model, Context.Seed);
        model.to(Context.Device);
        Model = model;
        _modelTensors = TrainableState.ModelTensors(model);
        Optimizer = CreateOptimizer(model.parameters(), config);
        _shuffle = new Random(unchecked((int)Context.Seed));
    }

    public override Metrics Step()
    {
        var model = Model!;
        var optimizer = Optimizer!;
        int batchSize = Math.Max(1, Config.GetInt("batch_size", 64));
        long n = _trainY!.shape[0];
        model.train();

        var order = new long[n];
        for (long i = 0; i < n; i++) order[i] = i;
        // The epoch's order depends only on the trial seed and the epoch, so a restored trial replays it exactly.
        EpochOrder(Context.Seed, Iteration).Shuffle(order);
        using var perm = tensor(order, device: Context.Device);

        var lossSum = zeros(1, device: Context.Device);
        for (long start = 0; start < n; start += batchSize)
        {
            Context.Cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var idx = perm.narrow(0, start, Math.Min(batchSize, n - start));
            var x = _trainX!.index_select(0, idx);
            var y = _trainY.index_select(0, idx);
            optimizer.zero_grad();
            var loss = Loss(model.forward(x), y);
            loss.backward();
            optimizer.step();
            using var batchRows = idx.shape[0].ToScalar();
            lossSum.add_(loss.detach(), alpha: batchRows);
        }

        var metrics = new Metrics();
        using var rows = n.ToScalar();
        metrics.Add("loss", lossSum.div(rows));
        model.eval();
        using (no_grad())
        {
            var output = Evaluate(model, _validX!);
            metrics.Add("val_loss", Loss(output, _validY!));
            AddValidationMetrics(metrics, output, _validY!);
        }
        metrics.Add("lr", Config.GetDouble("lr", 1e-3));
        return metrics;
    }

    /// <summary>The model's outputs for <paramref name="x"/>, in chunks of <see cref="EvaluationChunk"/> rows so that a large validation set fits.</summary>
    private static Tensor Evaluate(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        long n = x.shape[0];
        if (n <= EvaluationChunk) return model.forward(x);
        var chunks = new List<Tensor>();
        for (long start = 0; start < n; start += EvaluationChunk)
            chunks.Add(model.forward(x.narrow(0, start, Math.Min(EvaluationChunk, n - start))));
        return cat(chunks, 0);
    }

    internal const long EvaluationChunk = 2048;

    /// <summary>The seed of a trial's dropout generator: another stream than the weight initialiser's (which is seeded with the trial seed itself).</summary>
    internal static ulong GeneratorSeed(long trialSeed) => unchecked((ulong)trialSeed * 0x9E3779B97F4A7C15UL + 1);

    /// <summary>What shuffles epoch <paramref name="iteration"/>'s order: it depends only on the trial seed and the epoch.</summary>
    internal static Random EpochOrder(long trialSeed, long iteration) => new(unchecked((int)(trialSeed * 1_000_003 + iteration)));

    /// <summary>The data <see cref="LoadDeviceData"/> gives, for a fused array of this class (which never runs Setup on this instance).</summary>
    internal (Tensor TrainX, Tensor TrainY, Tensor ValidX, Tensor ValidY) DeviceDataFor(TrialConfig config, Device device) => LoadDeviceData(config, device);

    /// <summary>The name of the trial generator's state in checkpoints.</summary>
    internal const string GeneratorStateName = GeneratorName;

    /// <summary>The live tensors a checkpoint covers (parameters, buffers, optimizer state), for measurements against hand-written copies.</summary>
    public IEnumerable<Tensor> LiveTensors()
    {
        foreach (var (_, t) in _modelTensors) yield return t;
        if (Optimizer is TorchSharp.Modules.OptimizerHelper helper)
            foreach (var state in helper.state_dict().State)
                foreach (var field in state.GetType().GetFields())
                    if (field.GetValue(state) is Tensor t) yield return t;
    }

    public override TrainableState Save()
    {
        var state = TrainableState.Capture(_modelTensors, Optimizer, new JsonObject { ["trainable"] = GetType().Name });
        state.AddGeneratorState(GeneratorName, TrialGenerator);
        return state;
    }

    public override void Restore(TrainableState state)
    {
        state.RestoreInto(_modelTensors, Optimizer);
        state.RestoreGeneratorState(GeneratorName, TrialGenerator);
    }

    /// <summary>
    /// Takes a new config: a fresh model and optimizer with the new hyperparameters (the state a restore may then
    /// overwrite, which is how PBT's explore uses it), on the same device and data.
    /// </summary>
    public override bool Reset(TrialConfig newConfig)
    {
        Config = newConfig;
        Build(newConfig);
        return true;
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        Optimizer?.Dispose();
        Model?.Dispose();
        _generator?.Dispose();
        _trainX?.Dispose();
        _trainY?.Dispose();
        _validX?.Dispose();
        _validY?.Dispose();
    }

    /// <summary>
    /// The optimizer named by <c>optimizer</c> in the config, one of TorchTrials' own (<see cref="Optim.TrialOptimizer{TState}"/>:
    /// TorchSharp's fail at random under collections); an unknown name is an error naming the key.
    /// </summary>
    public static optim.Optimizer CreateOptimizer(IEnumerable<Parameter> parameters, TrialConfig config) =>
        Optim.OptimizerSettings.FromConfig(config).Create(parameters);

    /// <summary>
    /// PyTorch's default initialisation (uniform in ±1/sqrt(fan_in) for weights and biases of linear and conv layers),
    /// drawn from a generator seeded per trial so that trials are reproducible even when they start concurrently.
    /// </summary>
    protected internal static void InitialiseWeights(nn.Module model, long seed)
    {
        using var generator = new Generator(unchecked((ulong)seed), CPU);
        using var _ = no_grad();
        foreach (var (_, module) in model.named_modules())
        {
            if (module is not (Linear or Conv2d)) continue;
            var parameters = module.named_parameters(recurse: false).ToDictionary(p => p.name, p => p.parameter);
            if (!parameters.TryGetValue("weight", out var weight)) continue;
            long fanIn = weight.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
            double bound = 1.0 / Math.Sqrt(fanIn);
            using var width = (2 * bound).ToScalar();
            using var offset = bound.ToScalar();
            foreach (var p in parameters.Values)
            {
                using var values = rand(p.shape, generator: generator);
                p.copy_(values.mul_(width).sub_(offset));
            }
        }
    }
}
