namespace TorchTrials.Trainables.Checkpoints;

/// <summary>
/// A trial's checkpoints and their retention, following Ray Tune 1.x's CheckpointManager: the newest memory
/// checkpoint replaces the previous one; persistent checkpoints are ranked by a score attribute (a result key,
/// "min-" prefixed to prefer low values) and at most <see cref="KeepCheckpointsNum"/> of the best are kept; a
/// checkpoint that is not among the best is deleted once a newer one arrives. The newest is never deleted at once.
/// Deviation: deleting goes through <see cref="RetirePersistent"/>, so a runner with a store can keep the files until the
/// store has committed their replacement (a crash in between must still find a checkpoint the store knows).
/// </summary>
public sealed class CheckpointManager
{
    private readonly List<(double Score, PersistentCheckpoint Checkpoint)> _best = new();

    /// <param name="keepCheckpointsNum">How many persistent checkpoints to keep; null keeps all.</param>
    /// <param name="scoreAttribute">Result key ranking checkpoints; "min-" prefix to prefer smaller values.</param>
    public CheckpointManager(int? keepCheckpointsNum = null, string scoreAttribute = TrialResult.TrainingIterationKey)
    {
        if (keepCheckpointsNum is < 1)
            throw new ArgumentOutOfRangeException(nameof(keepCheckpointsNum), $"keep_checkpoints_num must be at least 1, got {keepCheckpointsNum}");
        ArgumentException.ThrowIfNullOrWhiteSpace(scoreAttribute);
        KeepCheckpointsNum = keepCheckpointsNum;
        ScoreMin = scoreAttribute.StartsWith("min-", StringComparison.Ordinal);
        ScoreAttribute = ScoreMin ? scoreAttribute["min-".Length..] : scoreAttribute;
    }

    public int? KeepCheckpointsNum { get; }

    public string ScoreAttribute { get; }

    public bool ScoreMin { get; }

    public MemoryCheckpoint? NewestMemory { get; private set; }

    /// <summary>Called for each persistent checkpoint retention lets go; deletes its files at once unless replaced.</summary>
    public Action<PersistentCheckpoint> RetirePersistent { get; set; } = checkpoint => checkpoint.Delete();

    public Checkpoint? NewestPersistent { get; private set; }

    /// <summary>The checkpoint to restore from: the most recent of the memory and persistent ones (memory wins ties: it is faster).</summary>
    public Checkpoint? Newest =>
        (NewestMemory, NewestPersistent) switch
        {
            (null, var p) => p,
            (var m, null) => m,
            var (m, p) => m.TrainingIteration >= p.TrainingIteration ? m : p,
        };

    /// <summary>Kept persistent checkpoints, best first.</summary>
    public IReadOnlyList<PersistentCheckpoint> Best => _best.OrderByDescending(b => b.Score).Select(b => b.Checkpoint).ToList();

    /// <summary>Records a new checkpoint and applies retention. Returns an error message when the score attribute is missing (the checkpoint is kept as newest only).</summary>
    public string? OnCheckpoint(Checkpoint checkpoint)
    {
        if (checkpoint is MemoryCheckpoint memory)
        {
            if (!ReferenceEquals(NewestMemory, memory)) NewestMemory?.Delete();
            NewestMemory = memory;
            return null;
        }

        var old = NewestPersistent;
        if (ReferenceEquals(old, checkpoint)) return null;
        NewestPersistent = checkpoint;
        if (old is PersistentCheckpoint oldPersistent && !_best.Any(b => ReferenceEquals(b.Checkpoint, oldPersistent)) && !IsExternal(oldPersistent))
            RetirePersistent(oldPersistent);
        if (checkpoint is not PersistentCheckpoint persistent) return null;

        if (checkpoint.Result is null || !checkpoint.Result.TryGetDouble(ScoreAttribute, out var raw))
            return $"result has no key '{ScoreAttribute}': checkpoint_score_attr must be a key of the result";
        double score = ScoreMin ? -raw : raw;

        if (KeepCheckpointsNum is null || _best.Count < KeepCheckpointsNum)
        {
            _best.Add((score, persistent));
            return null;
        }
        var worst = _best.MinBy(b => b.Score);
        if (score < worst.Score)
            return null;
        _best.Remove(worst);
        _best.Add((score, persistent));
        if (!ReferenceEquals(worst.Checkpoint, NewestPersistent)) RetirePersistent(worst.Checkpoint);
        return null;
    }

    /// <summary>Forgets every checkpoint without deleting persistent files (a restart from scratch).</summary>
    public void Clear()
    {
        NewestMemory?.Delete();
        NewestMemory = null;
        NewestPersistent = null;
        _best.Clear();
    }

    /// <summary>Frees memory checkpoints (the trial is finished or its process is ending).</summary>
    public void ReleaseMemory()
    {
        NewestMemory?.Delete();
        NewestMemory = null;
    }

    /// <summary>A checkpoint given from outside (restore_path) is never deleted by retention.</summary>
    public HashSet<string> ExternalDirectories { get; } = new(StringComparer.Ordinal);

    private bool IsExternal(PersistentCheckpoint checkpoint) => ExternalDirectories.Contains(checkpoint.Directory);

    /// <summary>Re-adopts persistent checkpoints found after a resume, oldest first.</summary>
    public void Adopt(IEnumerable<PersistentCheckpoint> checkpoints)
    {
        foreach (var checkpoint in checkpoints.OrderBy(c => c.TrainingIteration)) OnCheckpoint(checkpoint);
    }
}
