using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchTrials.Gpu;
using TorchTrials.Runner.Execution;
using TorchTrials.Trainables;

namespace TorchTrials.Cluster;

/// <summary>What a worker process runs: its cluster, its machine and the trainables it can build.</summary>
public sealed record WorkerOptions
{
    public required ClusterConnection Cluster { get; init; }

    /// <summary>The worker's name in logs and the CLI; the host name when null.</summary>
    public string? Name { get; init; }

    /// <summary>The machine's devices; detected when null (a simulated one accounts GPUs but trains on the CPU).</summary>
    public DeviceInventory? Inventory { get; init; }

    /// <summary>The trainables this worker can build: the built-ins when null. A user's own model is registered here.</summary>
    public TrainableRegistry? Registry { get; init; }

    /// <summary>The address other machines reach this worker at (loopback when null).</summary>
    public IPAddress? Address { get; init; }

    public int? SiloPort { get; init; }

    public int? GatewayPort { get; init; }

    public int? ThreadsPerTrial { get; init; }

    public ILoggerFactory? LoggerFactory { get; init; }
}

/// <summary>
/// A worker machine of a cluster (<c>torchtrials worker --cluster CONNECTION</c>): an Orleans silo whose node grain owns
/// this machine's inventory and slots and runs trials on its own threads and devices (<see cref="ClusterNode"/>).
/// </summary>
public sealed class ClusterWorker : IAsyncDisposable
{
    private readonly IHost _host;

    private ClusterWorker(IHost host, ClusterNode node, WorkerEndpoint endpoint)
    {
        _host = host;
        Node = node;
        Endpoint = endpoint;
    }

    public ClusterNode Node { get; }

    public WorkerEndpoint Endpoint { get; }

    /// <summary>
    /// Starts the worker and joins the cluster; throws <see cref="ClusterUnavailableException"/> with one line when the
    /// cluster cannot be reached (a membership store that does not answer, a port in use).
    /// </summary>
    public static async Task<ClusterWorker> StartAsync(WorkerOptions options, CancellationToken cancel = default)
    {
        var logs = options.LoggerFactory
            ?? (ClusterLogging.Level() is not null ? LoggerFactory.Create(b => ClusterLogging.Apply(b)) : NullLoggerFactory.Instance);
        var inventory = options.Inventory ?? DeviceInventory.Detect();
        var registry = options.Registry ?? TrainableRegistry.CreateDefault();
        var endpoint = WorkerEndpoint.For(options.Cluster, options.Address, options.SiloPort, options.GatewayPort);
        var node = new ClusterNode(new DeviceSlotAllocator(inventory), registry, options.Name, new ExecutorOptions(), options.ThreadsPerTrial,
            logs.CreateLogger("TorchTrials.Worker"));
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton(logs);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        builder.UseOrleans(silo =>
        {
            options.Cluster.Configure(silo, endpoint);
            silo.AddTorchTrialsNode(new ClusterNodeHost(node));
        });
        var host = builder.Build();
        try
        {
            if (options.Cluster.Kind == MembershipKind.Postgres)
                await ClusterSchema.EnsureAsync(options.Cluster.ConnectionString!, cancel).ConfigureAwait(false);
            await host.StartAsync(cancel).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            node.Dispose();
            host.Dispose();
            endpoint.Dispose();
            if (e is OperationCanceledException) throw;
            throw new ClusterUnavailableException($"worker {node.Name} cannot join cluster {options.Cluster}: {OneLine(e)}");
        }
        return new ClusterWorker(host, node, endpoint);
    }

    /// <summary>The innermost message, on one line.</summary>
    internal static string OneLine(Exception e)
    {
        var inner = e;
        while (inner.InnerException is not null && inner is AggregateException or System.Reflection.TargetInvocationException) inner = inner.InnerException;
        if (inner.InnerException is { } cause && cause.Message.Length > 0 && !inner.Message.Contains(cause.Message, StringComparison.Ordinal))
            return (inner.Message.TrimEnd('.') + ": " + cause.Message).ReplaceLineEndings(" ");
        return inner.Message.ReplaceLineEndings(" ");
    }

    /// <summary>Leaves the cluster (its trials are requeued by their controllers) and stops its trials.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        finally
        {
            _host.Dispose();
            Node.Dispose();
            Endpoint.Dispose();
        }
    }
}
