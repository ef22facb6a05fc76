using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using Spectre.Console;
using TorchTrials.Cluster;
using TorchTrials.Gpu;
using TorchTrials.Trainables;

namespace TorchTrials.Cli.Commands;

/// <summary>
/// <c>torchtrials worker --cluster CONNECTION</c>: this machine joins a cluster as a worker (an Orleans silo whose node
/// grain owns the machine's devices) and runs the trials controllers place on it, until Ctrl-C or SIGTERM. A worker that
/// cannot reach the cluster says so in one line and exits 1; bad options exit 2.
/// </summary>
internal sealed class WorkerCommand(IAnsiConsole console) : ICliCommand
{
    public Command Build()
    {
        var cluster = new Option<string>("--cluster") { Description = "The cluster to join: localhost[:PORT], postgres://USER:PW@HOST:PORT/DB or redis://HOST:PORT (each may end in ?cluster=ID).", Required = true };
        var inventory = new Option<string?>("--inventory") { Description = "Serve a simulated machine, e.g. \"cpus=4,gpus=2x16GiB\" (GPUs are accounted, tensors stay on the CPU); detected when absent." };
        var name = new Option<string?>("--name") { Description = "The worker's name in the controller's logs (the host name when absent)." };
        var address = new Option<string?>("--address") { Description = "The IP address other machines reach this worker at (127.0.0.1 when absent)." };
        var port = new Option<int?>("--port") { Description = "The silo port workers talk on (a free one when absent; 11111 for the first localhost worker)." };
        var gatewayPort = new Option<int?>("--gateway-port") { Description = "The port controllers connect to (a free one when absent; the localhost port for the first localhost worker)." };
        var assemblies = new Option<string[]>("--assembly") { Description = "A .dll whose trainables this worker can run (a user's own model); repeatable.", AllowMultipleArgumentsPerToken = true };
        var command = new Command("worker", "Join a cluster and run the trials its controllers place here.") { cluster, inventory, name, address, port, gatewayPort, assemblies };
        command.SetAction(parse => Serve(new WorkerOptions
        {
            Cluster = Parse("--cluster", parse.GetValue(cluster)!, ClusterConnection.Parse),
            Inventory = parse.GetValue(inventory) is { } text ? Parse("--inventory", text, DeviceInventory.Parse) : null,
            Name = parse.GetValue(name),
            Address = parse.GetValue(address) is { } ip ? Parse("--address", ip, IPAddress.Parse) : null,
            SiloPort = Port("--port", parse.GetValue(port)),
            GatewayPort = Port("--gateway-port", parse.GetValue(gatewayPort)),
            Registry = Registry(parse.GetValue(assemblies) ?? Array.Empty<string>()),
        }));
        return command;
    }

    private int Serve(WorkerOptions options)
    {
        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCtrlC = (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        Console.CancelKeyPress += onCtrlC;
        using var onSigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });
        try
        {
            ClusterWorker worker;
            try
            {
                worker = ClusterWorker.StartAsync(options, stop.Token).GetAwaiter().GetResult();
            }
            catch (ClusterUnavailableException e)
            {
                console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.RunFailed;
            }
            catch (OperationCanceledException)
            {
                return SweepRunner.Interrupted;
            }
            try
            {
                console.WriteLine($"Worker {worker.Node.Name} joined cluster {options.Cluster}: {worker.Node.Allocator.Inventory.Describe()}");
                var at = worker.Endpoint;
                // Two lines: one would pass 80 columns with five-digit ports.
                console.WriteLine($"Silo {at.Address}:{at.SiloPort}, gateway port {at.GatewayPort}.");
                console.WriteLine("Ctrl-C leaves the cluster; its running trials are requeued elsewhere.");
                stop.Token.WaitHandle.WaitOne();
            }
            finally
            {
                worker.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            console.WriteLine($"Worker {worker.Node.Name} left the cluster.");
            return ExitCodes.Success;
        }
        finally
        {
            Console.CancelKeyPress -= onCtrlC;
        }
    }

    private static T Parse<T>(string option, string text, Func<string, T> parse)
    {
        try
        {
            return parse(text);
        }
        catch (FormatException e)
        {
            throw new CliInputException($"{option}: {e.Message}");
        }
    }

    private static int? Port(string option, int? port) =>
        port is null or (>= 1 and <= 65535) ? port : throw new CliInputException($"{option}: must be from 1 to 65535, got {port}");

    private static TrainableRegistry Registry(IEnumerable<string> assemblies)
    {
        var registry = TrainableRegistry.CreateDefault();
        foreach (var path in assemblies)
        {
            try
            {
                registry.RegisterAssemblyFile(Path.GetFullPath(path));
            }
            catch (Exception e) when (e is FileNotFoundException or BadImageFormatException or FileLoadException or InvalidOperationException)
            {
                throw new CliInputException($"--assembly '{path}': {e.Message}");
            }
        }
        return registry;
    }
}
