namespace TorchTrials.Runner.Execution;

/// <summary>What happens to each kind of trial when an experiment resumes (Ray's Tuner.restore options).</summary>
public sealed record ResumeOptions
{
    /// <summary>Pending, running and paused trials continue from their latest persistent checkpoint.</summary>
    public bool ResumeUnfinished { get; init; } = true;

    /// <summary>Errored trials continue from their latest persistent checkpoint.</summary>
    public bool ResumeErrored { get; init; }

    /// <summary>Errored trials start again from scratch.</summary>
    public bool RestartErrored { get; init; }

    /// <summary>Receives each problem found in what the killed run left (a damaged checkpoint, named), besides the log.</summary>
    public Action<string>? OnWarning { get; init; }
}
