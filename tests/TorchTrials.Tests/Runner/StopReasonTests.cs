using Microsoft.Data.Sqlite;
using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Stoppers;
using TorchTrials.Runner.Store;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner;

/// <summary>Who ended a trial is recorded where a person and a resume can read it: status_changes and the trial's state.</summary>
public class StopReasonTests
{
    private static TrainableRegistry Curves() =>
        TrainableRegistry.CreateDefault().RegisterFunction("curve", Toys.SaturatingCurve).RegisterFunction("resumable", Toys.ResumableCurve);

    /// <summary>The last status change of each trial into TERMINATED, as committed to the database file.</summary>
    private static Dictionary<string, string> TerminationReasons(string directory)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(directory, SqliteExperimentStore.FileName)};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT trial_id, reason FROM status_changes WHERE status = 'Terminated' ORDER BY id";
        using var reader = cmd.ExecuteReader();
        var reasons = new Dictionary<string, string>();
        while (reader.Read()) reasons[reader.GetString(0)] = reader.GetString(1);
        return reasons;
    }

    private static HashSet<string> StoppedInDecisions(string directory, string source)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(directory, SqliteExperimentStore.FileName)};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT trial_id FROM decisions WHERE decision = 'STOP' AND source = $s";
        cmd.Parameters.AddWithValue("$s", source);
        using var reader = cmd.ExecuteReader();
        var ids = new HashSet<string>();
        while (reader.Read()) ids.Add(reader.GetString(0));
        return ids;
    }

    [Fact]
    public void Trials_cut_by_ASHA_are_recorded_as_stopped_by_it_and_the_finishers_as_completed_by_their_criteria()
    {
        using var dir = new TempDir();
        var asha = new AshaScheduler(new AshaOptions { Metric = "score", Mode = MetricMode.Max, MaxT = 16, GracePeriod = 1, ReductionFactor = 2 });
        var trials = new[] { 3, 7, 1, 8, 5, 2, 6, 4 }
            .Select(q => new Trial("curve", TrialConfig.From(("q", (double)q)), trialId: $"q{q}", stop: Stop.AfterIterations(16))).ToArray();
        using (var h = new Harness(cpus: 8, registry: Curves(), scheduler: asha, directory: dir.Path, sqlite: true))
        {
            h.Add(trials);
            h.RunToEnd();
        }

        var reasons = TerminationReasons(dir.Path);
        var stoppedByAsha = StoppedInDecisions(dir.Path, nameof(AshaScheduler));
        // Given the sweep of the ASHA scheduler tests: q8 runs to its criterion, the worst are cut early.
        Assert.Contains("q1", stoppedByAsha);
        Assert.DoesNotContain("q8", stoppedByAsha);
        Assert.Equal(8, reasons.Count);
        foreach (var trial in trials)
        {
            var expected = stoppedByAsha.Contains(trial.Id) ? "stopped by AshaScheduler" : "completed (training_iteration >= 16)";
            Assert.Equal(expected, reasons[trial.Id]);
        }

        using var store = SqliteExperimentStore.Open(dir.Path);
        var decoded = store.Load()!.Trials.Select(TrialStateCodec.Decode).ToDictionary(t => t.Id);
        Assert.Equal(nameof(AshaScheduler), decoded["q1"].StoppedBy);
        Assert.Null(decoded["q8"].StoppedBy);
    }

    [Fact]
    public void A_trial_stopped_by_a_stopper_names_the_stopper()
    {
        using var dir = new TempDir();
        var trial = new Trial("curve", TrialConfig.From(("q", 1.0)), trialId: "a", stop: Stop.AfterIterations(10));
        using (var h = new Harness(cpus: 1, registry: Curves(), stopper: new MaximumIterationStopper(3), directory: dir.Path, sqlite: true))
        {
            h.Add(trial);
            h.RunToEnd();
        }

        Assert.Equal(3, trial.LastResult!.TrainingIteration);
        Assert.Equal(nameof(MaximumIterationStopper), trial.StoppedBy);
        Assert.Equal("stopped by MaximumIterationStopper", TerminationReasons(dir.Path)["a"]);
    }

    [Fact]
    public void Paused_trials_a_scheduler_stops_are_recorded_as_stopped_by_it()
    {
        using var dir = new TempDir();
        // HyperBand pauses the first finisher of a rung and stops the paused ones it halves away (through StopTrial).
        var hyperband = new HyperBandScheduler(new HyperBandOptions { Metric = "score", Mode = MetricMode.Max, MaxT = 4, ReductionFactor = 2 });
        var trials = Enumerable.Range(1, 4).Select(q => new Trial("resumable", TrialConfig.From(("q", (double)q)), trialId: $"q{q}")).ToArray();
        using (var h = new Harness(cpus: 1, registry: Curves(), scheduler: hyperband, directory: dir.Path, sqlite: true))
        {
            h.Add(trials);
            h.RunToEnd();
        }

        var reasons = TerminationReasons(dir.Path);
        Assert.Contains(reasons.Values, r => r == "stopped by HyperBandScheduler while waiting");
        Assert.All(reasons.Values, r => Assert.StartsWith("stopped by HyperBandScheduler", r));
        Assert.All(trials, t => Assert.Equal(nameof(HyperBandScheduler), t.StoppedBy));
    }
}
