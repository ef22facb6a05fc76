using System.Diagnostics;
using TorchTrials.Cli;
using TorchTrials.Runner;
using TorchTrials.Runner.Store;
using TorchTrials.Trainables;

namespace TorchTrials.IntegrationTests.Cli;

/// <summary>
/// A digits ASHA sweep with <c>executor: {fuse: auto}</c> through the CLI (and so the Tuner): it finishes with no errored
/// trial, and every trial ran in a lane of a fused array, which the store and <c>torchtrials status</c> show.
/// </summary>
public sealed class FusedSweepTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-cli", Guid.NewGuid().ToString("N")[..12]);

    public FusedSweepTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private const string Sweep = """
        trainable: mlp_digits
        params: {width: 32, depth: 2, batch_size: 64}
        search_space:
          lr: {loguniform: [0.001, 0.01]}
        num_samples: 8
        metric: val_accuracy
        mode: max
        scheduler: {type: asha, max_t: 4, grace_period: 1, reduction_factor: 2}
        stop: {training_iteration: 4}
        resources_per_trial: {cpu: 1}
        executor: {fuse: auto, max_members: 4}
        inventory: "cpus=2"
        seed: 3
        """;

    [Fact]
    public async Task A_digits_ASHA_sweep_with_fuse_auto_finishes_without_errors_and_records_each_trials_lane()
    {
        var spec = Path.Combine(_dir, "spec.yaml");
        File.WriteAllText(spec, Sweep);
        var results = Path.Combine(_dir, "results");
        var cli = Path.Combine(AppContext.BaseDirectory, "torchtrials.dll");
        using var process = Process.Start(new ProcessStartInfo("dotnet", new[] { cli, "run", spec, "--results-dir", results, "--name", "fused", "--plain" })
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(240)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("the sweep did not finish within 240 s");
        }
        string output = await stdout + await stderr;
        Assert.True(process.ExitCode == ExitCodes.Success, output);

        var stored = SqliteExperimentStore.Inspect(Path.Combine(results, "fused"));
        Assert.Equal(8, stored.Trials.Count);
        Assert.All(stored.Trials, t => Assert.Equal(TrialStatus.Terminated, t.Status));
        bool fusable = TrainableRegistry.CreateDefault().Get("mlp_digits")
            .CanFuse(TrialConfig.From(("width", 32), ("depth", 2), ("batch_size", 64), ("lr", 0.003)));
        Assert.True(fusable, "mlp_digits should fuse at width 32, depth 2, batch 64");
        {
            Assert.All(stored.Trials, t => Assert.Matches(@"^a\d+\.[0-3]$", t.State["lane"]?.GetValue<string>() ?? ""));
            var status = Process.Start(new ProcessStartInfo("dotnet", new[] { cli, "status", Path.Combine(results, "fused") })
            {
                RedirectStandardOutput = true,
            })!;
            string text = await status.StandardOutput.ReadToEndAsync();
            await status.WaitForExitAsync();
            Assert.Contains(" lane", text);
        }
    }
}
