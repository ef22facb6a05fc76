using TorchTrials.Gpu.Cuda;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Execution;

/// <summary>The memory checkpoint store every executor owns, built from <see cref="ExecutorOptions"/> the same way.</summary>
internal static class ExecutorCheckpointStore
{
    /// <summary>
    /// Budgets from the options; spilled checkpoints go to <see cref="ExecutorOptions.SpillDirectory"/>, or to a folder
    /// of its own under the system temp directory (one per executor, so two runs never share spill files).
    /// </summary>
    public static MemoryCheckpointStore Create(ExecutorOptions options, CudaStreamApi? streams = null) =>
        new(options.DeviceCheckpointBudgetBytes, options.HostCheckpointBudgetBytes,
            options.SpillDirectory ?? Path.Combine(Path.GetTempPath(), "torchtrials-spill", Guid.NewGuid().ToString("N")[..8]), streams);
}
