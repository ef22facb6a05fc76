using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Execution;

/// <summary>What was decided about a trial after one result, and by whom.</summary>
/// <param name="Result">The result as recorded: with the trial's id and tag, and done when the trial stops.</param>
/// <param name="DecidedBy">The scheduler or stopper that paused or stopped the trial; null when it continues or met its own criteria.</param>
/// <param name="Reason">The status reason a stop is recorded with.</param>
internal sealed record TrialDecision(SchedulerDecision Decision, TrialResult Result, string? DecidedBy, string Reason);

/// <summary>
/// Routes one result to a decision, in Ray's order (TuneController._process_trial_result): the stopper first, then the
/// trial's own stopping criteria, then the scheduler; the searcher and scheduler hear how the trial ended. A result after
/// the training function returned (a duplicate) completes the trial with its last result.
/// </summary>
internal sealed class DecisionStep(ITrialControl control, IStopper stopper, ITrialScheduler scheduler, ISearchAlgorithm search, ResultRouting routing)
{
    /// <summary>
    /// The decision, or null with <paramref name="missingKey"/> when the stopper or the scheduler needs a key the result
    /// lacks (the trial then fails).
    /// </summary>
    public TrialDecision? Decide(Trial trial, TrialResult result, out KeyNotFoundException? missingKey)
    {
        missingKey = null;
        if (result.IsDuplicate) return Completed(trial, result);
        result = result with { TrialId = trial.Id, ExperimentTag = trial.ExperimentTag };
        string? stoppedBy, criterion;
        try
        {
            (stoppedBy, criterion) = StopCheck(trial, result);
        }
        catch (KeyNotFoundException e)
        {
            missingKey = e;
            return null;
        }
        if (stoppedBy is not null || criterion is not null)
        {
            result = result with { Done = true };
            scheduler.OnTrialComplete(control, trial, result);
            search.OnTrialComplete(trial.Id, result, TrialOutcome.Completed);
            return Decision(SchedulerDecision.Stop, result, stoppedBy, criterion is null ? "completed" : $"completed ({criterion})");
        }

        SchedulerDecision decision;
        try
        {
            decision = routing.Route(trial, result, () => scheduler.OnTrialResult(control, trial, result));
        }
        catch (KeyNotFoundException e)
        {
            missingKey = e;
            return null;
        }
        if (decision == SchedulerDecision.Stop)
        {
            result = result with { Done = true };
            search.OnTrialComplete(trial.Id, result, TrialOutcome.Pruned);
        }
        else
        {
            search.OnTrialResult(trial.Id, result);
        }
        return Decision(decision, result, decision == SchedulerDecision.Continue ? null : scheduler.GetType().Name, "completed");
    }

    /// <summary>The stopper's name when it stops the trial, else the trial's own criterion that is met, if any.</summary>
    private (string? StoppedBy, string? Criterion) StopCheck(Trial trial, TrialResult result)
    {
        if (stopper.ShouldStopTrial(trial.Id, result)) return (stopper.GetType().Name, null);
        return (null, trial.StopCriterion(result));
    }

    private TrialDecision Completed(Trial trial, TrialResult result)
    {
        result = (trial.LastResult ?? result) with { Done = true };
        trial.LastResult = result;
        scheduler.OnTrialComplete(control, trial, result);
        search.OnTrialComplete(trial.Id, result, TrialOutcome.Completed);
        return new TrialDecision(SchedulerDecision.Stop, result, null, "completed (done)");
    }

    private static TrialDecision Decision(SchedulerDecision decision, TrialResult result, string? decidedBy, string stopReason) =>
        new(decision, result, decidedBy, decidedBy is null ? stopReason : $"stopped by {decidedBy}");
}
