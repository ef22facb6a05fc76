using System.Globalization;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchTrials.Trainables.Builtin;
using TorchTrials.Trainables.Checkpoints;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Fusion;

/// <summary>
/// The fused form of the built-in ConvNet classifiers (<see cref="ClassifierModels.ConvNet"/> trained by
/// <see cref="SupervisedTrainable"/>): up to K trials of one channel count, hidden width, pooling, batch size, data split and
/// optimizer kind as one program (HFTA, Wang et al., MLSys 2021, repository UofT-EcoSystem/hfta: each Conv2d one grouped
/// convolution over the members' stacked channels as in hfta/ops/conv.py (<see cref="FusedConv2d"/>), each Linear one batched
/// matmul (<see cref="FusedLinear"/>), fused optimizers with per-member hyperparameters), each lane what its trial is alone:
/// <list type="bullet">
/// <item>initial weights: the unfused model built and initialised from the lane's seed, copied into its slices;</item>
/// <item>data order: the lane's own permutation per epoch (<see cref="SupervisedTrainable.EpochOrder"/>), all lanes' batches
/// gathered by one index_select and stacked along channels ([B, K·1, H, W], <see cref="FusedConvLayout"/>);</item>
/// <item>ReLU and max-pooling on the stacked layout (both act per channel), flattened to [K, B, features] for the head;</item>
/// <item>dropout: the lane's own probability and generator (<see cref="FusedDropout"/>; the unfused ConvNet always has its
/// dropout layer, which draws nothing at p = 0);</item>
/// <item>loss: per-member cross-entropy summed over the stepped lanes for one backward; a subset of lanes steps on leaf copies
/// of just their weights, and the optimizer (<see cref="FusedOptimizer"/>) steps only those lanes;</item>
/// <item>metrics: loss, val_loss, val_accuracy, mean_accuracy and lr, as the unfused classifier reports them.</item>
/// </list>
/// Lane checkpoints have the unfused trainable's layout (the unfused model's own state-dict names, "optimizer.I.FIELD",
/// "generator.trial"), and <see cref="RestoreLane"/> takes the model tensors of either in parameter order. Differences from
/// the unfused trainable: a lane whose epoch loss is not finite fails (alone, a NaN is just reported), and time_this_iter_s
/// is the fused step's.
/// </summary>
public sealed class FusedConvNetArray : FusedTrainable
{
    private const long ConvPadding = 1;
    private readonly int _side;
    private readonly long _classes;
    private readonly bool _poolEachBlock;
    private readonly string _trainableName;
    private readonly Func<TrialConfig, Device, (Tensor TrainX, Tensor TrainY, Tensor ValidX, Tensor ValidY)> _loadData;
    private readonly Generator?[] _generators;
    private readonly bool[] _configured;
    private FusedConv2d[] _convs = System.Array.Empty<FusedConv2d>();
    private FusedLinear[] _linears = System.Array.Empty<FusedLinear>();
    private FusedDropout? _dropout;
    private FusedOptimizer? _optimizer;
    private IReadOnlyList<string> _names = System.Array.Empty<string>();
    private Tensor? _trainX, _trainY, _validX, _validY;
    private int _channels;
    private int _batchSize;

    /// <param name="context">The array's context (<see cref="FusedTrainable.Context"/>).</param>
    /// <param name="side">Image side (1 x side x side inputs).</param>
    /// <param name="classes">Outputs.</param>
    /// <param name="poolEachBlock">As <see cref="ClassifierModels.ConvNet"/>: max-pool after the first block too.</param>
    /// <param name="trainableName">The unfused class's name, written into lane checkpoints as its own are.</param>
    /// <param name="loadData">The unfused class's training and validation data on the device ([N, 1, side, side] images), owned by the array.</param>
    public FusedConvNetArray(FusedArrayContext context, int side, long classes, bool poolEachBlock, string trainableName,
        Func<TrialConfig, Device, (Tensor TrainX, Tensor TrainY, Tensor ValidX, Tensor ValidY)> loadData)
    {
        Context = context;
        _side = side;
        _classes = classes;
        _poolEachBlock = poolEachBlock;
        _trainableName = trainableName;
        _loadData = loadData;
        _generators = new Generator?[context.Capacity];
        _configured = new bool[context.Capacity];
    }

    /// <summary>
    /// The fusion key of a ConvNet config of trainable <paramref name="name"/>: channels, hidden width, batch size, data split
    /// (validation_fraction, data_seed, and train_size where <paramref name="trainSize"/>) and optimizer kind; lr, weight decay,
    /// momentum, betas, eps, alpha, Nesterov and dropout differ per lane. The architecture's pooling is fixed by the trainable.
    /// </summary>
    public static string Key(string name, TrialConfig config, bool trainSize = false)
    {
        var parts = new List<string>
        {
            name,
            "channels=" + config.GetInt("channels", 16, min: 1).ToString(CultureInfo.InvariantCulture),
            "hidden=" + config.GetInt("hidden", 64, min: 1).ToString(CultureInfo.InvariantCulture),
            "batch_size=" + Math.Max(1, config.GetInt("batch_size", 64)).ToString(CultureInfo.InvariantCulture),
            "validation_fraction=" + (config.ContainsKey("validation_fraction") ? config.GetDouble("validation_fraction", 0).ToString("R", CultureInfo.InvariantCulture) : "default"),
            "data_seed=" + config.GetInt("data_seed", 0).ToString(CultureInfo.InvariantCulture),
            "optimizer=" + config.GetString("optimizer", "adam").ToLowerInvariant(),
        };
        if (trainSize)
            parts.Add("train_size=" + (config.ContainsKey("train_size") ? config.GetInt("train_size", 0).ToString(CultureInfo.InvariantCulture) : "all"));
        return string.Join('|', parts);
    }

    public override void SetupLane(FusedLane lane)
    {
        var config = lane.Config;
        Build(config);
        int k = lane.Index;
        long seed = lane.Trial.Seed;
        _generators[k]?.Dispose();
        _generators[k] = new Generator(SupervisedTrainable.GeneratorSeed(seed), Context.Device);
        using (var scope = NewDisposeScope())
        {
            // The unfused model, built and initialised as SupervisedTrainable.Build does, gives the lane its weights.
            using var scratch = new Generator(1, CPU);
            using var model = ClassifierModels.ConvNet(config, _side, _classes, scratch, _poolEachBlock);
            SupervisedTrainable.InitialiseWeights(model, seed);
            var named = TrainableState.ModelTensors(model);
            var fused = Parameters().ToList();
            if (named.Count != fused.Count)
                throw new InvalidOperationException($"the unfused ConvNet has {named.Count} model tensors, the fused one {fused.Count}");
            _names = named.Select(t => t.Key).ToList();
            using var _ = no_grad();
            for (int i = 0; i < fused.Count; i++)
            {
                using var slice = fused[i].select(0, k);
                slice.copy_(named[i].Value.to(Context.Device));
            }
        }
        _dropout!.SetP(k, config.GetDouble("dropout", 0, min: 0, maxExclusive: 1));
        _optimizer!.ResetLane(k);
        _optimizer.ConfigureLane(k, config);
        _configured[k] = true;
    }

    public override IReadOnlyList<LaneStepOutcome> Step(IReadOnlyList<FusedLane> lanes)
    {
        if (lanes.Count == 0) return System.Array.Empty<LaneStepOutcome>();
        foreach (var lane in lanes)
            if (!_configured[lane.Index]) throw new InvalidOperationException($"lane {lane.Index} of array {Context.ArrayId} was not set up");
        var device = Context.Device;
        long n = _trainY!.shape[0];
        var indices = lanes.Select(l => l.Index).ToArray();

        // Only the stepped lanes are computed (member j of every batch is lane indices[j]); with every lane in order, no index.
        int m = indices.Length;
        using var stepped = m == Capacity && indices.Select((k, j) => k == j).All(b => b)
            ? null
            : tensor(indices.Select(i => (long)i).ToArray(), device: device);
        // Each stepped lane's epoch order, as alone.
        var order = new long[m * n];
        for (int j = 0; j < m; j++)
        {
            var span = new Span<long>(order, (int)(j * n), (int)n);
            for (int i = 0; i < n; i++) span[i] = i;
            SupervisedTrainable.EpochOrder(lanes[j].Trial.Seed, lanes[j].Iteration).Shuffle(span);
        }
        using var perm = tensor(order, device: device).view(m, n);

        var lossSum = zeros(m, device: device);
        for (long start = 0; start < n; start += _batchSize)
        {
            Context.Cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            long rows = Math.Min(_batchSize, n - start);
            var idx = perm.narrow(1, start, rows).reshape(-1);
            var x = FusedConvLayout.Stack(_trainX!.index_select(0, idx), m);
            var y = _trainY.index_select(0, idx).view(m, rows);
            Tensor losses;
            if (stepped is null)
            {
                _optimizer!.ZeroGrad();
                losses = MemberLosses(Forward(x, m, training: true, indices, null), y);
                losses.sum().backward();
                _optimizer.Step(indices);
            }
            else
            {
                // Some lanes: leaf copies of just their weights, so neither the forward nor the backward touches the others'.
                var leaves = Parameters().Select(p => p.index_select(0, stepped).detach().requires_grad_(true)).ToList();
                losses = MemberLosses(Forward(x, m, training: true, indices, stepped, leaves), y);
                losses.sum().backward();
                _optimizer!.Step(indices, leaves.Select(l => l.grad!).ToList());
            }
            using var batchRows = rows.ToScalar();
            lossSum.add_(losses.detach(), alpha: batchRows);
        }
        using var total = n.ToScalar();
        var loss = lossSum.div(total);

        Tensor valLoss, accuracy;
        using (no_grad())
        {
            var output = Evaluate(_validX!, m, stepped);
            valLoss = MemberLosses(output, _validY!.unsqueeze(0).expand(m, -1));
            accuracy = output.argmax(2).eq(_validY.unsqueeze(0)).to(ScalarType.Float32).mean(new long[] { 1 });
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
        var fused = Parameters().ToList();
        using (no_grad())
        {
            for (int i = 0; i < fused.Count; i++)
            {
                using var slice = fused[i].select(0, k);
                tensors.Add(new(_names[i], slice.clone().DetachFromDisposeScope()));
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
            throw new InvalidOperationException($"checkpoint has {saved.Count} model tensors, the ConvNet has {fused.Count}");
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
        if (Key(_trainableName, config, trainSize: true) != Key(_trainableName, lane.Config, trainSize: true)) return false;
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

    /// <summary>Conv weights and biases, then linear weights and biases: the unfused ConvNet's <c>parameters()</c> order.</summary>
    private IEnumerable<Tensor> Parameters() => _convs.SelectMany(c => c.Parameters()).Concat(_linears.SelectMany(l => l.Parameters()));

    private int CheckConfigured(FusedLane lane) =>
        _configured[lane.Index] ? lane.Index : throw new InvalidOperationException($"lane {lane.Index} of array {Context.ArrayId} holds no trial");

    /// <summary>Builds the layers, the optimizer and the data at the first lane (the key fixes them for every later one).</summary>
    private void Build(TrialConfig config)
    {
        if (_optimizer is not null) return;
        _channels = config.GetInt("channels", 16, min: 1);
        int hidden = config.GetInt("hidden", 64, min: 1);
        _batchSize = Math.Max(1, config.GetInt("batch_size", 64));
        var device = Context.Device;
        int outSide = _poolEachBlock ? _side / 4 : _side / 2;
        _convs = new[]
        {
            new FusedConv2d(Capacity, 1, _channels, 3, ConvPadding, device),
            new FusedConv2d(Capacity, _channels, 2L * _channels, 3, ConvPadding, device),
        };
        _linears = new[]
        {
            new FusedLinear(Capacity, 2L * _channels * outSide * outSide, hidden, device),
            new FusedLinear(Capacity, hidden, _classes, device),
        };
        _dropout = new FusedDropout(Capacity, device);
        (_trainX, _trainY, _validX, _validY) = _loadData(config, device);
        _optimizer = FusedOptimizer.Create(config.GetString("optimizer", "adam"), Parameters().ToList(), Capacity);
    }

    /// <summary>
    /// The outputs [M, B, classes] of the <paramref name="m"/> lanes <paramref name="lanes"/> for stacked images
    /// <paramref name="x"/> [B, M·1, H, W] (all lanes in order when <paramref name="members"/> is null); with
    /// <paramref name="leaves"/>, on those weights (in <see cref="Parameters"/> order) instead of the array's.
    /// </summary>
    private Tensor Forward(Tensor x, long m, bool training, IReadOnlyList<int> lanes, Tensor? members, IReadOnlyList<Tensor>? leaves = null)
    {
        using var scope = NewDisposeScope();
        var h = x;
        for (int i = 0; i < _convs.Length; i++)
        {
            h = leaves is null ? _convs[i].Forward(h, members) : FusedConv2d.Apply(h, leaves[2 * i], leaves[2 * i + 1], ConvPadding);
            h = nn.functional.relu(h);
            if (i == _convs.Length - 1 || _poolEachBlock) h = nn.functional.max_pool2d(h, 2);
        }
        h = FusedConvLayout.Flatten(h, m);
        int offset = 2 * _convs.Length;
        h = leaves is null ? _linears[0].Forward(h, members) : FusedLinear.Apply(h, leaves[offset], leaves[offset + 1]);
        h = nn.functional.relu(h);
        if (training) h = _dropout!.Forward(h, lanes, _generators!, members);
        h = leaves is null ? _linears[1].Forward(h, members) : FusedLinear.Apply(h, leaves[offset + 2], leaves[offset + 3]);
        return scope.MoveToOuter(h);
    }

    /// <summary>The outputs [M, rows, classes] of the lanes for one shared input, in chunks as the unfused trainable evaluates.</summary>
    private Tensor Evaluate(Tensor x, long m, Tensor? members)
    {
        long n = x.shape[0];
        var chunks = new List<Tensor>();
        for (long start = 0; start < n; start += SupervisedTrainable.EvaluationChunk)
        {
            var chunk = x.narrow(0, start, Math.Min(SupervisedTrainable.EvaluationChunk, n - start));
            chunks.Add(Forward(FusedConvLayout.Shared(chunk, m), m, training: false, System.Array.Empty<int>(), members));
        }
        return chunks.Count == 1 ? chunks[0] : cat(chunks, 1);
    }

    /// <summary>Each member's mean cross-entropy over its rows: [M].</summary>
    private static Tensor MemberLosses(Tensor output, Tensor target)
    {
        long members = output.shape[0], rows = output.shape[1];
        var perRow = nn.functional.cross_entropy(output.reshape(members * rows, -1), target.reshape(-1), reduction: nn.Reduction.None);
        return perRow.view(members, rows).mean(new long[] { 1 });
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        _optimizer?.Dispose();
        foreach (var conv in _convs) conv.Dispose();
        foreach (var linear in _linears) linear.Dispose();
        _dropout?.Dispose();
        foreach (var g in _generators) g?.Dispose();
        _trainX?.Dispose();
        _trainY?.Dispose();
        _validX?.Dispose();
        _validY?.Dispose();
    }
}
