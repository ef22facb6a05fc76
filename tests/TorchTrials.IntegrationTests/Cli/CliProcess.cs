using System.Diagnostics;
using System.Text;

namespace TorchTrials.IntegrationTests.Cli;

/// <summary>The real torchtrials command in a child process (the build's torchtrials.dll), its output collected as it comes.</summary>
internal sealed record CliProcess(string Name, Process Process, StringBuilder Text)
{
    public string Output()
    {
        lock (Text) return Text.ToString();
    }

    /// <param name="environment">Variables to set in the child's environment; a null value removes the variable.</param>
    public static CliProcess Start(string name, IEnumerable<string> args, string? workingDirectory = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "torchtrials.dll");
        var info = new ProcessStartInfo("dotnet", new[] { cli }.Concat(args))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) info.Environment.Remove(key);
            else info.Environment[key] = value;
        }
        var process = new Process { StartInfo = info };
        var text = new StringBuilder();
        DataReceivedEventHandler append = (_, e) =>
        {
            if (e.Data is null) return;
            lock (text) text.AppendLine(e.Data);
        };
        process.OutputDataReceived += append;
        process.ErrorDataReceived += append;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new CliProcess(name, process, text);
    }
}
