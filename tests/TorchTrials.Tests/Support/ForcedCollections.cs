namespace TorchTrials.Tests.Support;

/// <summary>
/// Test classes with a scenario that forces garbage collections from a thread of its own: the collections stop every
/// thread of the test process, so these classes run alone, after the parallel ones. Overlapped, they starved the Orleans
/// message threads of the cluster tests running beside them (seen: the orphan-epoch and unreachable-worker tests timed out
/// at 120 s, and an executor's own forced-collection scenario ran out of its patience).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ForcedCollections
{
    public const string Name = "forced-collections";
}
