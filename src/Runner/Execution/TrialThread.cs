using Microsoft.Extensions.Logging;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// A dedicated OS thread running queued actions in order: TorchSharp's dispose scopes and LibTorch's current CUDA
/// stream are thread-local, so a trial's tensors are only ever touched from one thread. Idle threads block on a
/// monitor without spinning, so a hundred idle trial threads cost the cores nothing.
/// </summary>
internal sealed class TrialThread
{
    private readonly Queue<Action?> _queue = new();
    private readonly List<Action> _staged = new();
    private readonly Thread _thread;
    private readonly ILogger _logger;

    public TrialThread(string name, ILogger logger)
    {
        Name = name;
        _logger = logger;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public string Name { get; }

    /// <summary>Runs <paramref name="action"/> after everything queued before it.</summary>
    public void Post(Action action) => Enqueue(action);

    /// <summary>Collects an action on the controller's thread; <see cref="Flush"/> hands the collection over at once.</summary>
    public void Stage(Action action) => _staged.Add(action);

    public void Flush()
    {
        if (_staged.Count == 0) return;
        lock (_queue)
        {
            foreach (var action in _staged) _queue.Enqueue(action);
            Monitor.Pulse(_queue);
        }
        _staged.Clear();
    }

    /// <summary>Ends the thread after what is queued (and staged) now.</summary>
    public void Shutdown()
    {
        Flush();
        Enqueue(null);
    }

    public bool Join(TimeSpan timeout) => _thread.Join(timeout);

    private void Enqueue(Action? action)
    {
        lock (_queue)
        {
            _queue.Enqueue(action);
            if (_queue.Count == 1) Monitor.Pulse(_queue);
        }
    }

    private void Run()
    {
        ThreadScheduling.MakeCurrentThreadBatch();
        while (true)
        {
            Action? action;
            lock (_queue)
            {
                while (_queue.Count == 0) Monitor.Wait(_queue);
                action = _queue.Dequeue();
            }
            if (action is null) return;
            try
            {
                action();
            }
            catch (Exception e)
            {
                _logger.LogError(e, "Unhandled error on trial thread {Thread}", Name);
            }
        }
    }
}
