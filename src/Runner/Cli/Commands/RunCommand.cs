using System.CommandLine;
using Spectre.Console;
using TorchTrials.Gpu;

namespace TorchTrials.Cli.Commands;

/// <summary><c>torchtrials run SPEC.yaml</c>: validate the whole spec, then run the sweep with a live table.</summary>
internal sealed class RunCommand(IAnsiConsole console, bool plain) : ICliCommand
{
    public Command Build()
    {
        var spec = new Argument<string>("spec") { Description = "The sweep spec (YAML)." };
        var resultsDir = new Option<string?>("--results-dir") { Description = "Folder that holds experiments (overrides storage_path)." };
        var name = new Option<string?>("--name") { Description = "Experiment name (overrides name); its folder is RESULTS_DIR/NAME." };
        var inventory = new Option<string?>("--inventory") { Description = "Run on a simulated machine, e.g. \"cpus=4,gpus=2x16GiB\" (GPUs are accounted, tensors stay on the CPU)." };
        var cluster = new Option<string?>("--cluster") { Description = "Run the trials on a cluster of workers (overrides cluster): localhost[:PORT], postgres://USER:PW@HOST:PORT/DB or redis://HOST:PORT." };
        var plainOption = new Option<bool>("--plain") { Description = "Plain line output instead of the live table." };
        var command = new Command("run", "Run a sweep spec.") { spec, resultsDir, name, inventory, cluster, plainOption };
        command.SetAction(parse =>
        {
            DeviceInventory? simulated = null;
            if (parse.GetValue(inventory) is { } text)
            {
                try { simulated = DeviceInventory.Parse(text); }
                catch (FormatException e) { throw new CliInputException($"--inventory: {e.Message}"); }
            }
            var path = parse.GetValue(spec)!;
            var plan = SweepRunner.LoadPlan(path, parse.GetValue(resultsDir), parse.GetValue(name), simulated, cluster: parse.GetValue(cluster));
            // The tuner refuses an experiment that exists or is owned by a live process, and writes the spec copy only once it
            // owns the folder (SweepPlan.CreateTuner): never into another process's run.
            var probe = plan.CreateTuner();
            return SweepRunner.Execute(console, plain || parse.GetValue(plainOption), probe.ExperimentPath, () => plan.CreateTuner(showsProgress: true));
        });
        return command;
    }
}
