using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner;

/// <summary>Tuner.FitWithProgress: snapshots as an async stream that never holds the controller back.</summary>
public class ProgressStreamTests
{
    // A guard against a hung test, never a measured time.
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(60);

    private static Tuner Sweep(TempDir temp, TrainFunction train, int samples, StopCriteria? stop,
        Action<ExperimentSnapshot>? onSnapshot = null) =>
        new(train,
            new SearchSpace { ["x"] = Domain.Uniform(0, 1) },
            new TuneConfig { Seed = 1, NumSamples = samples, Metric = "score", Mode = MetricMode.Max },
            new RunConfig
            {
                Name = "exp",
                StoragePath = temp.Path,
                Stop = stop,
                Inventory = DeviceInventory.Simulated(1),
                Executor = ExecutorKind.Inline,
                Quiet = true,
                SnapshotInterval = TimeSpan.Zero,
                OnSnapshot = onSnapshot,
            });

    private static IEnumerable<Metrics> Count(TrialConfig config, FunctionContext context)
    {
        for (int i = 1; ; i++) yield return new Metrics { { "score", (double)i } };
    }

    [Fact]
    public async Task Snapshots_arrive_in_order_and_the_stream_ends_with_the_final_one_when_the_run_ends()
    {
        // Given two trials of 5 iterations each, a snapshot after every controller step
        using var temp = new TempDir();
        var run = Sweep(temp, Count, samples: 2, Stop.AfterIterations(5)).FitWithProgress();

        // When the stream is read to its end
        var seen = new List<ExperimentSnapshot>();
        await foreach (var snapshot in run.Progress.WithCancellation(new CancellationTokenSource(Hang).Token)) seen.Add(snapshot);
        var grid = await run;

        // Then they came in the order taken, progress never went back, and only the last one is the final one
        Assert.NotEmpty(seen);
        for (int i = 1; i < seen.Count; i++)
        {
            Assert.True(seen[i].Elapsed >= seen[i - 1].Elapsed);
            Assert.True(seen[i].Trials.Sum(t => t.Iteration) >= seen[i - 1].Trials.Sum(t => t.Iteration));
        }
        Assert.True(seen[^1].Finished);
        Assert.All(seen.SkipLast(1), s => Assert.False(s.Finished));
        Assert.Equal(new long[] { 5, 5 }, seen[^1].Trials.Select(t => t.Iteration));
        Assert.Equal(2, seen[^1].Counts[TrialStatus.Terminated]);
        Assert.False(grid.WasInterrupted);
    }

    [Fact]
    public async Task A_reader_that_stops_reading_does_not_hold_the_run_back_and_then_gets_only_the_newest_snapshot()
    {
        // Given a trial of 20 iterations, a snapshot after every controller step, and a reader that took one snapshot
        using var temp = new TempDir();
        int published = 0;
        var run = Sweep(temp, Count, samples: 1, Stop.AfterIterations(20), _ => Interlocked.Increment(ref published)).FitWithProgress();
        await using var reader = run.Progress.GetAsyncEnumerator(new CancellationTokenSource(Hang).Token);
        Assert.True(await reader.MoveNextAsync());
        var read = new List<ExperimentSnapshot> { reader.Current };

        // When the reader reads nothing more until the run is over
        var grid = await run.Result.WaitAsync(Hang);
        while (await reader.MoveNextAsync()) read.Add(reader.Current);

        // Then the run did all 20 iterations, while the reader was left the final snapshot alone
        Assert.Equal(20, grid.Single().LastResult!.TrainingIteration);
        Assert.True(published > read.Count, $"published {published}, read {read.Count}");
        Assert.InRange(read.Count, 1, 2);
        Assert.True(read[^1].Finished);
        Assert.Equal(20, read[^1].Trials.Single().Iteration);
    }

    [Fact]
    public async Task Cancelling_the_fit_interrupts_the_run_and_ends_the_stream()
    {
        // Given a trial that would never stop on its own
        using var temp = new TempDir();
        using var cancel = new CancellationTokenSource();
        var run = Sweep(temp, Count, samples: 1, stop: null).FitWithProgress(cancel.Token);

        // When the fit is cancelled at the first snapshot
        int read = 0;
        await foreach (var _ in run.Progress.WithCancellation(new CancellationTokenSource(Hang).Token))
        {
            read++;
            cancel.Cancel();
        }
        var grid = await run;

        // Then the stream ended without a final snapshot and the run was left resumable
        Assert.True(read >= 1);
        Assert.True(grid.WasInterrupted);
    }

    [Fact]
    public async Task Cancelling_the_reading_stops_the_reader_but_not_the_run()
    {
        // Given two trials of 5 iterations
        using var temp = new TempDir();
        using var stopReading = new CancellationTokenSource();
        var run = Sweep(temp, Count, samples: 2, Stop.AfterIterations(5)).FitWithProgress();

        // When the reader cancels its enumeration at the first snapshot
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in run.Progress.WithCancellation(stopReading.Token)) stopReading.Cancel();
        });

        // Then the run still goes to its end
        var grid = await run.Result.WaitAsync(Hang);
        Assert.False(grid.WasInterrupted);
        Assert.All(grid, t => Assert.Equal(5, t.LastResult!.TrainingIteration));
    }
}
