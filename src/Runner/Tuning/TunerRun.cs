using System.Runtime.CompilerServices;
using System.Threading.Channels;
using TorchTrials.Runner.Results;

namespace TorchTrials.Runner;

/// <summary>
/// A fit in progress (<see cref="Tuner.FitWithProgress"/>): its progress as a stream for <c>await foreach</c> and its
/// outcome as a task (<c>await run</c> gives the <see cref="ResultGrid"/> or throws what the run threw).
/// </summary>
public sealed class TunerRun
{
    private readonly ChannelReader<ExperimentSnapshot> _snapshots;

    internal TunerRun(ChannelReader<ExperimentSnapshot> snapshots, Task<ResultGrid> result)
    {
        _snapshots = snapshots;
        Result = result;
    }

    /// <summary>
    /// The run's snapshots in the order they were taken, for one reader. The controller never waits for it: the stream
    /// keeps only the newest snapshot not yet read, so a reader slower than <see cref="RunConfig.SnapshotInterval"/> skips
    /// the ones it missed. The stream ends when the run ends, however it ends; after a finished run its last snapshot is
    /// the final one (<see cref="ExperimentSnapshot.Finished"/>). Cancelling the enumeration
    /// (<c>WithCancellation</c>) stops reading, not the run.
    /// </summary>
    public IAsyncEnumerable<ExperimentSnapshot> Progress => _snapshots.ReadAllAsync();

    /// <summary>The grid when the run ends, or the exception that ended it.</summary>
    public Task<ResultGrid> Result { get; }

    public TaskAwaiter<ResultGrid> GetAwaiter() => Result.GetAwaiter();

    /// <summary>The channel between the controller and the reader: one snapshot, the newest, replaces an unread one.</summary>
    internal static Channel<ExperimentSnapshot> CreateChannel() =>
        Channel.CreateBounded<ExperimentSnapshot>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
}
