using System.Globalization;
using TorchTrials.Runner.Results;

namespace TorchTrials.Runner.Callbacks;

/// <summary>
/// The library's default progress output when no logger factory is given (the part of Ray's CLIReporter that says a trial
/// started, errored, and how the run ended): one line per event, so a failing sweep is never silent. Deviation: no
/// periodic result table; a caller who wants one uses <see cref="RunConfig.OnSnapshot"/> (the CLI draws its own).
/// Runs on the controller's thread, the only writer.
/// </summary>
internal sealed class ConsoleTrialReporter(TextWriter output) : ITrialCallback
{
    public void OnTrialStart(int iteration, IReadOnlyList<Trial> trials, Trial trial)
    {
        var tag = trial.ExperimentTag.Length > 0 ? $" ({trial.ExperimentTag})" : "";
        // A restart after a recovered failure: the failure itself was not reported when it happened (it was requeued).
        var after = trial.NumFailures > 0 && trial.ErrorMessage is { } message
            ? string.Create(CultureInfo.InvariantCulture, $" after failure {trial.NumFailures}: {TrialSummary.FirstLine(message)}{SeeFile(trial.ErrorFile)}")
            : "";
        output.WriteLine($"Trial {trial.Id} {(trial.NumFailures > 0 ? "restarted" : "started")}{tag}{after}");
    }

    public void OnTrialError(int iteration, IReadOnlyList<Trial> trials, Trial trial) =>
        output.WriteLine($"Trial {trial.Id} errored: {TrialSummary.FirstLine(trial.ErrorMessage ?? "(no message)")}{SeeFile(trial.ErrorFile)}");

    /// <summary>The run's last line, from its outcome; written by the tuner, which also knows an interrupted run's.</summary>
    public void RunEnded(ResultGrid grid)
    {
        var counts = string.Create(CultureInfo.InvariantCulture,
            $"{grid.Count} trial(s), {grid.NumTerminated} terminated, {grid.NumErrors} errored");
        if (grid.WasInterrupted)
            output.WriteLine($"Run interrupted: {counts}; resume it with Tuner.Restore(\"{grid.ExperimentPath}\", ...)");
        else if (grid.AllErrored)
            output.WriteLine($"Run failed: all {grid.Count} trial(s) errored; see error.txt in each trial's folder under {grid.ExperimentPath}");
        else
            output.WriteLine($"Run finished: {counts}; results in {grid.ExperimentPath}");
        output.Flush();
    }

    private static string SeeFile(string? errorFile) => errorFile is null ? "" : $" (see {errorFile})";
}
