#:project ../src/Runner/TorchTrials.Runner.csproj

// Your own model, fusable: many same-shape trials train as one program on one slot.  dotnet run examples/byo-fused.cs
using System.Text.Json.Nodes;
using TorchSharp;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using TorchTrials.Trainables.Data;
using TorchTrials.Trainables.Fusion;
using TorchTrials.Trainables.Optim;
using static TorchSharp.torch;

var registry = TrainableRegistry.CreateDefault().RegisterAssembly(typeof(FusableMlp).Assembly); // finds [Trainable("byo_fused")]
var tuner = new Tuner("byo_fused", new SearchSpace { { "lr", Domain.LogUniform(1e-3, 3e-2) }, { "width", Domain.Choice(32, 64) } },
    new TuneConfig { Metric = "val_accuracy", Mode = MetricMode.Max, NumSamples = 12, Fusion = new FusionOptions { MaxMembers = 8 } },
    new RunConfig { StoragePath = Path.Combine(Path.GetTempPath(), "torchtrials-byo"), Stop = Stop.AfterIterations(5) },
    registry);
var grid = await tuner.FitAsync();
var best = grid.GetBestResult();
Console.WriteLine($"best: {best.Config} val_accuracy={best.LastResult!.GetDouble("val_accuracy"):0.000}, lane {best.Lane}");
return grid.NumErrors == 0 && grid.All(r => r.Lane is not null) && best.LastResult.GetDouble("val_accuracy") >= 0.9 ? 0 : 1;

/// <summary>
/// A one-hidden-layer MLP on the digits that trains alone (the Trainable) or fused (IFusableTrainable): trials with the
/// same width share an array, each lane with its own lr, seed and data order; a lane's checkpoint is the alone one.
/// </summary>
[Trainable("byo_fused", Description = "your own fusable MLP on the digits")]
public sealed class FusableMlp : Trainable, IFusableTrainable
{
    private Tensor _x = null!, _y = null!, _validX = null!, _validY = null!;
    private nn.Module<Tensor, Tensor> _model = null!;
    private Adam _optimizer = null!;
    private Generator _shuffle = null!;

    public static (Tensor X, Tensor Y, Tensor ValidX, Tensor ValidY) Data(Device device)
    {
        var digits = DigitsDataset.Split(validationFraction: 0.2);
        return (tensor(digits.TrainX, device: device).reshape(-1, 64), tensor(digits.TrainY, device: device),
            tensor(digits.ValidX, device: device).reshape(-1, 64), tensor(digits.ValidY, device: device));
    }

    public static nn.Module<Tensor, Tensor> BuildModel(TrialConfig config, long seed)
    {
        var model = nn.Sequential(nn.Linear(64, config.GetInt("width")), nn.ReLU(), nn.Linear(config.GetInt("width"), 10));
        using var init = new Generator((ulong)seed);
        using var _ = no_grad();
        foreach (var p in model.parameters()) p.normal_(0, 0.1, generator: init);
        return model;
    }

    public override void Setup(TrialConfig config)
    {
        (_x, _y, _validX, _validY) = Data(Context.Device);
        _model = BuildModel(config, Context.Seed).to(Context.Device);
        _optimizer = new Adam(_model.parameters(), lr: config.GetDouble("lr"));
        _shuffle = new Generator((ulong)Context.Seed, Context.Device);
    }

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

    protected override void Dispose(bool disposing)
    {
        _optimizer?.Dispose();
        _model?.Dispose();
        _shuffle?.Dispose();
        foreach (var t in new[] { _x, _y, _validX, _validY }) t?.Dispose();
    }

    // Fused: trials of one width (and so one shape) may share an array.
    public static string? FusionKey(TrialConfig config) => $"width={config.GetInt("width")}";

    public static FusedTrainable CreateArray(FusedArrayContext context) => new Fused(context);

    /// <summary>The same model for K lanes: FusedLinear layers ([K, ...] parameters) and a FusedOptimizer with per-lane lr.</summary>
    private sealed class Fused : FusedTrainable
    {
        private static readonly string[] Names = { "model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias" };
        private readonly Generator?[] _shuffles;
        private readonly (Tensor X, Tensor Y, Tensor ValidX, Tensor ValidY) _data;
        private FusedLinear? _hidden, _output;
        private FusedOptimizer? _optimizer;

        public Fused(FusedArrayContext context)
        {
            _shuffles = new Generator?[context.Capacity];
            _data = Data(context.Device);
        }

        private Tensor[] Parameters => new[] { _hidden!.Weight, _hidden.Bias, _output!.Weight, _output.Bias };

        public override void SetupLane(FusedLane lane)
        {
            if (_hidden is null)
            {
                int width = lane.Config.GetInt("width");
                _hidden = new FusedLinear(Capacity, 64, width, Context.Device);
                _output = new FusedLinear(Capacity, width, 10, Context.Device);
                _optimizer = FusedOptimizer.Create("adam", Parameters, Capacity);
            }
            using (var model = BuildModel(lane.Config, lane.Trial.Seed)) // the lane starts where the trial alone starts
            using (no_grad())
                foreach (var (fused, alone) in Parameters.Zip(model.parameters()))
                    fused[lane.Index].copy_(alone);
            _optimizer!.ResetLane(lane.Index);
            _optimizer.ConfigureLane(lane.Index, lane.Config);
            _shuffles[lane.Index]?.Dispose();
            _shuffles[lane.Index] = new Generator((ulong)lane.Trial.Seed, Context.Device);
        }

        public override IReadOnlyList<LaneStepOutcome> Step(IReadOnlyList<FusedLane> lanes)
        {
            var (x, y, validX, validY) = _data;
            var lanesIndex = lanes.Select(l => l.Index).ToArray();
            // Each lane its own order (idle lanes reuse the first lane's: their outputs are not used).
            var orders = Enumerable.Range(0, Capacity).Select(k => _shuffles[k] is { } g && lanesIndex.Contains(k)
                ? randperm(y.shape[0], generator: g, device: Context.Device) : arange(y.shape[0], device: Context.Device)).ToArray();
            var perm = stack(orders);
            using var one = 1.ToScalar();
            var stepped = zeros(Capacity, device: Context.Device).index_fill_(0, tensor(lanesIndex.Select(i => (long)i).ToArray(), device: Context.Device), one);
            foreach (var batch in perm.split(64, 1))
            {
                var rows = batch.shape[1];
                var output = _output!.Forward(nn.functional.relu(_hidden!.Forward(x.index_select(0, batch.reshape(-1)).view(Capacity, rows, 64))));
                var losses = nn.functional.cross_entropy(output.reshape(-1, 10), y.index_select(0, batch.reshape(-1)), reduction: nn.Reduction.None).view(Capacity, rows).mean(new long[] { 1 });
                _optimizer!.ZeroGrad();
                losses.mul(stepped).sum().backward(); // each lane's gradient is that of its own loss
                _optimizer.Step(lanesIndex);
            }
            var accuracy = _output!.Forward(nn.functional.relu(_hidden!.Forward(validX))).argmax(2).eq(validY).to(float32).mean(new long[] { 1 });
            return lanes.Select(l => LaneStepOutcome.Ok(new Metrics { ["val_accuracy"] = accuracy[l.Index] })).ToList();
        }

        public override TrainableState SaveLane(FusedLane lane)
        {
            var tensors = Names.Zip(Parameters, (name, p) => new KeyValuePair<string, Tensor>(name, p[lane.Index].clone())).ToList();
            var metadata = new JsonObject();
            _optimizer!.SaveLane(lane.Index, tensors, metadata);
            var state = new TrainableState(tensors, metadata);
            state.AddGeneratorState("shuffle", _shuffles[lane.Index]!);
            return state;
        }

        public override void RestoreLane(FusedLane lane, TrainableState state)
        {
            using (no_grad())
                foreach (var (name, p) in Names.Zip(Parameters)) p[lane.Index].copy_(state[name]);
            _optimizer!.RestoreLane(lane.Index, state);
            state.RestoreGeneratorState("shuffle", _shuffles[lane.Index]!);
        }

        public override bool ReconfigureLane(FusedLane lane, TrialConfig config)
        {
            if (FusionKey(config) != FusionKey(lane.Config)) return false;
            _optimizer!.ConfigureLane(lane.Index, config);
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            _optimizer?.Dispose();
            _hidden?.Dispose();
            _output?.Dispose();
            foreach (var g in _shuffles) g?.Dispose();
            foreach (var t in new[] { _data.X, _data.Y, _data.ValidX, _data.ValidY }) t.Dispose();
        }
    }
}
