using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Search;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Optim;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace TorchTrials.IntegrationTests.Execution;

/// <summary>
/// Issue 11, item 2, on the concurrent executor: a training function's data and model, built before its loop, were
/// freed at its first yield ("Tensor invalid -- empty handle"). Here on the trials' own threads, under forced collections.
/// </summary>
public class FunctionLifetimeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-it", Guid.NewGuid().ToString("N")[..12]);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [Fact]
    public void Functions_that_build_data_and_model_before_their_loop_train_on_their_own_threads_while_a_thread_forces_collections()
    {
        // Given three trials of a natural training function on two slots, and a thread collecting gen 0 in a loop
        var registry = TrainableRegistry.CreateDefault().RegisterFunction("fit", Train);
        var trials = Enumerable.Range(0, 3).Select(i => new Trial("fit", trialId: $"f{i}", resources: new Resources(cpu: 1),
            stop: Stop.AfterIterations(200))).ToArray();
        var executor = new ConcurrentTrialExecutor(new DeviceSlotAllocator(DeviceInventory.Simulated(2)), registry,
            new ExecutorOptions { SpillDirectory = Path.Combine(_dir, "spill") });
        using var controller = new TrialController(executor, registry, new TrialListSearch(trials), store: new NullExperimentStore(_dir),
            options: new ControllerOptions { ExperimentDirectory = _dir });
        using var stop = new CancellationTokenSource();
        long collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect(0);
                Thread.SpinWait(10_000);
                Interlocked.Increment(ref collections);
            }
        });

        // When the experiment runs to its end
        collector.Start();
        try { controller.Run(); }
        finally
        {
            stop.Cancel();
            collector.Join();
        }

        // Then every trial trained all 200 iterations without an error, and its loss went down
        output.WriteLine($"{collections} forced collections; errors: {string.Join("; ", controller.Trials.Select(t => t.ErrorMessage?.Split('\n')[0]))}");
        Assert.True(collections > 0);
        Assert.All(controller.Trials, t =>
        {
            Assert.Null(t.ErrorMessage);
            Assert.Equal(TrialStatus.Terminated, t.Status);
            Assert.Equal(200, t.LastResult!.TrainingIteration);
            Assert.True(t.LastResult.GetDouble("loss") < t.LastResult.GetDouble("first_loss"));
        });
    }

    // Written as a researcher would: data and model before the loop, no scopes or detaches of its own.
    private static IEnumerable<Metrics> Train(TrialConfig config, FunctionContext context)
    {
        var generator = new Generator((ulong)context.Trial.Seed + 1);
        var x = randn(64, 4, generator: generator, device: context.Device);
        var y = x.matmul(tensor(new float[] { 1, -2, 3, 0.5f }, device: context.Device).reshape(4, 1));
        using var model = nn.Linear(4, 1, device: context.Device);
        var optimizer = new Adam(model.parameters(), lr: 0.05);
        double? first = null;
        while (true)
        {
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(model.forward(x), y);
            loss.backward();
            optimizer.step();
            first ??= loss.item<float>();
            yield return new Metrics { { "loss", loss }, { "first_loss", first.Value } };
        }
    }
}
