using System.Collections.Concurrent;
using Orleans.TestingHost;
using TorchTrials.Cluster;
using TorchTrials.Gpu;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Cluster;

/// <summary>
/// An Orleans cluster in this process: <c>nodes</c> silos, each a worker with its own simulated machine (for example
/// "cpus=4,gpus=2x16GiB"), and the test as the controller (the cluster's client).
/// </summary>
public sealed class TestCluster : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, ClusterNode> _nodes = new(StringComparer.Ordinal);

    private TestCluster(InProcessTestCluster cluster, LogRecorder logs)
    {
        Cluster = cluster;
        Logs = logs;
    }

    public InProcessTestCluster Cluster { get; }

    public IClusterClient Client => Cluster.Client;

    /// <summary>What the nodes logged (a test adds its controller's lines with <see cref="LogRecorder"/> as its logger factory).</summary>
    public LogRecorder Logs { get; }

    /// <summary>Each node's running trials and slots, and the last lines logged: what a test that timed out reports.</summary>
    public string Describe() =>
        string.Join("; ", _nodes.Select(n => $"{n.Key}: {n.Value.RunningTrials} running, {n.Value.Allocator.DescribeUsage()}")) + Environment.NewLine + Logs.Tail();

    /// <summary>The node of each silo, by silo name.</summary>
    public IReadOnlyDictionary<string, ClusterNode> Nodes => _nodes;

    public static async Task<TestCluster> StartAsync(int nodes, string inventory, TrainableRegistry? registry = null)
    {
        TestCluster? self = null;
        var logs = new LogRecorder();
        var pending = new ConcurrentDictionary<string, ClusterNode>(StringComparer.Ordinal);
        var builder = new InProcessTestClusterBuilder((short)nodes);
        builder.Options.ConfigureFileLogging = false;
        builder.ConfigureSilo((options, silo) =>
        {
            var node = new ClusterNode(new DeviceSlotAllocator(DeviceInventory.Parse(inventory)), registry ?? TrainableRegistry.CreateDefault(), options.SiloName,
                logger: logs.CreateLogger("node " + options.SiloName));
            (self?._nodes ?? pending)[options.SiloName] = node;
            silo.AddTorchTrialsNode(new ClusterNodeHost(node));
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        self = new TestCluster(cluster, logs);
        foreach (var (name, node) in pending) self._nodes[name] = node;
        return self;
    }

    public ClusterNode NodeOf(InProcessSiloHandle silo) => _nodes[silo.Name];

    /// <summary>A worker that joins the running cluster, with the same simulated machine as the others.</summary>
    public async Task<ClusterNode> AddAsync()
    {
        var silo = await Cluster.StartAdditionalSiloAsync();
        return NodeOf(silo);
    }

    /// <summary>Stops a silo as a machine that leaves: its node stops training too.</summary>
    public async Task StopAsync(InProcessSiloHandle silo)
    {
        await Cluster.StopSiloAsync(silo);
        NodeOf(silo).Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        foreach (var node in _nodes.Values) node.Dispose();
    }
}
