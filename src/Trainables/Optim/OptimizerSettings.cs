using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Optim;

/// <summary>
/// The optimizer hyperparameters a trial's config gives, read and checked in one place for the unfused optimizers
/// (<see cref="Builtin.SupervisedTrainable.CreateOptimizer"/>) and the fused ones (<see cref="Fusion.FusedOptimizer.ConfigureLane"/>),
/// so both read the same keys with the same defaults: <c>optimizer</c> (adam), <c>lr</c> (1e-3), <c>weight_decay</c> (0),
/// <c>momentum</c> (0.9; sgd, rmsprop), <c>nesterov</c> (false; sgd), <c>beta1</c> (0.9), <c>beta2</c> (0.999; adam, adamw),
/// <c>eps</c> (1e-8; adam, adamw, rmsprop), <c>alpha</c> (0.99; rmsprop's smoothing constant). Keys another kind does not use are not read.
/// </summary>
public sealed record OptimizerSettings(string Kind, double Lr, double WeightDecay, double Momentum, bool Nesterov, double Beta1, double Beta2, double Eps, double Alpha)
{
    public static readonly IReadOnlyList<string> Kinds = new[] { "adam", "adamw", "sgd", "rmsprop" };

    /// <summary>The settings of <paramref name="config"/>; a bad value is an <see cref="ArgumentException"/> naming its key.</summary>
    public static OptimizerSettings FromConfig(TrialConfig config)
    {
        string kind = config.GetString("optimizer", "adam").ToLowerInvariant();
        if (!Kinds.Contains(kind))
            throw new ArgumentException($"config key 'optimizer' must be adam, adamw, sgd or rmsprop, got '{kind}'", "optimizer");
        double lr = config.GetDouble("lr", 1e-3);
        double wd = config.GetDouble("weight_decay", 0);
        if (!(lr > 0)) throw new ArgumentOutOfRangeException("lr", $"config key 'lr' must be positive, got {lr}");
        if (!(wd >= 0)) throw new ArgumentOutOfRangeException("weight_decay", $"config key 'weight_decay' must not be negative, got {wd}");
        bool adam = kind is "adam" or "adamw";
        double momentum = adam ? 0 : config.GetDouble("momentum", 0.9);
        if (!(momentum >= 0)) throw new ArgumentOutOfRangeException("momentum", $"config key 'momentum' must not be negative, got {momentum}");
        bool nesterov = kind == "sgd" && config.GetBool("nesterov", false);
        if (nesterov && momentum <= 0) throw new ArgumentException("config key 'nesterov' needs a positive 'momentum'", "nesterov");
        double beta1 = adam ? config.GetDouble("beta1", 0.9, 0, 1) : 0.9;
        double beta2 = adam ? config.GetDouble("beta2", 0.999, 0, 1) : 0.999;
        double eps = kind == "sgd" ? 1e-8 : config.GetDouble("eps", 1e-8);
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException("eps", $"config key 'eps' must not be negative, got {eps}");
        double alpha = kind == "rmsprop" ? config.GetDouble("alpha", 0.99) : 0.99;
        if (!(alpha >= 0)) throw new ArgumentOutOfRangeException("alpha", $"config key 'alpha' must not be negative, got {alpha}");
        return new OptimizerSettings(kind, lr, wd, momentum, nesterov, beta1, beta2, eps, alpha);
    }

    /// <summary>TorchTrials' unfused optimizer of <see cref="Kind"/> over <paramref name="parameters"/>.</summary>
    public optim.Optimizer Create(IEnumerable<Parameter> parameters) => Kind switch
    {
        "adam" => new Adam(parameters, Lr, Beta1, Beta2, Eps, WeightDecay),
        "adamw" => new AdamW(parameters, Lr, Beta1, Beta2, Eps, WeightDecay),
        "sgd" => new Sgd(parameters, Lr, momentum: Momentum, weight_decay: WeightDecay, nesterov: Nesterov),
        _ => new RmsProp(parameters, Lr, Alpha, Eps, WeightDecay, Momentum),
    };
}
