using Spectre.Console;
using TorchTrials.Cli;

var console = AnsiConsole.Console;
// Redirected output is read by scripts and logs: never wrap a line.
if (Console.IsOutputRedirected) console.Profile.Width = 4096;
return CliApp.Run(args, console, Console.IsOutputRedirected);
