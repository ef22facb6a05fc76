using System.Collections;
using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>A searched entry of a space: its key and its domain.</summary>
public sealed record SearchDimension(string Key, UnitDomain Domain);

/// <summary>
/// What a sweep searches over (Ray Tune's param_space): ordered named entries, each a <see cref="Domain"/> or a constant.
/// Build it with an initializer, <c>new SearchSpace { ["lr"] = Domain.LogUniform(1e-4, 1e-1), ["width"] = Domain.Choice(64, 128), ["epochs"] = 10 }</c>,
/// or from a sweep spec with <see cref="FromSpec"/>. Every domain is checked as it is added (the error names the key);
/// <see cref="Validate"/> checks what needs the whole space: sample_from references and cycles.
/// </summary>
public sealed class SearchSpace : IEnumerable<KeyValuePair<string, object?>>
{
    private readonly List<string> _order = new();
    private readonly Dictionary<string, object?> _entries = new(StringComparer.Ordinal);

    /// <summary>A domain or a constant; setting checks a domain and throws <see cref="SearchSpaceException"/> naming the key.</summary>
    public object? this[string key]
    {
        get => _entries.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"search space has no key '{key}'");
        set
        {
            var problems = Check(key, value).ToList();
            if (problems.Count > 0) throw new SearchSpaceException(problems);
            Set(key, value);
        }
    }

    /// <summary>Adds an entry (collection initializer form: <c>{ { "lr", Domain.Uniform(0, 1) } }</c>).</summary>
    public void Add(string key, object? value) => this[key] = value;

    public IReadOnlyList<string> Keys => _order;

    public int Count => _order.Count;

    public bool ContainsKey(string key) => _entries.ContainsKey(key);

    /// <summary>Random dimensions (not grid, not sample_from), in order: what the variant generator draws.</summary>
    public IReadOnlyList<SearchDimension> RandomDimensions =>
        _order.Where(k => _entries[k] is UnitDomain { IsGrid: false }).Select(k => new SearchDimension(k, (UnitDomain)_entries[k]!)).ToList();

    /// <summary>Grid dimensions, in order.</summary>
    public IReadOnlyList<SearchDimension> GridDimensions =>
        _order.Where(k => _entries[k] is UnitDomain { IsGrid: true }).Select(k => new SearchDimension(k, (UnitDomain)_entries[k]!)).ToList();

    /// <summary>Every searched dimension in order, grid ones included as categories: what a model-based searcher sees (as Ray and Optuna treat grid values there).</summary>
    public IReadOnlyList<SearchDimension> SearchDimensions =>
        _order.Where(k => _entries[k] is UnitDomain).Select(k => new SearchDimension(k, (UnitDomain)_entries[k]!)).ToList();

    /// <summary>sample_from entries in declaration order.</summary>
    public IReadOnlyList<KeyValuePair<string, FunctionDomain>> Functions =>
        _order.Where(k => _entries[k] is FunctionDomain).Select(k => new KeyValuePair<string, FunctionDomain>(k, (FunctionDomain)_entries[k]!)).ToList();

    /// <summary>The constant entries.</summary>
    public TrialConfig Constants => TrialConfig.From(_order.Where(k => _entries[k] is not Domain).Select(k => new KeyValuePair<string, object?>(k, _entries[k])));

    /// <summary>Keys whose values vary per trial (dimensions and sample_from): what experiment tags and evaluated params show.</summary>
    public IEnumerable<string> VaryingKeys => _order.Where(k => _entries[k] is Domain);

    /// <summary>Checks the whole space; throws one <see cref="SearchSpaceException"/> listing every problem.</summary>
    public SearchSpace Validate()
    {
        var problems = new List<SearchSpaceProblem>();
        foreach (var key in _order) problems.AddRange(Check(key, _entries[key]));
        problems.AddRange(DependencyProblems());
        if (problems.Count > 0) throw new SearchSpaceException(problems);
        return this;
    }

    /// <summary>
    /// A full config from the values of the dimensions (a given value also overrides a constant or a sample_from entry):
    /// constants, the given values, then every remaining sample_from evaluated
    /// after what it reads (fixed-point passes for C# functions, as Ray's variant generator resolves them), in the space's order.
    /// </summary>
    public TrialConfig Resolve(IReadOnlyDictionary<string, object?> values)
    {
        var resolved = TrialConfig.Empty;
        foreach (var key in _order)
        {
            var entry = _entries[key];
            if (values.TryGetValue(key, out var given)) resolved = resolved.With(key, given);
            else if (entry is FunctionDomain) continue;
            else if (entry is Domain) throw new ArgumentException($"no value given for search space key '{key}'");
            else resolved = resolved.With(key, entry);
        }
        foreach (var (key, v) in values)
            if (!_entries.ContainsKey(key)) resolved = resolved.With(key, v);
        var pending = Functions.Where(f => !values.ContainsKey(f.Key)).ToList();
        var lastError = new Dictionary<string, string>(StringComparer.Ordinal);
        while (pending.Count > 0)
        {
            int before = pending.Count;
            for (int i = 0; i < pending.Count; i++)
            {
                var (key, function) = pending[i];
                if (function.DependsOn.Any(d => !resolved.ContainsKey(d))) continue;
                try
                {
                    resolved = resolved.With(key, function.Evaluate(resolved));
                    pending.RemoveAt(i--);
                }
                catch (KeyNotFoundException e)
                {
                    lastError[key] = e.Message;
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or ArithmeticException)
                {
                    throw new SearchSpaceException(new[] { new SearchSpaceProblem(key, $"sample_from failed: {e.Message}") });
                }
            }
            if (pending.Count == before)
                throw new SearchSpaceException(pending.Select(p => new SearchSpaceProblem(p.Key,
                    $"sample_from could not be resolved: {lastError.GetValueOrDefault(p.Key, "it reads values that are never resolved")}")).ToList());
        }
        return Order(resolved);
    }

    private TrialConfig Order(TrialConfig config)
    {
        var ordered = TrialConfig.Empty;
        foreach (var key in _order)
            if (config.TryGetValue(key, out var v)) ordered = ordered.With(key, v);
        foreach (var (key, v) in config)
            if (!_entries.ContainsKey(key)) ordered = ordered.With(key, v);
        return ordered;
    }

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() =>
        _order.Select(k => new KeyValuePair<string, object?>(k, _entries[k])).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => string.Join(", ", _order.Select(k => $"{k}={(_entries[k] is Domain d ? d.ToString() : TrialConfig.Format(_entries[k]))}"));

    /// <summary>
    /// Parses a sweep spec's search space (what the CLI's YAML becomes): each entry is a plain value (a constant) or an
    /// object with exactly one keyword: uniform [lo, hi], loguniform [lo, hi, base?], quniform [lo, hi, q],
    /// qloguniform [lo, hi, q, base?], randint [lo, hi], qrandint [lo, hi, q?], lograndint [lo, hi, base?],
    /// qlograndint [lo, hi, q, base?], randn [mean?, sd?], qrandn [mean, sd, q], choice [...], grid [...],
    /// sample_from "expression". Every problem is collected and reported in one exception.
    /// </summary>
    public static SearchSpace FromSpec(JsonObject spec) => SearchSpaceSpec.Parse(spec);

    internal void Set(string key, object? value)
    {
        if (!_entries.ContainsKey(key)) _order.Add(key);
        _entries[key] = value is Domain ? value : TrialConfig.Normalise(value, key);
    }

    internal static IEnumerable<SearchSpaceProblem> Check(string key, object? value)
    {
        if (string.IsNullOrEmpty(key))
        {
            yield return new SearchSpaceProblem("(empty)", "keys must not be empty");
            yield break;
        }
        if (value is Domain domain)
        {
            foreach (var p in domain.Problems()) yield return new SearchSpaceProblem(key, p);
            yield break;
        }
        string? error = null;
        try
        {
            TrialConfig.Normalise(value, key);
        }
        catch (ArgumentException e)
        {
            error = e.Message;
        }
        if (error is not null) yield return new SearchSpaceProblem(key, error);
    }

    internal IEnumerable<SearchSpaceProblem> DependencyProblems()
    {
        var functions = Functions.Where(f => f.Value.Expression is not null).ToDictionary(f => f.Key, f => f.Value, StringComparer.Ordinal);
        foreach (var (key, function) in functions)
            foreach (var name in function.DependsOn)
                if (!_entries.ContainsKey(name))
                    yield return new SearchSpaceProblem(key, $"sample_from refers to unknown key '{name}'");
        var inReportedCycle = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in functions.Keys)
        {
            if (inReportedCycle.Contains(key)) continue;
            var cycle = PathBack(key, key, functions, new HashSet<string>(StringComparer.Ordinal));
            if (cycle is null) continue;
            cycle.Insert(0, key);
            inReportedCycle.UnionWith(cycle);
            yield return new SearchSpaceProblem(key, $"sample_from has a dependency cycle: {string.Join(" -> ", cycle)}");
        }
    }

    /// <summary>A path of sample_from dependencies from <paramref name="from"/> to <paramref name="target"/> (excluding <paramref name="from"/>), or null.</summary>
    private static List<string>? PathBack(string from, string target, Dictionary<string, FunctionDomain> functions, HashSet<string> seen)
    {
        foreach (var dep in functions[from].DependsOn)
        {
            if (dep == target) return new List<string> { dep };
            if (!functions.ContainsKey(dep) || !seen.Add(dep)) continue;
            var rest = PathBack(dep, target, functions, seen);
            if (rest is null) continue;
            rest.Insert(0, dep);
            return rest;
        }
        return null;
    }
}
