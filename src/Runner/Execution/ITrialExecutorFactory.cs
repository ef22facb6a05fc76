using Microsoft.Extensions.Logging;
using TorchTrials.Gpu;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// What the Tuner hands an executor it does not build itself: the controller machine's slot allocator, the trainables,
/// the executor options, the fusion options of the sweep (null when fusion is off), threads per trial, the logger and
/// the experiment folder.
/// </summary>
public sealed record ExecutorSetup(
    DeviceSlotAllocator Allocator,
    TrainableRegistry Registry,
    ExecutorOptions Options,
    FusionOptions? Fusion,
    int? ThreadsPerTrial,
    ILogger Logger,
    string ExperimentPath);

/// <summary>
/// Builds the executor of a run instead of the Tuner's own (<see cref="Tuning.RunConfig.ExecutorFactory"/>): the seam a
/// distributed executor plugs into (TorchTrials.Cluster's <c>ClusterExecutorFactory</c>). The executor returned passes
/// ExecutorContractTests and is disposed by the Tuner when the run ends.
/// </summary>
public interface ITrialExecutorFactory
{
    /// <summary>Describes where trials run, for logs and the CLI (for example "cluster localhost:30000, 2 nodes").</summary>
    string Describe();

    ITrialExecutor Create(ExecutorSetup setup);
}
