using TorchTrials.Trainables;

namespace TorchTrials.Runner.Stoppers;

/// <summary>
/// Ray's CombinedStopper: stops when any of its stoppers says so. Like Ray's <c>any(...)</c>, evaluation stops at the
/// first stopper that says yes, so the stoppers after it do not see that result.
/// </summary>
public sealed class CombinedStopper : IStopper
{
    private readonly IReadOnlyList<IStopper> _stoppers;

    public CombinedStopper(params IStopper[] stoppers)
    {
        ArgumentNullException.ThrowIfNull(stoppers);
        for (int i = 0; i < stoppers.Length; i++)
            if (stoppers[i] is null) throw new ArgumentException($"stoppers[{i}] must not be null", nameof(stoppers));
        _stoppers = stoppers.ToArray();
    }

    public IReadOnlyList<IStopper> Stoppers => _stoppers;

    public bool ShouldStopTrial(string trialId, TrialResult result)
    {
        foreach (var stopper in _stoppers)
            if (stopper.ShouldStopTrial(trialId, result)) return true;
        return false;
    }

    public bool ShouldStopAll()
    {
        foreach (var stopper in _stoppers)
            if (stopper.ShouldStopAll()) return true;
        return false;
    }
}
