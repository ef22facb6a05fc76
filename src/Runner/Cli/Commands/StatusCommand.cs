using System.CommandLine;
using Spectre.Console;
using TorchTrials.Cli.Rendering;
using TorchTrials.Runner;
using TorchTrials.Runner.Results;
using TorchTrials.Runner.Store;

namespace TorchTrials.Cli.Commands;

/// <summary><c>torchtrials status DIR</c>: what an experiment's store holds, read without changing it.</summary>
internal sealed class StatusCommand(IAnsiConsole console) : ICliCommand
{
    public Command Build()
    {
        var dir = new Argument<string>("dir") { Description = "The experiment directory (it holds experiment.db)." };
        var command = new Command("status", "Show the trials of an experiment and the best one so far.") { dir };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(dir)!;
            var grid = LoadGrid(path);
            ResultsView.WriteSummary(console, grid);
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>
    /// The experiment in <paramref name="path"/> as a result grid, read without writing anything (its owner may be running);
    /// bad input when there is none or its store is damaged.
    /// </summary>
    public static ResultGrid LoadGrid(string path)
    {
        if (!Directory.Exists(path)) throw new CliInputException($"'{path}' does not exist");
        if (!SqliteExperimentStore.Exists(path)) throw new CliInputException($"'{path}' holds no experiment (no {SqliteExperimentStore.FileName})");
        var stored = SqliteExperimentStore.Inspect(path);
        var trials = stored.Trials.Select(TrialStateCodec.Decode).Select(TrialSummary.Of).ToList();
        var metric = stored.State["metric"]?.GetValue<string>();
        MetricMode? mode = stored.State["mode"]?.GetValue<string>() is { } m ? Enum.Parse<MetricMode>(m, ignoreCase: true) : null;
        return new ResultGrid(trials, Path.GetFullPath(path), metric, mode);
    }
}
