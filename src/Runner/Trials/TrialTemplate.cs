using TorchTrials.Gpu;
using TorchTrials.Trainables;

namespace TorchTrials.Runner;

/// <summary>Everything a generated trial shares with its siblings: trainable, resources, stopping, checkpoints, failures.</summary>
public sealed record TrialTemplate
{
    public required string TrainableName { get; init; }

    /// <summary>Fixed parameters every trial gets; searched values are laid over them.</summary>
    public TrialConfig BaseConfig { get; init; } = TrialConfig.Empty;

    /// <summary>Explicit resources per trial; null lets the trainable choose, else 1 CPU.</summary>
    public Resources? Resources { get; init; }

    public IReadOnlyDictionary<string, double> Stop { get; init; } = new Dictionary<string, double>();

    public CheckpointConfig Checkpoint { get; init; } = CheckpointConfig.None;

    public int MaxFailures { get; init; }

    public string? RestorePath { get; init; }

    /// <summary>A new pending trial with <paramref name="config"/> laid over the base config.</summary>
    public Trial CreateTrial(string trialId, TrialConfig config, string experimentTag, IReadOnlyDictionary<string, object?>? evaluatedParams = null) =>
        new(TrainableName, BaseConfig.Merge(config), trialId, Resources, Stop, Checkpoint, MaxFailures, RestorePath, experimentTag, evaluatedParams);
}
