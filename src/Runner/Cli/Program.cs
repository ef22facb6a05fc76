using Spectre.Console;
using TorchTrials.Cli;
using TorchTrials.Cli.Rendering;

var console = AnsiConsole.Console;
// Redirected output is read by scripts and logs: never wrap a line, unless COLUMNS asks for a width.
if (Console.IsOutputRedirected) console.Profile.Width = OutputWidth.ForRedirected(Environment.GetEnvironmentVariable("COLUMNS"));
return CliApp.Run(args, console, Console.IsOutputRedirected);
