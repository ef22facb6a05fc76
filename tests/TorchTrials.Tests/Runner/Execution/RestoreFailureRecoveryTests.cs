using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Tests.Runner.Execution;

public class RestoreFailureRecoveryTests
{
    [Fact]
    public void A_memory_checkpoint_that_fails_to_restore_goes_through_failure_recovery()
    {
        // Given a paused trial allowed one retry, whose memory checkpoint can no longer be read
        using var h = new Harness(cpus: 1);
        var trial = new Trial("__fake", resources: new Resources(cpu: 1), stop: Stop.AfterIterations(5), maxFailures: 1);
        h.Add(trial);
        h.Controller.Step(); // start
        h.Controller.Step(); // result 1
        h.Controller.PauseTrial(trial);
        var checkpoint = Assert.IsType<MemoryCheckpoint>(trial.Checkpoint);
        checkpoint.Fail(new InvalidOperationException("injected: the saved state is gone"));

        // When it is resumed, the restore fails as the trial's failure: it is retried (max_failures 1), not errored at start
        h.Controller.UnpauseTrial(trial);
        h.Controller.Step(); // start, restore fails
        Assert.Equal(TrialStatus.Running, trial.Status);
        h.Controller.Step(); // the failure
        Assert.Equal(TrialStatus.Pending, trial.Status);
        Assert.Equal(1, trial.NumFailures);
        Assert.Contains("restoring its memory checkpoint failed", trial.ErrorMessage);

        // Then the retry restores the same checkpoint, fails again and uses up its failures
        h.RunToEnd(maxSteps: 20);
        Assert.Equal(TrialStatus.Error, trial.Status);
        Assert.Equal(2, trial.NumFailures);
        Assert.Equal(0, h.Allocator.LiveSlots);
    }
}
