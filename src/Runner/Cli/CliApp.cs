using System.CommandLine;
using Spectre.Console;
using TorchTrials.Cli.Commands;
using TorchTrials.Gpu.Native;
using TorchTrials.Runner.Store;

namespace TorchTrials.Cli;

/// <summary>Exit codes of the torchtrials command.</summary>
public static class ExitCodes
{
    public const int Success = 0;
    public const int RunFailed = 1;
    public const int BadInput = 2;
}

/// <summary>
/// The torchtrials command line: run a sweep spec, resume an experiment, show its status, draw its report, list devices,
/// serve as a cluster worker. Bad input exits 2
/// with one line per problem; a run that fails (for example fail-fast) exits 1; success exits 0; Ctrl-C exits 130 and
/// SIGTERM 143, both after leaving the running trials resumable.
/// </summary>
public static class CliApp
{
    /// <param name="plain">Plain line output instead of a live table (stdout is not a terminal).</param>
    public static int Run(string[] args, IAnsiConsole console, bool plain)
    {
        var root = new RootCommand("TorchTrials: hyperparameter sweeps of TorchSharp models on CPU and GPU slots.");
        var commands = new ICliCommand[]
        {
            new RunCommand(console, plain),
            new ResumeCommand(console, plain),
            new StatusCommand(console),
            new ReportCommand(console),
            new DevicesCommand(console),
            new WorkerCommand(console),
        };
        foreach (var command in commands) root.Subcommands.Add(command.Build());

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
                console.MarkupLineInterpolated($"[red]error:[/] {error.Message}");
            console.MarkupLine("Run [bold]torchtrials --help[/] for usage.");
            return ExitCodes.BadInput;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (CliInputException e)
        {
            foreach (var line in e.Lines) console.MarkupLineInterpolated($"[red]error:[/] {line}");
            return ExitCodes.BadInput;
        }
        catch (ExperimentOpenException e)
        {
            // Owned by another process, damaged, already there: the experiment cannot be opened as asked, and nothing was changed.
            console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (NativeRuntimeException e)
        {
            // Its message is the cause and the fix in one line; TorchSharp's load trace (if any) is its inner exception.
            console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            if (Environment.GetEnvironmentVariable("TORCHTRIALS_DEBUG") is not null) console.WriteException(e);
            return ExitCodes.RunFailed;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            console.MarkupLineInterpolated($"[red]error:[/] {e.GetType().Name}: {e.Message}");
            if (Environment.GetEnvironmentVariable("TORCHTRIALS_DEBUG") is not null) console.WriteException(e);
            return ExitCodes.RunFailed;
        }
    }
}

/// <summary>Bad input found by a command: each line names one problem.</summary>
public sealed class CliInputException(IReadOnlyList<string> lines) : Exception(string.Join(Environment.NewLine, lines))
{
    public CliInputException(string line) : this(new[] { line }) { }

    public IReadOnlyList<string> Lines { get; } = lines;
}

internal interface ICliCommand
{
    Command Build();
}
