using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using TorchTrials.Runner.Report;
using TorchTrials.Runner.Store;

namespace TorchTrials.Cli.Commands;

/// <summary>
/// <c>torchtrials report DIR</c>: draws the sweep in DIR as PNG pictures and an index.html in DIR/report/
/// (<see cref="SweepReport"/>), reading its store without changing it, so a running sweep goes on undisturbed.
/// </summary>
internal sealed class ReportCommand(IAnsiConsole console) : ICliCommand
{
    public Command Build()
    {
        var dir = new Argument<string>("dir") { Description = "The experiment directory (it holds experiment.db)." };
        var command = new Command("report", "Draw an experiment as pictures with an index.html, into DIR/report/.") { dir };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(dir)!;
            if (!Directory.Exists(path)) throw new CliInputException($"'{path}' does not exist");
            if (!SqliteExperimentStore.Exists(path)) throw new CliInputException($"'{path}' holds no experiment (no {SqliteExperimentStore.FileName})");
            var clock = Stopwatch.StartNew();
            var files = SweepReport.Write(path);
            var seconds = clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture);
            console.WriteLine($"Report: {files.Pictures.Count} picture{(files.Pictures.Count == 1 ? "" : "s")} and index.html in {seconds} s");
            console.WriteLine(files.Index);
            return ExitCodes.Success;
        });
        return command;
    }
}
