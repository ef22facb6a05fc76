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

    /// <summary>Fusion off: what a run without fusion options does.</summary>
    public static FusionOptions Off { get; } = new() { Fuse = FuseMode.Off };

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad value.</summary>
    public void Validate()
    {
        if (MaxMembers < 1) throw new ArgumentException($"executor.max_members must be at least 1 (got {MaxMembers})");
    }
}
