using TorchTrials.Trainables;

namespace TorchTrials.Runner.Stoppers;

/// <summary>
/// Ray's TimeoutStopper: stops the whole experiment once <c>timeout</c> has elapsed. As in Ray, the budget starts at the
/// first <see cref="ShouldStopAll"/> call (so setup time before the loop does not count) and is charged with the time
/// between successive calls. The clock is a <see cref="TimeProvider"/> so tests can drive it.
/// </summary>
public sealed class TimeoutStopper : IStopper
{
    private readonly TimeProvider _clock;
    private double _budgetSeconds;
    private long? _lastCheck;

    public TimeoutStopper(TimeSpan timeout, TimeProvider? clock = null)
    {
        OptionChecks.Positive(timeout.TotalSeconds, nameof(TimeoutStopper), nameof(timeout));
        Timeout = timeout;
        _budgetSeconds = timeout.TotalSeconds;
        _clock = clock ?? TimeProvider.System;
    }

    public TimeSpan Timeout { get; }

    /// <summary>Seconds of the budget not yet used.</summary>
    public double RemainingSeconds => _budgetSeconds;

    public bool ShouldStopTrial(string trialId, TrialResult result) => false;

    public bool ShouldStopAll()
    {
        long now = _clock.GetTimestamp();
        if (_lastCheck is { } last) _budgetSeconds -= _clock.GetElapsedTime(last, now).TotalSeconds;
        _lastCheck = now;
        return _budgetSeconds <= 0;
    }
}
