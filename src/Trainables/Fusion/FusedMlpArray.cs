using System.Globalization;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchTrials.Trainables.Builtin;
using TorchTrials.Trainables.Checkpoints;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Fusion;

/// <summary>
/// The fused form of the built-in MLP classifiers (<see cref="ClassifierModels.Mlp"/> trained by
/// <see cref="SupervisedTrainable"/>): up to K trials of one width, depth, batch size, data split and optimizer kind as one
/// program (HFTA, Wang et al., MLSys 2021, repository UofT-EcoSystem/hfta: fused Linear as a batched matmul, fused
/// optimizers with per-member hyperparameters), each lane what its trial is alone:
/// <list type="bullet">
/// <item>initial weights: the unfused model built and initialised from the lane's seed, copied into its slices;</item>
/// <item>data order: the lane's own permutation per epoch (<see cref="SupervisedTrainable.EpochOrder"/>), all lanes' batches
/// gathered by one index_select into [K, B, features] and trained features first, [K, features, B]
/// (<see cref="FusedLinear.ApplyFeatureMajor"/>; the same function, its matrices multiplied in the orientation they are stored);</item>
/// <item>dropout: the lane's own probability and generator (<see cref="FusedDropout"/>);</item>
/// <item>loss: per-member cross-entropy, summed over the stepped lanes for one backward, so each member's gradient is its own
/// loss's; the optimizer (<see cref="FusedOptimizer"/>) steps only those lanes;</item>
/// <item>metrics: loss, val_loss, val_accuracy, mean_accuracy and lr, as the unfused classifier reports them.</item>
/// </list>
/// Lane checkpoints have the unfused trainable's layout ("model.I.weight" named by the lane's own layer indices, which
/// depend on whether it has dropout layers; "optimizer.I.FIELD"; "generator.trial"), and <see cref="RestoreLane"/> takes the
/// model tensors of either layout in parameter order. Differences from the unfused trainable: a lane whose epoch loss is
/// not finite fails (alone, a NaN is just reported), and time_this_iter_s is the fused step's.
/// </summary>
public sealed class FusedMlpArray : FusedTrainable
{
    private readonly long _inputs;
    private readonly long _classes;
    private readonly string _trainableName;
    private readonly Func<TrialConfig, Device, (Tensor TrainX, Tensor TrainY, Tensor ValidX, Tensor ValidY)> _loadData;
    private readonly Generator?[] _generators;
    private readonly bool[] _configured;
    private FusedLinear[] _layers = Array.Empty<FusedLinear>();
    private FusedDropout? _dropout;
    private FusedOptimizer? _optimizer;
    private Tensor? _trainX, _trainY, _validX, _validY;
    private int _width;
    private int _depth;
    private int _batchSize;
    private readonly Func<TrialConfig, string> _key;

    /// <param name="context">The array's context (<see cref="FusedTrainable.Context"/>).</param>
    /// <param name="inputs">Features per example.</param>
    /// <param name="classes">Outputs.</param>
    /// <param name="trainableName">The unfused class's name, written into lane checkpoints as its own are.</param>
    /// <param name="loadData">The unfused class's training and validation data on the device, owned by the array.</param>
    /// <param name="key">The trainable's fusion key (<see cref="IFusableTrainable.FusionKey"/>; <see cref="Key"/> with the digits defaults when null): a new config fits a lane only with its lane's key.</param>
    public FusedMlpArray(FusedArrayContext context, long inputs, long classes, string trainableName,
        Func<TrialConfig, Device, (Tensor TrainX, Tensor TrainY, Tensor ValidX, Tensor ValidY)> loadData,
        Func<TrialConfig, string?>? key = null)
    {
        _key = config => key?.Invoke(config) ?? Key(trainableName, config);
        Context = context;
        _inputs = inputs;
        _classes = classes;
        _trainableName = trainableName;
        _loadData = loadData;
        _generators = new Generator?[context.Capacity];
        _configured = new bool[context.Capacity];
    }

    /// <summary>The digits trainables' validation fraction when a config sets none.</summary>
    public const double DigitsValidationFraction = 0.2;

    /// <summary>
    /// The fusion key of an MLP config of trainable <paramref name="name"/>: width, depth, batch size, data split and optimizer
    /// kind; lr, weight decay, momentum, betas, eps, Nesterov and dropout differ per lane. The data split is the one the
    /// unfused trainable loads: validation_fraction (<paramref name="defaultValidationFraction"/> when the config sets none),
    /// data_seed, and train_size where <paramref name="trainSize"/> (a trainable that reads it), since every lane of an array
    /// trains on the array's one copy of the data.
    /// </summary>
    public static string Key(string name, TrialConfig config, double defaultValidationFraction = DigitsValidationFraction, bool trainSize = false)
    {
        var key = string.Join('|', name,
            "width=" + config.GetInt("width", 128, min: 1).ToString(CultureInfo.InvariantCulture),
            "depth=" + config.GetInt("depth", 2, min: 0).ToString(CultureInfo.InvariantCulture),
            "batch_size=" + Math.Max(1, config.GetInt("batch_size", 64)).ToString(CultureInfo.InvariantCulture),
            "validation_fraction=" + config.GetDouble("validation_fraction", defaultValidationFraction).ToString("R", CultureInfo.InvariantCulture),
            "data_seed=" + config.GetInt("data_seed", 0).ToString(CultureInfo.InvariantCulture),
            "optimizer=" + config.GetString("optimizer", "adam").ToLowerInvariant());
        return trainSize
            ? key + "|train_size=" + (config.ContainsKey("train_size") ? config.GetInt("train_size", 0).ToString(CultureInfo.InvariantCulture) : "all")
            : key;
    }

    public override void SetupLane(FusedLane lane)
    {
        var config = lane.Config;
        Build(config);
        int k = lane.Index;
        double dropout = config.GetDouble("dropout", 0, min: 0, maxExclusive: 1);
        long seed = lane.Trial.Seed;
        _generators[k]?.Dispose();
        _generators[k] = new Generator(SupervisedTrainable.GeneratorSeed(seed), Context.Device);
        using (var scope = NewDisposeScope())
        {
            // The unfused model, built and initialised as SupervisedTrainable.Build does, gives the lane its weights.
            using var scratch = new Generator(1, CPU);
            using var model = ClassifierModels.Mlp(config, _inputs, _classes, scratch);
            SupervisedTrainable.InitialiseWeights(model, seed);
            var parameters = model.parameters().ToList();
            var fused = Parameters().ToList();
            using var _ = no_grad();
            for (int i = 0; i < fused.Count; i++)
            {
                using var slice = fused[i].select(0, k);
                slice.copy_(parameters[i].to(Context.Device));
            }
        }
        _dropout!.SetP(k, dropout);
        _optimizer!.ResetLane(k);
        _optimizer.ConfigureLane(k, config);
        _configured[k] = true;
    }

    public override IReadOnlyList<LaneStepOutcome> Step(IReadOnlyList<FusedLane> lanes)
    {
        if (lanes.Count == 0) return Array.Empty<LaneStepOutcome>();
        foreach (var lane in lanes)
            if (!_configured[lane.Index]) throw new InvalidOperationException($"lane {lane.Index} of array {Context.ArrayId} was not set up");
        var device = Context.Device;
        long n = _trainY!.shape[0];
        var indices = lanes.Select(l => l.Index).ToArray();

        // Each lane's epoch order, as alone; idle lanes take the identity (their outputs are not used).
        // Only the stepped lanes are computed (row j of every batch is lane indices[j]); with every lane stepped, no index.
        int rows0 = indices.Length;
        using var stepped = rows0 == Capacity && indices.Select((k, j) => k == j).All(b => b)
            ? null
            : tensor(indices.Select(i => (long)i).ToArray(), device: device);
        // Each stepped lane's epoch order, as alone.
        var order = new long[rows0 * n];
        for (int j = 0; j < rows0; j++)
        {
            var span = new Span<long>(order, (int)(j * n), (int)n);
            for (int i = 0; i < n; i++) span[i] = i;
            SupervisedTrainable.EpochOrder(lanes[j].Trial.Seed, lanes[j].Iteration).Shuffle(span);
        }
        using var perm = tensor(order, device: device).view(rows0, n);

        // Some lanes: leaf copies of just their weights and a compact optimizer over them for the whole epoch, so neither
        // the forward, the backward nor the optimizer touches the other lanes, and nothing is gathered or scattered per batch.
        var leaves = stepped is null ? null : Parameters().Select(p => p.index_select(0, stepped).detach().requires_grad_(true)).ToList();
        var optimizer = leaves is null ? _optimizer! : _optimizer!.Gather(indices, leaves);
        var steppedRows = leaves is null ? indices : Enumerable.Range(0, rows0).ToArray();
        var lossSum = zeros(rows0, device: device);
        try
        {
            for (long start = 0; start < n; start += _batchSize)
            {
                Context.Cancellation.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                long rows = Math.Min(_batchSize, n - start);
                var idx = perm.narrow(1, start, rows).reshape(-1);
                var x = _trainX!.index_select(0, idx).view(rows0, rows, -1).transpose(1, 2);
                var y = _trainY.index_select(0, idx).view(rows0, rows);
                optimizer.ZeroGrad();
                var losses = MemberLosses(Forward(x, training: true, indices, stepped, leaves), y);
                losses.sum().backward();
                optimizer.Step(steppedRows);
                using var batchRows = rows.ToScalar();
                lossSum.add_(losses.detach(), alpha: batchRows);
            }
            if (leaves is not null)
            {
                using var _ = no_grad();
                foreach (var (p, leaf) in Parameters().Zip(leaves)) p.index_copy_(0, stepped!, leaf);
                _optimizer!.Scatter(optimizer, indices);
            }
        }
        finally
        {
            if (leaves is not null)
            {
                optimizer.Dispose();
                foreach (var leaf in leaves)
                {
                    leaf.grad?.Dispose();
                    leaf.Dispose();
                }
            }
        }
        using var total = n.ToScalar();
        var loss = lossSum.div(total);

        Tensor valLoss, accuracy;
        using (no_grad())
        {
            var output = Evaluate(_validX!, stepped);
            valLoss = MemberLosses(output, _validY!.unsqueeze(0).expand(rows0, -1));
            accuracy = output.argmax(1).eq(_validY.unsqueeze(0)).to(ScalarType.Float32).mean(new long[] { 1 });
        }

        var finite = loss.isfinite().cpu().data<bool>().ToArray();
        var outcomes = new LaneStepOutcome[lanes.Count];
        for (int j = 0; j < lanes.Count; j++)
        {
            var lane = lanes[j];
            int k = lane.Index;
            if (!finite[j])
            {
                outcomes[j] = LaneStepOutcome.Failed(new ArithmeticException(
                    $"trial {lane.Trial.TrialId}: the training loss of its epoch {lane.Iteration + 1} is not finite (lane {k} of fused array {Context.ArrayId}; lr {lane.Config.GetDouble("lr", 1e-3)})"));
                continue;
            }
            var metrics = new Metrics();
            metrics.Add("loss", loss.select(0, j));
            metrics.Add("val_loss", valLoss.select(0, j));
            metrics.Add("val_accuracy", accuracy.select(0, j));
            metrics.Add("mean_accuracy", accuracy.select(0, j).clone());
            metrics.Add("lr", lane.Config.GetDouble("lr", 1e-3));
            outcomes[j] = LaneStepOutcome.Ok(metrics);
        }
        return outcomes;
    }

    public override TrainableState SaveLane(FusedLane lane)
    {
        int k = CheckConfigured(lane);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        var metadata = new JsonObject { ["trainable"] = _trainableName };
        var names = ModelTensorNames(_depth, _dropout!.P(k) > 0);
        var fused = Parameters().ToList();
        using (no_grad())
        {
            for (int i = 0; i < fused.Count; i++)
            {
                using var slice = fused[i].select(0, k);
                tensors.Add(new(names[i], slice.clone().DetachFromDisposeScope()));
            }
            _optimizer!.SaveLane(k, tensors, metadata);
        }
        var state = new TrainableState(tensors, metadata);
        state.AddGeneratorState(SupervisedTrainable.GeneratorStateName, _generators[k]!);
        return state;
    }

    public override void RestoreLane(FusedLane lane, TrainableState state)
    {
        int k = CheckConfigured(lane);
        var fused = Parameters().ToList();
        var saved = state.Tensors.Where(t => t.Key.StartsWith("model.", StringComparison.Ordinal)).ToList();
        if (saved.Count != fused.Count)
            throw new InvalidOperationException($"checkpoint has {saved.Count} model tensors, an MLP of depth {_depth} has {fused.Count}");
        for (int i = 0; i < fused.Count; i++)
        {
            var expected = fused[i].shape.Skip(1).ToArray();
            if (!saved[i].Value.shape.SequenceEqual(expected))
                throw new InvalidOperationException($"checkpoint tensor {saved[i].Key} is [{string.Join(", ", saved[i].Value.shape)}], the lane's is [{string.Join(", ", expected)}]");
        }
        using (no_grad())
        {
            for (int i = 0; i < fused.Count; i++)
            {
                using var slice = fused[i].select(0, k);
                slice.copy_(saved[i].Value, true);
            }
        }
        _optimizer!.RestoreLane(k, state);
        state.RestoreGeneratorState(SupervisedTrainable.GeneratorStateName, _generators[k]!);
    }

    public override bool ReconfigureLane(FusedLane lane, TrialConfig config)
    {
        int k = CheckConfigured(lane);
        if (_key(config) != _key(lane.Config)) return false;
        _dropout!.SetP(k, config.GetDouble("dropout", 0, min: 0, maxExclusive: 1));
        _optimizer!.ConfigureLane(k, config);
        return true;
    }

    /// <summary>An on-device copy of the slices (weights, optimizer state) and the generator state; hyperparameters stay the target lane's.</summary>
    public override void CopyLane(FusedLane from, FusedLane to)
    {
        int source = CheckConfigured(from);
        int target = CheckConfigured(to);
        using (no_grad())
        {
            foreach (var p in Parameters())
            {
                using var dst = p.select(0, target);
                using var src = p.select(0, source);
                dst.copy_(src);
            }
        }
        _optimizer!.CopyLane(source, target);
        using var generatorState = _generators[source]!.get_state();
        _generators[target]!.set_state(generatorState);
    }

    public override void ReleaseLane(FusedLane lane) => _configured[lane.Index] = false;

    /// <summary>"model.I.weight" / "model.I.bias" of each linear layer in the unfused nn.Sequential (linear, ReLU[, dropout]) per hidden layer.</summary>
    public static IReadOnlyList<string> ModelTensorNames(int depth, bool dropout)
    {
        int stride = dropout ? 3 : 2;
        var names = new List<string>();
        for (int i = 0; i <= depth; i++)
        {
            int index = i * stride;
            names.Add($"model.{index}.weight");
            names.Add($"model.{index}.bias");
        }
        return names;
    }

    private IEnumerable<Tensor> Parameters() => _layers.SelectMany(l => l.Parameters());

    private int CheckConfigured(FusedLane lane) =>
        _configured[lane.Index] ? lane.Index : throw new InvalidOperationException($"lane {lane.Index} of array {Context.ArrayId} holds no trial");

    /// <summary>Builds the layers, the optimizer and the data at the first lane (the key fixes them for every later one).</summary>
    private void Build(TrialConfig config)
    {
        if (_optimizer is not null) return;
        _width = config.GetInt("width", 128, min: 1);
        _depth = config.GetInt("depth", 2, min: 0);
        _batchSize = Math.Max(1, config.GetInt("batch_size", 64));
        var device = Context.Device;
        var layers = new List<FusedLinear>();
        long inputs = _inputs;
        for (int i = 0; i < _depth; i++)
        {
            layers.Add(new FusedLinear(Capacity, inputs, _width, device));
            inputs = _width;
        }
        layers.Add(new FusedLinear(Capacity, inputs, _classes, device));
        _layers = layers.ToArray();
        _dropout = new FusedDropout(Capacity, device);
        (_trainX, _trainY, _validX, _validY) = _loadData(config, device);
        _optimizer = FusedOptimizer.Create(config.GetString("optimizer", "adam"), Parameters().ToList(), Capacity);
    }

    /// <summary>
    /// The outputs [M, classes, B] of the lanes <paramref name="lanes"/> (row j = lane lanes[j]; all lanes in order when
    /// <paramref name="members"/> is null) for <paramref name="x"/> [M, features, B] or a shared [features, B]: features first
    /// throughout (<see cref="FusedLinear.ApplyFeatureMajor"/>); dropout sees each member's [B, width] as alone.
    /// </summary>
    private Tensor Forward(Tensor x, bool training, IReadOnlyList<int> lanes, Tensor? members, IReadOnlyList<Tensor>? leaves = null)
    {
        using var scope = NewDisposeScope();
        var h = x;
        for (int i = 0; i < _layers.Length; i++)
        {
            h = leaves is null ? _layers[i].ForwardFeatureMajor(h, members) : FusedLinear.ApplyFeatureMajor(h, leaves[2 * i], leaves[2 * i + 1]);
            if (i == _layers.Length - 1) break;
            h = nn.functional.relu(h);
            if (training) h = _dropout!.Forward(h.transpose(1, 2), lanes, _generators!, members).transpose(1, 2);
        }
        return scope.MoveToOuter(h);
    }

    /// <summary>The outputs [K, classes, rows] of every lane for one shared input [rows, features], in chunks as the unfused trainable evaluates.</summary>
    private Tensor Evaluate(Tensor x, Tensor? members)
    {
        long n = x.shape[0];
        if (n <= SupervisedTrainable.EvaluationChunk) return Forward(x.t(), training: false, Array.Empty<int>(), members);
        var chunks = new List<Tensor>();
        for (long start = 0; start < n; start += SupervisedTrainable.EvaluationChunk)
            chunks.Add(Forward(x.narrow(0, start, Math.Min(SupervisedTrainable.EvaluationChunk, n - start)).t(), training: false, Array.Empty<int>(), members));
        return cat(chunks, 2);
    }

    /// <summary>Each member's mean cross-entropy over its rows, from outputs [K, classes, rows] and targets [K, rows]: [K].</summary>
    private static Tensor MemberLosses(Tensor output, Tensor target) =>
        nn.functional.cross_entropy(output, target, reduction: nn.Reduction.None).mean(new long[] { 1 });

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        _optimizer?.Dispose();
        foreach (var layer in _layers) layer.Dispose();
        _dropout?.Dispose();
        foreach (var g in _generators) g?.Dispose();
        _trainX?.Dispose();
        _trainY?.Dispose();
        _validX?.Dispose();
        _validY?.Dispose();
    }
}
