using System.Runtime.InteropServices;
using Spectre.Console;
using TorchTrials.Cli.Rendering;
using TorchTrials.Cluster;
using TorchTrials.Runner;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Spec;

namespace TorchTrials.Cli.Commands;

/// <summary>Runs a tuner while showing its progress, handles Ctrl-C and SIGTERM alike, and turns the outcome into an exit code.</summary>
internal static class SweepRunner
{
    /// <summary>Exit code after Ctrl-C (SIGINT): trials were left resumable.</summary>
    public const int Interrupted = 130;

    /// <summary>Exit code after SIGTERM, which stops the run as gracefully as Ctrl-C (128 + 15, the shell's convention).</summary>
    public const int Terminated = 143;

    public static int Execute(IAnsiConsole console, bool plain, string experimentPath, Func<Tuner> createTuner)
    {
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCtrlC = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCtrlC;
        bool terminated = false;
        using var onSigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            terminated = true;
            cancel.Cancel();
        });
        try
        {
            var tuner = createTuner();
            // Throws at once when the experiment cannot be opened (owned by another process, damaged): one line, nothing else.
            var run = tuner.FitWithProgress(cancel.Token);
            console.WriteLine($"Experiment directory: {tuner.ExperimentPath}");
            ShowAsync(console, plain, run).GetAwaiter().GetResult();

            ResultGrid grid;
            try
            {
                grid = run.Result.GetAwaiter().GetResult();
            }
            catch (TrialFailedException e)
            {
                console.MarkupLineInterpolated($"[red]Run failed (fail_fast raise):[/] {e.Message}");
                console.WriteLine($"Resume with: torchtrials resume {experimentPath}");
                return ExitCodes.RunFailed;
            }
            catch (TrialControllerException e)
            {
                console.MarkupLineInterpolated($"[red]Run failed:[/] {e.Message}");
                return ExitCodes.RunFailed;
            }
            catch (ClusterUnavailableException e)
            {
                console.MarkupLineInterpolated($"[red]Run failed:[/] {e.Message}");
                console.WriteLine($"Start the workers, then: torchtrials resume {experimentPath}");
                return ExitCodes.RunFailed;
            }

            ResultsView.WriteSummary(console, grid);
            if (grid.WasInterrupted)
            {
                console.WriteLine($"{(terminated ? "Stopped by SIGTERM" : "Interrupted")}. Resume with: torchtrials resume {grid.ExperimentPath}");
                return terminated ? Terminated : Interrupted;
            }
            if (grid.NumErrors > 0)
            {
                console.MarkupLineInterpolated($"[red]{grid.NumErrors} trial(s) failed[/]; see error.txt in their folders.");
                return ExitCodes.RunFailed;
            }
            return ExitCodes.Success;
        }
        finally
        {
            Console.CancelKeyPress -= onCtrlC;
        }
    }

    /// <summary>Draws the run's snapshots until it ends: the live table, or with <paramref name="plain"/> a line every 2 s and the last state.</summary>
    private static async Task ShowAsync(IAnsiConsole console, bool plain, TunerRun run)
    {
        if (plain)
        {
            var last = DateTime.MinValue;
            ExperimentSnapshot? unshown = null;
            await foreach (var snapshot in run.Progress)
            {
                unshown = snapshot;
                if (DateTime.UtcNow - last < TimeSpan.FromSeconds(2) && !snapshot.Finished) continue;
                last = DateTime.UtcNow;
                unshown = null;
                console.WriteLine(ProgressView.Line(snapshot, console.Profile.Width));
            }
            if (unshown is not null) console.WriteLine(ProgressView.Line(unshown, console.Profile.Width));
            return;
        }

        await console.Live(new Text("Starting...")).AutoClear(false).StartAsync(async ctx =>
        {
            await foreach (var snapshot in run.Progress)
            {
                ctx.UpdateTarget(ProgressView.Table(snapshot));
                ctx.Refresh();
            }
        });
    }

    /// <summary>Loads a spec, reporting every problem as bad input.</summary>
    /// <param name="cluster">Overrides the spec's <c>cluster</c> key (<c>--cluster</c>).</param>
    public static SweepPlan LoadPlan(string path, string? storagePath = null, string? name = null, TorchTrials.Gpu.DeviceInventory? inventory = null,
        bool savedCopy = false, string? cluster = null)
    {
        try
        {
            return SweepPlan.Load(path, storagePath, name, inventory, savedCopy, cluster, text => ClusterExecutorFactory.Connect(text));
        }
        catch (SpecValidationException e)
        {
            throw new CliInputException(e.Errors.Select(error => $"{path}: {error}").ToList());
        }
    }
}
