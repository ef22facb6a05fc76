using TorchTrials.Runner.Schedulers;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// Settings of the controller loop. A <see cref="Tuner"/> derives them from its <see cref="TuneConfig"/> and
/// <see cref="RunConfig"/> (<see cref="From"/>); construct them directly only to drive a controller yourself.
/// </summary>
public sealed record ControllerOptions
{
    public string ExperimentName { get; init; } = "experiment";

    /// <summary>The experiment's folder: store, trial folders, checkpoints. Defaults to a new folder under the system temp directory.</summary>
    public string? ExperimentDirectory { get; init; }

    public FailFastMode FailFast { get; init; } = FailFastMode.Off;

    /// <summary>The metric schedulers and searchers optimise, when they were not given one.</summary>
    public string? Metric { get; init; }

    public MetricMode? Mode { get; init; }

    /// <summary>At most this many trials run at once (Ray's max_concurrent_trials); null leaves it to the resources.</summary>
    public int? MaxConcurrentTrials { get; init; }

    /// <summary>Trials the search algorithm may queue ahead of the free slots.</summary>
    public int MaxPendingTrials { get; init; } = 16;

    /// <summary>How often queued store writes are committed.</summary>
    public TimeSpan StoreFlushInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long <see cref="TrialController.Step"/> waits for an event before returning.</summary>
    public TimeSpan EventWait { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Iterations a trial may run ahead of the controller when the scheduler allows it (FIFO does); 1 is lock-step
    /// (Ray's TUNE_RESULT_BUFFER_LENGTH). The one place the executors and the loop read it.
    /// </summary>
    public int ResultBufferLength { get; init; } = 1;

    /// <summary>
    /// When every decision up to a trial's iteration cap is known to be Continue (a scheduler that always continues, no
    /// stopper, stop criteria on training_iteration only), grant all those steps at once so the trial's thread never waits
    /// for the controller between steps. Results still arrive and are processed one by one, in order, so nothing decided
    /// differs from lock-step; only the hand-offs go. The inline executor runs one step per grant regardless.
    /// </summary>
    public bool RunAhead { get; init; }

    /// <summary>Base seed; each trial's seed derives from it and the trial's sequence.</summary>
    public long Seed { get; init; }

    /// <summary>
    /// The clock of everything the controller times: <see cref="ITrialControl.ElapsedSeconds"/>, store flushes, trial start
    /// times, error.txt stamps and each trial's time_this_iter_s / time_total_s. Tests pass a fake one.
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The controller settings of a <see cref="Tuner"/> run named <paramref name="name"/> in <paramref name="directory"/>.</summary>
    public static ControllerOptions From(TuneConfig tune, RunConfig run, string name, string directory) => new()
    {
        ExperimentName = name,
        ExperimentDirectory = directory,
        FailFast = run.FailFast,
        Metric = tune.Metric,
        Mode = tune.Mode,
        MaxConcurrentTrials = tune.MaxConcurrentTrials,
        ResultBufferLength = tune.ResultBufferLength,
        RunAhead = tune.RunAhead,
        Seed = tune.Seed,
        TimeProvider = run.TimeProvider,
    };
}
