namespace TorchTrials.Runner.Execution;

/// <summary>Whether trials of fusable trainables train in fused arrays.</summary>
public enum FuseMode
{
    /// <summary>Never: every trial trains alone on its own slot.</summary>
    Off,

    /// <summary>Trials whose trainable can fuse their config (<see cref="TorchTrials.Trainables.RegisteredTrainable.CanFuse"/>) share arrays; the rest train alone.</summary>
    Auto,
}

/// <summary>How the executor fuses trials (spec <c>executor: {fuse: auto | off, max_members: K}</c>).</summary>
public sealed record FusionOptions
{
    /// <summary>Lanes per array unless set; the one place the default lives.</summary>
    public const int DefaultMaxMembers = 16;

    public FuseMode Fuse { get; init; } = FuseMode.Auto;

    /// <summary>Lanes (trials) one array holds at most, on its one slot.</summary>
    public int MaxMembers { get; init; } = DefaultMaxMembers;

    /// <summary>Pending trials kept queued when the search samples independently of results, so trials of one key meet in one array; the one place the default lives.</summary>
    public const int DefaultLookahead = 1024;

    /// <summary>
    /// With grid or random search (<see cref="Search.ISearchAlgorithm.SamplesIndependently"/>), how many trials the controller
    /// keeps pending for arrays to group by key (a model-based searcher keeps slots x <see cref="MaxMembers"/>: sampling ahead
    /// would take results away from it). Ray keeps a pending window too (TUNE_MAX_PENDING_TRIALS_PG).
    /// </summary>
    public int Lookahead { get; init; } = DefaultLookahead;

    /// <summary>Fusion off: what a run without fusion options does.</summary>
    public static FusionOptions Off { get; } = new() { Fuse = FuseMode.Off };

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad value.</summary>
    public void Validate()
    {
        if (MaxMembers < 1) throw new ArgumentException($"executor.max_members must be at least 1 (got {MaxMembers})");
        if (Lookahead < 0) throw new ArgumentException($"FusionOptions.Lookahead must be 0 or more (got {Lookahead})");
    }
}
