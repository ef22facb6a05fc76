using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TorchTrials.Runner.Execution;

namespace TorchTrials.Cluster;

/// <summary>
/// Runs a sweep's trials on a cluster (<c>RunConfig.ExecutorFactory = ClusterExecutorFactory.Connect("postgres://...")</c>,
/// spec key <c>cluster</c>, <c>torchtrials run --cluster</c>): the controller connects as an Orleans client when the run
/// starts and disconnects when it ends.
/// </summary>
public sealed class ClusterExecutorFactory : ITrialExecutorFactory
{
    private readonly ClusterConnection? _connection;
    private readonly IClusterClient? _client;

    private ClusterExecutorFactory(ClusterConnection? connection, IClusterClient? client, ClusterExecutorOptions options)
    {
        _connection = connection;
        _client = client;
        Options = options;
    }

    public ClusterExecutorOptions Options { get; }

    /// <summary>A factory that connects to <paramref name="connection"/> (see <see cref="ClusterConnection.Parse"/>).</summary>
    public static ClusterExecutorFactory Connect(string connection, ClusterExecutorOptions? options = null) =>
        new(ClusterConnection.Parse(connection), null, options ?? new ClusterExecutorOptions());

    public static ClusterExecutorFactory Connect(ClusterConnection connection, ClusterExecutorOptions? options = null) =>
        new(connection, null, options ?? new ClusterExecutorOptions());

    /// <summary>A factory over a client already connected (an Orleans test cluster's, or one the caller hosts).</summary>
    public static ClusterExecutorFactory For(IClusterClient client, ClusterExecutorOptions? options = null) =>
        new(null, client, options ?? new ClusterExecutorOptions());

    public string Describe() => _connection is { } c ? $"cluster {c}" : "cluster";

    public ITrialExecutor Create(ExecutorSetup setup)
    {
        if (_client is { } client)
            return new ClusterTrialExecutor(client, setup.Registry, setup.Options, Options, setup.Logger, setup.Fusion);
        var host = ConnectClient(_connection!);
        try
        {
            return new ClusterTrialExecutor(host.Services.GetRequiredService<IClusterClient>(), setup.Registry, setup.Options, Options, setup.Logger, setup.Fusion)
            {
                Owned = new StoppedOnDispose(host),
            };
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    private IHost ConnectClient(ClusterConnection connection)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        ClusterLogging.Apply(builder.Logging);
        builder.UseOrleansClient(client => connection.Configure(client));
        var host = builder.Build();
        try
        {
            using var timeout = new CancellationTokenSource(Options.JoinTimeout);
            if (connection.Kind == MembershipKind.Postgres)
                ClusterSchema.EnsureAsync(connection.ConnectionString!, timeout.Token).GetAwaiter().GetResult();
            host.StartAsync(timeout.Token).GetAwaiter().GetResult();
            return host;
        }
        catch (Exception e)
        {
            host.Dispose();
            throw new ClusterUnavailableException($"cannot reach cluster {connection}: {ClusterWorker.OneLine(e)}");
        }
    }

    /// <summary>Stops the client host (closing its gateway connections) before disposing it.</summary>
    private sealed class StoppedOnDispose(IHost host) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                host.StopAsync(timeout.Token).GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                // The cluster is gone: nothing to close gracefully.
            }
            host.Dispose();
        }
    }
}
