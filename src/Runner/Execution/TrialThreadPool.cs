using Microsoft.Extensions.Logging;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// The concurrent executor's <see cref="TrialThread"/>s, reused across trials: a trial rents one for its whole run
/// and its retirement returns it. Actions staged on the controller's thread reach their threads at
/// <see cref="Dispatch"/>, one wake-up per thread per controller step.
/// </summary>
internal sealed class TrialThreadPool(ILogger logger)
{
    private readonly Stack<TrialThread> _idle = new();
    private readonly List<TrialThread> _threads = new();
    private readonly HashSet<TrialThread> _staged = new();
    private readonly object _gate = new();
    private bool _closed;

    /// <summary>OS threads created so far.</summary>
    public int ThreadsCreated
    {
        get { lock (_gate) return _threads.Count; }
    }

    public TrialThread Rent()
    {
        lock (_gate)
        {
            if (_idle.Count > 0) return _idle.Pop();
            var thread = new TrialThread($"torchtrials-trial-{_threads.Count}", logger);
            _threads.Add(thread);
            return thread;
        }
    }

    /// <summary>Gives a thread back (from any thread); after <see cref="Shutdown"/> it is not reused.</summary>
    public void Return(TrialThread thread)
    {
        lock (_gate)
        {
            if (!_closed) _idle.Push(thread);
        }
    }

    /// <summary>Queues <paramref name="action"/> for <paramref name="thread"/> until the next <see cref="Dispatch"/> (controller thread).</summary>
    public void Stage(TrialThread thread, Action action)
    {
        thread.Stage(action);
        _staged.Add(thread);
    }

    /// <summary>Sends the staged actions to their threads (controller thread).</summary>
    public void Dispatch()
    {
        if (_staged.Count == 0) return;
        foreach (var thread in _staged) thread.Flush();
        _staged.Clear();
    }

    /// <summary>Lets every thread finish what it was given, then ends it, waiting up to <paramref name="timeout"/> for each.</summary>
    public void Shutdown(TimeSpan timeout)
    {
        Dispatch();
        List<TrialThread> threads;
        lock (_gate)
        {
            _closed = true;
            threads = _threads.ToList();
        }
        foreach (var thread in threads) thread.Shutdown();
        foreach (var thread in threads)
            if (!thread.Join(timeout))
                logger.LogWarning("Trial thread {Thread} did not finish within {Seconds} s", thread.Name, timeout.TotalSeconds);
    }
}
