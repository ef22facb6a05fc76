using System.Globalization;
using System.Text.Json.Nodes;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// Population Based Training (Jaderberg et al., "Population Based Training of Neural Networks", 2017) with the
/// truncation-selection exploit and perturb/resample explore, as Ray Tune's PopulationBasedTraining implements it
/// (python/ray/tune/schedulers/pbt.py), asynchronous by default and synchronous (the paper's Appendix A.1) with
/// <see cref="PbtOptions.Synch"/>.
/// <para>
/// Each time a trial's <c>time_attr</c> has advanced <c>perturbation_interval</c> since its last perturbation (and is past
/// <c>burn_in_period</c>), its signed score is recorded. The trials with a score that are not finished are ranked;
/// <c>ceil(n * quantile_fraction)</c> of them (at most n/2) form the lower and the upper quantile. A trial in the upper
/// quantile saves its state to a memory checkpoint (<see cref="ITrialControl.SaveToMemory"/>; a paused one offers its
/// pause checkpoint). A trial in the lower quantile exploits a random upper-quantile trial: explore derives a new config
/// from the donor's (each <see cref="PbtMutation"/>: a list value moves to a neighbour or, with
/// <c>resample_probability</c> or when not in the list, is resampled; a continuous value is resampled or multiplied by a
/// random perturbation factor, staying whole when it was whole; nested configs recursively; then
/// <c>custom_explore_fn</c>), and <see cref="ITrialControl.ExploitTrial"/> loads the donor's checkpoint into the trial
/// with that config and the tag <c>{original tag}@perturbed[...]</c>, and the trial takes over the donor's perturbation
/// and training times. A donor without a usable checkpoint is never exploited (Ray #27170): the exploit is skipped.
/// </para>
/// <para>
/// Asynchronous mode returns PAUSE at a perturbation step whenever another trial is pending or paused, so a population
/// larger than the machine is time-multiplexed; <see cref="ChooseTrialToRun"/> then starts the waiting trial that trained
/// least. Synchronous mode pauses each trial at the perturbation time until every live trial reached it; the last one
/// to arrive perturbs all (upper quantile first, so their checkpoints exist before the lower quantile copies them), and
/// the next perturbation time becomes max(previous + interval, the latest training time).
/// </para>
/// <para>
/// Differences from Ray: the exploit happens in place on a running trial (the controller loads the donor state on the
/// device) instead of pausing it and restarting it; <see cref="ChooseTrialToRun"/> only offers trials that fit the free
/// resources; with quantile_fraction 0 nobody is in either quantile (Ray's <c>trials[-0:]</c> puts everyone in the upper
/// one and checkpoints them needlessly); in synchronous mode, when the last trial short of the barrier ends instead of
/// reporting, the barrier is released from <see cref="ChooseTrialToRun"/> rather than leaving the population paused;
/// the tag formats values with five significant digits like Ray's format_vars. Every perturbation is kept in
/// <see cref="Perturbations"/> and, with <c>log_config</c>, appended to pbt_global.txt and pbt_policy_{trial}.txt in the
/// experiment directory.
/// </para>
/// </summary>
public class PopulationBasedTraining : TrialSchedulerBase
{
    private readonly Dictionary<Trial, TrialState> _state = new();
    private readonly List<Trial> _order = new();
    private readonly List<PbtPerturbation> _perturbations = new();
    private double _nextPerturbationSync;

    public PopulationBasedTraining(PbtOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Settings = options.Validate();
        Metric = Settings.Metric;
        Mode = Settings.Mode;
        Random = Settings.Seed is { } seed ? new Random(seed) : new Random();
        _nextPerturbationSync = Math.Max(Settings.PerturbationInterval, Settings.BurnInPeriod);
    }

    public PbtOptions Options => Settings;

    /// <summary>Upper-quantile checkpoints taken (or offered by paused trials).</summary>
    public int NumCheckpoints { get; private set; }

    /// <summary>Exploits performed.</summary>
    public int NumPerturbations { get; private set; }

    /// <summary>Every exploit/explore step so far, oldest first (the content of Ray's pbt_global.txt).</summary>
    public IReadOnlyList<PbtPerturbation> Perturbations => _perturbations;

    /// <summary>The signed score each trial had at its last perturbation step, or null.</summary>
    public double? LastScore(Trial trial) => _state.TryGetValue(trial, out var s) ? s.LastScore : null;

    private protected PbtOptions Settings { get; }

    private protected Random Random { get; }

    private protected string Name => GetType().Name;

    public override void Validate() => OptionChecks.MetricAndMode(this, Metric, Mode);

    public override void OnTrialAdd(ITrialControl control, Trial trial)
    {
        Validate();
        if (_state.ContainsKey(trial)) return;
        _state[trial] = new TrialState(trial.ExperimentTag);
        _order.Add(trial);
        var config = trial.Config;
        var evaluated = trial.EvaluatedParams;
        foreach (var (key, mutation) in Settings.HyperparamMutations)
        {
            if (config.ContainsKey(key)) continue;
            var value = mutation.Sample(Random);
            config = config.With(key, value);
            evaluated = evaluated.SetItem(key, value);
        }
        if (!ReferenceEquals(config, trial.Config))
        {
            trial.SetConfigFromController(config);
            trial.EvaluatedParams = evaluated;
        }
    }

    public override SchedulerDecision OnTrialResult(ITrialControl control, Trial trial, TrialResult result)
    {
        bool hasTime = result.TryGetDouble(Settings.TimeAttr, out var time);
        bool hasMetric = result.TryGetDouble(Metric!, out _);
        if (!hasTime || !hasMetric)
        {
            if (Settings.RequireAttrs)
                throw new KeyNotFoundException(
                    $"{Name} cannot find {(hasTime ? "metric" : "time_attr")} '{(hasTime ? Metric : Settings.TimeAttr)}' in the result of trial {trial.Id}; " +
                    "report it from the trainable, or set RequireAttrs to false to ignore such results");
            return SchedulerDecision.Continue;
        }
        if (!_state.TryGetValue(trial, out var state)) return SchedulerDecision.Continue;

        if (time < Settings.BurnInPeriod) return SchedulerDecision.Continue;
        if (time - state.LastPerturbationTime < Settings.PerturbationInterval) return SchedulerDecision.Continue;

        state.LastScore = Score(result);
        state.LastTrainTime = time;
        state.LastResult = result;
        OnPerturbationResult(trial, time, result, state.LastScore.Value);

        if (!Settings.Synch)
        {
            state.LastPerturbationTime = time;
            var (lower, upper) = Quantiles();
            var decision = control.Trials.Any(t => t.Status is TrialStatus.Pending or TrialStatus.Paused)
                ? SchedulerDecision.Pause
                : SchedulerDecision.Continue;
            CheckpointOrExploit(control, trial, upper, lower);
            return decision;
        }

        if (!LiveTrials(control).Any(t => t != trial && _state.TryGetValue(t, out var s) && s.LastTrainTime < _nextPerturbationSync))
            SynchronousStep(control, time);
        return SchedulerDecision.Pause;
    }

    /// <summary>The waiting trial that trained least (in synchronous mode, only those short of the next perturbation time).</summary>
    public override Trial? ChooseTrialToRun(ITrialControl control)
    {
        var chosen = Candidates(control).FirstOrDefault(control.HasResourcesFor);
        if (chosen is not null || !Settings.Synch) return chosen;

        var live = LiveTrials(control).Where(_state.ContainsKey).ToList();
        if (live.Count > 0 && live.All(t => t.Status != TrialStatus.Running && _state[t].LastTrainTime >= _nextPerturbationSync))
        {
            SynchronousStep(control, live.Max(t => _state[t].LastTrainTime));
            return Candidates(control).FirstOrDefault(control.HasResourcesFor);
        }
        return null;
    }

    public override string DebugString() => $"{Name}: {NumCheckpoints} checkpoints, {NumPerturbations} perturbs";

    /// <summary>Called when a trial reaches a perturbation step, after its score is recorded (PB2 keeps its data here).</summary>
    private protected virtual void OnPerturbationResult(Trial trial, double time, TrialResult result, double score) { }

    /// <summary>The explore step: a new config for <paramref name="trial"/> derived from <paramref name="donor"/>'s.</summary>
    private protected virtual (TrialConfig Config, IReadOnlyDictionary<string, string> Operations) GetNewConfig(Trial trial, Trial donor) =>
        PbtExplore.Explore(donor.Config, Settings.HyperparamMutations, Settings.ResampleProbability, Settings.PerturbationFactors, Settings.CustomExploreFn, Random);

    private IEnumerable<Trial> Candidates(ITrialControl control) =>
        control.Trials
            .Where(t => t.Status is TrialStatus.Pending or TrialStatus.Paused && _state.ContainsKey(t))
            .Where(t => !Settings.Synch || _state[t].LastTrainTime < _nextPerturbationSync)
            .OrderBy(t => _state[t].LastTrainTime);

    private static IEnumerable<Trial> LiveTrials(ITrialControl control) =>
        control.Trials.Where(t => t.Status is not (TrialStatus.Terminated or TrialStatus.Error));

    private void SynchronousStep(ITrialControl control, double time)
    {
        var (lower, upper) = Quantiles();
        var middle = control.Trials.Where(t => _state.ContainsKey(t) && !lower.Contains(t) && !upper.Contains(t));
        // Upper quantile first, so their checkpoints exist before the lower quantile copies them.
        foreach (var trial in upper.Concat(middle).Concat(lower).ToList())
        {
            _state[trial].LastPerturbationTime = time;
            CheckpointOrExploit(control, trial, upper, lower);
        }
        double latest = _state.Values.Max(s => s.LastTrainTime);
        _nextPerturbationSync = Math.Max(_nextPerturbationSync + Settings.PerturbationInterval, latest);
    }

    private (List<Trial> Lower, List<Trial> Upper) Quantiles()
    {
        var ranked = _order
            .Where(t => _state[t].LastScore is not null && t.Status is not (TrialStatus.Terminated or TrialStatus.Error))
            .OrderBy(t => _state[t].LastScore!.Value)
            .ToList();
        if (ranked.Count <= 1) return (new(), new());
        int count = (int)Math.Ceiling(ranked.Count * Settings.QuantileFraction);
        if (count > ranked.Count / 2.0) count = ranked.Count / 2;
        return (ranked.Take(count).ToList(), ranked.Skip(ranked.Count - count).ToList());
    }

    private void CheckpointOrExploit(ITrialControl control, Trial trial, List<Trial> upper, List<Trial> lower)
    {
        var state = _state[trial];
        if (upper.Contains(trial))
        {
            state.LastCheckpoint = trial.Status == TrialStatus.Running
                ? control.SaveToMemory(trial)
                : trial.Checkpoints.NewestMemory ?? trial.Checkpoint;
            NumCheckpoints++;
        }
        else
        {
            state.LastCheckpoint = null;
        }

        if (!lower.Contains(trial)) return;
        var donor = upper[Random.Next(upper.Count)];
        var checkpoint = UsableCheckpoint(donor);
        if (checkpoint is null) return;
        Exploit(control, trial, donor, checkpoint);
    }

    /// <summary>
    /// The donor's checkpoint from its last perturbation step, if it still exists. When the donor was paused right after
    /// (or paused and resumed since), its pause re-saved the same state and replaced the saved one: that newer memory
    /// checkpoint is used, recognised by its result's time being the donor's perturbation time.
    /// </summary>
    private Checkpoint? UsableCheckpoint(Trial donor)
    {
        var state = _state[donor];
        switch (state.LastCheckpoint)
        {
            case null:
                return null;
            case MemoryCheckpoint memory when ReferenceEquals(donor.Checkpoints.NewestMemory, memory):
                return memory;
            case MemoryCheckpoint:
                var newest = donor.Checkpoints.NewestMemory;
                return newest?.Result is { } r && r.TryGetDouble(Settings.TimeAttr, out var t) && t == state.LastTrainTime ? newest : null;
            case PersistentCheckpoint persistent:
                return Directory.Exists(persistent.Directory) ? persistent : null;
            default:
                return state.LastCheckpoint;
        }
    }

    private void Exploit(ITrialControl control, Trial trial, Trial donor, Checkpoint checkpoint)
    {
        var state = _state[trial];
        var donorState = _state[donor];
        var (newConfig, operations) = GetNewConfig(trial, donor);
        var perturbation = new PbtPerturbation(
            trial.Id, donor.Id, state.OrigTag, donorState.OrigTag,
            state.LastResult?.TrainingIteration ?? trial.LastResult?.TrainingIteration ?? 0,
            donorState.LastResult?.TrainingIteration ?? 0,
            donor.Config, newConfig, state.LastTrainTime, operations);
        _perturbations.Add(perturbation);
        if (Settings.LogConfig) WritePolicy(trial, donor, perturbation);

        control.ExploitTrial(trial, checkpoint, newConfig, MakeExperimentTag(state.OrigTag, newConfig));
        NumPerturbations++;
        state.LastPerturbationTime = donorState.LastPerturbationTime;
        state.LastTrainTime = donorState.LastTrainTime;
    }

    private string MakeExperimentTag(string originalTag, TrialConfig config)
    {
        var vars = Settings.HyperparamMutations.Keys.Order(StringComparer.Ordinal)
            .Select(k => $"{k}={(config.TryGetValue(k, out var v) ? FormatTagValue(v) : "null")}");
        return $"{originalTag}@perturbed[{string.Join(",", vars)}]";
    }

    private static string FormatTagValue(object? value) =>
        value is double d ? d.ToString("G5", CultureInfo.InvariantCulture) : TrialConfig.Format(value);

    /// <summary>pbt_global.txt gets every step; pbt_policy_{trial}.txt is the donor's history followed by this step.</summary>
    private static void WritePolicy(Trial trial, Trial donor, PbtPerturbation p)
    {
        if (trial.LogDirectory is null || Path.GetDirectoryName(Path.GetFullPath(trial.LogDirectory)) is not { } experimentDir) return;
        var line = new JsonArray(p.RecipientTag, p.DonorTag, p.RecipientIteration, p.DonorIteration, p.DonorConfig.ToJsonObject(), p.NewConfig.ToJsonObject())
            .ToJsonString() + "\n";
        File.AppendAllText(Path.Combine(experimentDir, "pbt_global.txt"), line);
        var trialPath = Path.Combine(experimentDir, PathNames.Component($"pbt_policy_{trial.Id}") + ".txt");
        var donorPath = Path.Combine(experimentDir, PathNames.Component($"pbt_policy_{donor.Id}") + ".txt");
        if (File.Exists(donorPath)) File.Copy(donorPath, trialPath, overwrite: true);
        else File.Delete(trialPath);
        File.AppendAllText(trialPath, line);
    }

    private sealed class TrialState(string originalTag)
    {
        public string OrigTag { get; } = originalTag;

        public double? LastScore { get; set; }

        public Checkpoint? LastCheckpoint { get; set; }

        public double LastPerturbationTime { get; set; }

        public double LastTrainTime { get; set; }

        public TrialResult? LastResult { get; set; }
    }
}

/// <summary>Ray's <c>_explore</c>: the built-in mutations, then the custom explore function.</summary>
internal static class PbtExplore
{
    public static (TrialConfig Config, IReadOnlyDictionary<string, string> Operations) Explore(
        TrialConfig config,
        IReadOnlyDictionary<string, PbtMutation> mutations,
        double resampleProbability,
        IReadOnlyList<double> perturbationFactors,
        Func<TrialConfig, TrialConfig>? customExploreFn,
        Random random)
    {
        var operations = new Dictionary<string, string>(StringComparer.Ordinal);
        var result = config;
        foreach (var (key, mutation) in mutations)
        {
            var current = config[key];
            switch (mutation)
            {
                case NestedMutation nested:
                    var inner = current as TrialConfig ?? throw new ArgumentException($"config key '{key}' must be a nested config for its nested mutation");
                    var (explored, innerOps) = Explore(inner, nested.Mutations, resampleProbability, perturbationFactors, null, random);
                    result = result.With(key, explored);
                    foreach (var (k, op) in innerOps) operations[$"{key}/{k}"] = op;
                    break;
                case CategoricalMutation choice:
                    int index = choice.IndexOf(current);
                    if (random.NextDouble() < resampleProbability || index < 0)
                    {
                        result = result.With(key, choice.Values[random.Next(choice.Values.Length)]);
                        operations[key] = "resample";
                    }
                    else
                    {
                        int shift = random.Next(2) == 0 ? -1 : 1;
                        int moved = Math.Clamp(index + shift, 0, choice.Values.Length - 1);
                        result = result.With(key, choice.Values[moved]);
                        operations[key] = $"shift {(shift == -1 ? "left" : "right")}{(moved == index ? " (noop)" : "")}";
                    }
                    break;
                case ContinuousMutation domain:
                    object? value;
                    if (random.NextDouble() < resampleProbability)
                    {
                        value = domain.Sample(random);
                        operations[key] = "resample";
                    }
                    else
                    {
                        double factor = perturbationFactors[random.Next(perturbationFactors.Count)];
                        value = AsDouble(current, key) * factor;
                        operations[key] = $"* {factor.ToString("G6", CultureInfo.InvariantCulture)}";
                    }
                    if (current is long) value = (long)Math.Truncate(AsDouble(value, key));
                    result = result.With(key, value);
                    break;
            }
        }
        if (customExploreFn is not null)
            result = customExploreFn(result) ?? throw new InvalidOperationException("custom_explore_fn returned no config");
        return (result, operations);
    }

    private static double AsDouble(object? value, string key) => value switch
    {
        double d => d,
        long l => l,
        _ => throw new ArgumentException($"config key '{key}' must be a number to be perturbed, got '{TrialConfig.Format(value)}'"),
    };
}
