using TorchTrials.Trainables;

namespace TorchTrials.Runner.Report;

/// <summary>
/// Everything the pictures of a sweep are drawn from, read from the experiment store only (issue 13): the trials with their
/// full histories, the schedulers' decisions, PBT's exploits, when each trial ran where, and the search space's domains.
/// Plain records, so a picture can be drawn (and tested) from data built in memory as well as from a store.
/// </summary>
public sealed partial record SweepData
{
    /// <summary>The experiment folder the data was read from ("" when built in memory).</summary>
    public string Directory { get; init; } = "";

    public string? Metric { get; init; }

    public MetricMode? Mode { get; init; }

    /// <summary>The trials in creation order (their sequence).</summary>
    public IReadOnlyList<SweepTrial> Trials { get; init; } = [];

    /// <summary>Every scheduler or stopper decision the store holds, in the order made.</summary>
    public IReadOnlyList<SweepDecision> Decisions { get; init; } = [];

    /// <summary>PBT and PB2 exploits (recipient took the donor's state and a new config), in the order made.</summary>
    public IReadOnlyList<SweepExploit> Exploits { get; init; } = [];

    /// <summary>The search space's dimensions that trials were sampled in, by name (config key path, "a/b" for nested keys).</summary>
    public IReadOnlyList<ParamDomain> Domains { get; init; } = [];
}

/// <summary>One trial as the store recorded it.</summary>
/// <param name="Params">The sampled hyperparameters (the trial's evaluated params), keyed as <see cref="ParamDomain.Name"/>; after a PBT exploit, the last config.</param>
/// <param name="Results">Every stored result, oldest first.</param>
/// <param name="Running">Each stretch of time the trial ran (from a status change to RUNNING to the next change), oldest first.</param>
public sealed record SweepTrial(
    string Id,
    long Sequence,
    TrialStatus Status,
    IReadOnlyDictionary<string, object?> Params,
    IReadOnlyList<TrialResult> Results,
    IReadOnlyList<RunningSpan> Running)
{
    /// <summary>Who stopped a terminated trial early (a scheduler or stopper type name); null otherwise.</summary>
    public string? StoppedBy { get; init; }

    /// <summary>The fused array and lane the trial last ran in (<c>a3.5</c>); null when it ran alone.</summary>
    public string? Lane { get; init; }

    /// <summary>Where the trial last ran (<see cref="Trial.Slot"/>: <c>GPU0</c>, <c>CPU</c>); null in experiments recorded before slots were.</summary>
    public string? Slot { get; init; }

    public string? Error { get; init; }
}

/// <summary>A stretch of wall time a trial held a slot: <paramref name="End"/> is null while it still runs.</summary>
public sealed record RunningSpan(DateTimeOffset Start, DateTimeOffset? End);

/// <summary>A decision about one trial at one iteration (the store's <c>decisions</c> row).</summary>
/// <param name="Decision">STOP, PAUSE, CONTINUE, ...</param>
/// <param name="Source">The scheduler or stopper type that made it.</param>
public sealed record SweepDecision(string TrialId, long Iteration, string Decision, string Source, DateTimeOffset At);

/// <summary>A PBT/PB2 exploit: <paramref name="TrialId"/> took <paramref name="DonorId"/>'s checkpoint and a new config.</summary>
public sealed record SweepExploit(
    string TrialId,
    string DonorId,
    long Iteration,
    DateTimeOffset At,
    IReadOnlyDictionary<string, object?> OldParams,
    IReadOnlyDictionary<string, object?> NewParams);

/// <summary>The kind of values a hyperparameter takes.</summary>
public enum ParamKind
{
    Float,
    Integer,
    Categorical,
}

/// <summary>
/// One dimension of the search space: a numeric range (log when sampled log-uniformly) or a list of categories. Read from the
/// experiment's saved domains, or inferred from the sampled values when the run saved none.
/// </summary>
public sealed record ParamDomain(string Name, ParamKind Kind)
{
    public double Low { get; init; }

    public double High { get; init; }

    /// <summary>True when the dimension is sampled on a log scale: its axes are drawn logarithmic.</summary>
    public bool Log { get; init; }

    /// <summary>For <see cref="ParamKind.Categorical"/>: the categories in the domain's order.</summary>
    public IReadOnlyList<object?> Categories { get; init; } = [];
}
