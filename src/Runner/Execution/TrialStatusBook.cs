using TorchTrials.Runner.Store;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// The controller's book of trials (Ray's TuneController keeps the same lists): every trial by id, the pending and paused
/// queues in order, and the running and unfinished counts, all kept in line by <see cref="SetStatus"/>, the one place a
/// trial's status changes once it is registered. Each change is written to the store and told to the callbacks.
/// </summary>
internal sealed class TrialStatusBook(List<Trial> trials, IExperimentStore store, CallbackList callbacks)
{
    private readonly Dictionary<string, Trial> _byId = new(StringComparer.Ordinal);
    private readonly OrderedTrialSet _pending = new();
    private readonly OrderedTrialSet _paused = new();

    public IReadOnlyList<Trial> Trials => trials;

    public IEnumerable<Trial> Pending => _pending;

    public IEnumerable<Trial> Paused => _paused;

    public int PendingCount => _pending.Count;

    public int PausedCount => _paused.Count;

    public int RunningCount { get; private set; }

    /// <summary>Trials neither terminated nor errored.</summary>
    public int UnfinishedCount { get; private set; }

    /// <summary>The highest trial sequence handed out so far (saved in the experiment state).</summary>
    public long Sequence { get; private set; }

    public Trial? Get(string id) => _byId.GetValueOrDefault(id);

    public bool Contains(string id) => _byId.ContainsKey(id);

    /// <summary>A copy of the pending, paused and running trials, in the order they were added.</summary>
    public List<Trial> Unfinished() => trials.Where(t => t.Status is TrialStatus.Pending or TrialStatus.Paused or TrialStatus.Running).ToList();

    public List<Trial> Running() => trials.Where(t => t.Status is TrialStatus.Running).ToList();

    /// <summary>Adds a trial with its current status; a new trial gets the next sequence, a resumed one keeps its own.</summary>
    public void Register(Trial trial, bool keepSequence = false)
    {
        if (!keepSequence || trial.Sequence == 0) trial.Sequence = ++Sequence;
        else Sequence = Math.Max(Sequence, trial.Sequence);
        trial.Checkpoints.RetirePersistent = checkpoint => store.CheckpointRetired(trial, checkpoint);
        trials.Add(trial);
        _byId[trial.Id] = trial;
        if (trial.Status is not (TrialStatus.Terminated or TrialStatus.Error)) UnfinishedCount++;
        if (trial.Status == TrialStatus.Running) RunningCount++;
        if (trial.Status == TrialStatus.Pending) _pending.Add(trial);
        if (trial.Status == TrialStatus.Paused) _paused.Add(trial);
    }

    /// <summary>Raises <see cref="Sequence"/> to what a resumed experiment had handed out.</summary>
    public void ContinueSequenceFrom(long sequence) => Sequence = Math.Max(Sequence, sequence);

    public void SetStatus(Trial trial, TrialStatus status, string reason)
    {
        var previous = trial.Status;
        if (previous == status) return;
        switch (previous)
        {
            case TrialStatus.Pending: _pending.Remove(trial); break;
            case TrialStatus.Paused: _paused.Remove(trial); break;
        }
        if (previous == TrialStatus.Running) RunningCount--;
        if (status == TrialStatus.Running) RunningCount++;
        bool wasFinished = previous is TrialStatus.Terminated or TrialStatus.Error;
        bool isFinished = status is TrialStatus.Terminated or TrialStatus.Error;
        if (!wasFinished && isFinished) UnfinishedCount--;
        if (wasFinished && !isFinished) UnfinishedCount++;
        trial.Status = status;
        if (status != TrialStatus.Terminated) trial.StoppedBy = null;
        switch (status)
        {
            case TrialStatus.Pending: _pending.Add(trial); break;
            case TrialStatus.Paused: _paused.Add(trial); break;
        }
        store.TrialChanged(trial, previous, reason);
        callbacks.OnTrialStatusChanged(trial, previous, reason);
    }

    /// <summary>An insertion-ordered set of trials with O(1) add and remove.</summary>
    private sealed class OrderedTrialSet : IEnumerable<Trial>
    {
        private readonly LinkedList<Trial> _list = new();
        private readonly Dictionary<Trial, LinkedListNode<Trial>> _nodes = new();

        public int Count => _list.Count;

        public void Add(Trial trial)
        {
            if (_nodes.ContainsKey(trial)) return;
            _nodes[trial] = _list.AddLast(trial);
        }

        public void Remove(Trial trial)
        {
            if (_nodes.Remove(trial, out var node)) _list.Remove(node);
        }

        public IEnumerator<Trial> GetEnumerator() => _list.ToList().GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
