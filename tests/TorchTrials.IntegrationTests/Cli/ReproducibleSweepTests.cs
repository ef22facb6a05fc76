using System.Diagnostics;
using System.Text.RegularExpressions;
using TorchTrials.Cli;
using TorchTrials.Runner.Store;

namespace TorchTrials.IntegrationTests.Cli;

public class ReproducibleSweepTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-cli", Guid.NewGuid().ToString("N")[..12]);

    public ReproducibleSweepTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    // Dropout in every trial, two trials at a time on two simulated CPUs (one LibTorch thread each): what issue 9 found
    // unrepeatable. About 0.2 s of training per trial-epoch on a 2-core machine.
    private const string DropoutSweep = """
        trainable: mlp_digits
        params: {width: 32, depth: 2, batch_size: 64}
        search_space:
          lr: {loguniform: [0.001, 0.01]}
          dropout: {uniform: [0.2, 0.5]}
        num_samples: 4
        metric: val_accuracy
        mode: max
        stop: {training_iteration: 3}
        resources_per_trial: {cpu: 1}
        max_concurrent_trials: 2
        inventory: "cpus=2"
        seed: 3
        """;

    /// <summary>
    /// Runs the CLI on the sweep in a process of its own (as a user runs it twice), into its own results folder; returns
    /// its output and each trial's config and metric history, in trial order.
    /// </summary>
    private static (string Output, List<string> Trials) Run(string spec, string results)
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "torchtrials.dll");
        using var process = Process.Start(new ProcessStartInfo("dotnet", new[] { cli, "run", spec, "--results-dir", results, "--name", "repro", "--plain" })
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("the sweep did not finish within 120 s");
        }
        string output = stdout.Result + stderr.Result;
        Assert.True(process.ExitCode == ExitCodes.Success, output);

        using var store = SqliteExperimentStore.Open(Path.Combine(results, "repro"));
        var trials = store.Load()!.Trials.Select(t =>
        {
            var history = store.ResultsOf(t.Id).Select(r =>
                $"{r.TrainingIteration}: loss={r.GetDouble("loss"):R} val_loss={r.GetDouble("val_loss"):R} val_accuracy={r.GetDouble("val_accuracy"):R}");
            return $"{t.State["config"]!.ToJsonString()} -> {string.Join(" | ", history)}";
        }).ToList();
        return (output, trials);
    }

    /// <summary>The best trial as the CLI prints it, without its id (ids are random per run): "val_accuracy=0.9xxx (config)".</summary>
    private static string BestTrial(string output)
    {
        var match = Regex.Match(output, @"Best trial: \S+ (.+)");
        Assert.True(match.Success, output);
        return match.Groups[1].Value.Trim();
    }

    [Fact]
    public void Two_runs_of_one_spec_and_seed_give_identical_metric_histories_and_the_same_best_trial()
    {
        var spec = Path.Combine(_dir, "spec.yaml");
        File.WriteAllText(spec, DropoutSweep);

        // Given a sweep with dropout run once, 2 trials at a time
        var (firstOutput, first) = Run(spec, Path.Combine(_dir, "first"));

        // When the same spec and seed runs again
        var (secondOutput, second) = Run(spec, Path.Combine(_dir, "second"));

        // Then every trial has the same config and the same metrics at every iteration, bit for bit, and the best trial is the same
        Assert.Equal(4, first.Count);
        Assert.All(first, t => Assert.Contains("3: loss=", t));
        Assert.Equal(first.Count, second.Count);
        var differing = Enumerable.Range(0, first.Count).Where(i => first[i] != second[i])
            .Select(i => $"trial {i + 1}:\n  first run:  {first[i]}\n  second run: {second[i]}").ToList();
        Assert.True(differing.Count == 0, $"{differing.Count} of {first.Count} trials differ between the runs:\n{string.Join("\n", differing)}");
        Assert.Equal(BestTrial(firstOutput), BestTrial(secondOutput));
    }
}
