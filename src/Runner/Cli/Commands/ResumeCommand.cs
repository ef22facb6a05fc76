using System.CommandLine;
using Spectre.Console;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Spec;
using TorchTrials.Runner.Store;

namespace TorchTrials.Cli.Commands;

/// <summary>
/// <c>torchtrials resume DIR</c>: continue an experiment from its store with the spec saved beside it. Unfinished trials
/// continue from their latest checkpoint; errored ones stay errored unless asked otherwise.
/// </summary>
internal sealed class ResumeCommand(IAnsiConsole console, bool plain) : ICliCommand
{
    public Command Build()
    {
        var dir = new Argument<string>("dir") { Description = "The experiment directory to continue." };
        var resumeErrored = new Option<bool>("--resume-errored") { Description = "Continue errored trials from their latest checkpoint." };
        var restartErrored = new Option<bool>("--restart-errored") { Description = "Start errored trials again from scratch." };
        var cluster = new Option<string?>("--cluster") { Description = "Continue on this cluster instead of the one the spec names." };
        var plainOption = new Option<bool>("--plain") { Description = "Plain line output instead of the live table." };
        var command = new Command("resume", "Continue an interrupted or finished experiment.") { dir, resumeErrored, restartErrored, cluster, plainOption };
        command.SetAction(parse =>
        {
            var path = Path.GetFullPath(parse.GetValue(dir)!);
            if (!SqliteExperimentStore.Exists(path))
                throw new CliInputException($"'{path}' holds no experiment (no {SqliteExperimentStore.FileName})");
            var specCopy = Path.Combine(path, SweepPlan.SpecCopyName);
            if (!File.Exists(specCopy))
                throw new CliInputException($"'{path}' has no {SweepPlan.SpecCopyName}; it was not started by `torchtrials run`, resume it through the library (Tuner.Restore)");
            if (parse.GetValue(resumeErrored) && parse.GetValue(restartErrored))
                throw new CliInputException("--resume-errored and --restart-errored exclude each other");
            var plan = SweepRunner.LoadPlan(specCopy, Path.GetDirectoryName(path), Path.GetFileName(path), savedCopy: true, cluster: parse.GetValue(cluster));
            var options = new ResumeOptions
            {
                ResumeErrored = parse.GetValue(resumeErrored),
                RestartErrored = parse.GetValue(restartErrored),
                OnWarning = line => console.MarkupLineInterpolated($"[yellow]warning:[/] {line}"),
            };
            return SweepRunner.Execute(console, plain || parse.GetValue(plainOption), path, () => plan.RestoreTuner(path, options, showsProgress: true));
        });
        return command;
    }
}
