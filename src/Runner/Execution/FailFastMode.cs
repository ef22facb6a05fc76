namespace TorchTrials.Runner.Execution;

/// <summary>How one trial's unrecoverable error affects the others (Ray's fail_fast).</summary>
public enum FailFastMode
{
    /// <summary>Other trials go on.</summary>
    Off,

    /// <summary>Stop every other trial (TERMINATED) and end the experiment.</summary>
    StopAll,

    /// <summary>Raise the error out of <see cref="TrialController.Step"/> at once, before the trial's status changes.</summary>
    Raise,
}
