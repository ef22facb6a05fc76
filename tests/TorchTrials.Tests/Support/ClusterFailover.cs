namespace TorchTrials.Tests.Support;

/// <summary>
/// Test classes whose scenarios lose a worker on purpose and count on the controller's timeouts (the node's controller
/// lease, <c>UnreachableAfter</c>, membership votes): they run alone, after the parallel classes. Overlapped with those
/// on a loaded CI machine, the unreachable-worker scenario once left its sweep unfinished after 120 s; the cause is not
/// known yet (the test now reports each node's trials and the last lines logged when it times out).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterFailover
{
    public const string Name = "cluster-failover";
}
