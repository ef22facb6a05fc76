using System.Globalization;
using System.Text.Json.Nodes;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Report;

/// <summary>
/// The search space's dimensions as <see cref="ParamDomain"/>s: taken from a <see cref="SearchSpace"/> (and PBT's
/// hyperparam_mutations), saved in the experiment state under <see cref="StateKey"/> at run start, read back, or inferred
/// from the sampled values when a run saved none (numbers make a range, log when all are positive and span a factor of
/// 100 or more; anything else is categorical).
/// </summary>
public static class ParamDomains
{
    /// <summary>The experiment state's key for the saved domains.</summary>
    public const string StateKey = "param_domains";

    /// <summary>The searched dimensions of <paramref name="space"/>, then PBT's mutated keys that the space does not hold.</summary>
    public static IReadOnlyList<ParamDomain> From(SearchSpace space, ITrialScheduler? scheduler = null)
    {
        var list = new List<ParamDomain>();
        foreach (var (key, domain) in space.SearchDimensions)
        {
            if (Of(key, domain) is { } d) list.Add(d);
        }
        if (scheduler is PopulationBasedTraining pbt)
            AddMutations(list, "", pbt.Options.HyperparamMutations);
        return list;
    }

    private static void AddMutations(List<ParamDomain> list, string prefix, IReadOnlyDictionary<string, PbtMutation> mutations)
    {
        foreach (var (key, mutation) in mutations)
        {
            var name = prefix + key;
            if (mutation is NestedMutation nested)
            {
                AddMutations(list, name + "/", nested.Mutations);
                continue;
            }
            if (list.Any(d => d.Name == name)) continue;
            switch (mutation)
            {
                case CategoricalMutation c:
                    list.Add(new ParamDomain(name, ParamKind.Categorical) { Categories = c.Values });
                    break;
                case ContinuousMutation { Bounds: var (low, high) } m:
                    list.Add(new ParamDomain(name, m.Description.StartsWith("randint", StringComparison.Ordinal) ? ParamKind.Integer : ParamKind.Float)
                    {
                        Low = low,
                        High = high,
                        Log = m.Description.StartsWith("log", StringComparison.Ordinal),
                    });
                    break;
            }
        }
    }

    private static ParamDomain? Of(string key, UnitDomain domain) => domain switch
    {
        FloatDomain f => new ParamDomain(key, ParamKind.Float) { Low = f.Low, High = f.High, Log = f.IsLog },
        IntegerDomain i => new ParamDomain(key, ParamKind.Integer) { Low = i.Low, High = i.High, Log = i.IsLog },
        NormalDomain n => new ParamDomain(key, ParamKind.Float) { Low = n.Mean - 3 * n.Sd, High = n.Mean + 3 * n.Sd },
        CategoricalDomain c => new ParamDomain(key, ParamKind.Categorical) { Categories = c.Values },
        _ => null,
    };

    /// <summary>The domains as the JSON array saved under <see cref="StateKey"/>.</summary>
    public static JsonArray ToJson(IEnumerable<ParamDomain> domains)
    {
        var array = new JsonArray();
        foreach (var d in domains)
        {
            var o = new JsonObject { ["name"] = d.Name, ["kind"] = d.Kind.ToString().ToLowerInvariant() };
            if (d.Kind == ParamKind.Categorical)
            {
                o["categories"] = new JsonArray(d.Categories.Select(TrialConfig.ToNode).ToArray());
            }
            else
            {
                o["low"] = d.Low;
                o["high"] = d.High;
                o["log"] = d.Log;
            }
            array.Add(o);
        }
        return array;
    }

    /// <summary>Domains read from <see cref="ToJson"/>'s array; entries it cannot read are skipped.</summary>
    public static IReadOnlyList<ParamDomain> FromJson(JsonNode? node)
    {
        var list = new List<ParamDomain>();
        if (node is not JsonArray array) return list;
        foreach (var item in array.OfType<JsonObject>())
        {
            if (item["name"]?.GetValue<string>() is not { } name
                || !Enum.TryParse<ParamKind>(item["kind"]?.GetValue<string>(), ignoreCase: true, out var kind)) continue;
            list.Add(kind == ParamKind.Categorical
                ? new ParamDomain(name, kind) { Categories = (item["categories"] as JsonArray)?.Select(TrialConfig.FromNode).ToList() ?? [] }
                : new ParamDomain(name, kind)
                {
                    Low = item["low"]?.GetValue<double>() ?? 0,
                    High = item["high"]?.GetValue<double>() ?? 0,
                    Log = item["log"]?.GetValue<bool>() ?? false,
                });
        }
        return list;
    }

    /// <summary>Domains guessed from the trials' sampled values, for the keys that vary, in first-seen order.</summary>
    public static IReadOnlyList<ParamDomain> Infer(IEnumerable<IReadOnlyDictionary<string, object?>> samples)
    {
        var values = new Dictionary<string, List<object?>>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var sample in samples)
        {
            foreach (var (key, value) in sample)
            {
                if (!values.TryGetValue(key, out var list))
                {
                    values[key] = list = new List<object?>();
                    order.Add(key);
                }
                list.Add(value);
            }
        }
        var domains = new List<ParamDomain>();
        foreach (var key in order)
        {
            var list = values[key];
            if (list.All(v => v is long or int or double or float))
            {
                var numbers = list.Select(v => Convert.ToDouble(v, CultureInfo.InvariantCulture)).ToList();
                double low = numbers.Min(), high = numbers.Max();
                bool log = low > 0 && high / low >= 100;
                domains.Add(new ParamDomain(key, list.All(v => v is long or int) ? ParamKind.Integer : ParamKind.Float) { Low = low, High = high, Log = log });
            }
            else
            {
                var categories = new List<object?>();
                foreach (var v in list)
                    if (!categories.Any(c => Equals(c, v))) categories.Add(v);
                domains.Add(new ParamDomain(key, ParamKind.Categorical) { Categories = categories });
            }
        }
        return domains;
    }
}
