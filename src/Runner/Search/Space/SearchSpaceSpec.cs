using System.Text.Json;
using System.Text.Json.Nodes;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>The parser behind <see cref="SearchSpace.FromSpec"/>: reads every entry and reports every problem at once.</summary>
internal static class SearchSpaceSpec
{
    private static readonly string[] Keywords =
    {
        "uniform", "loguniform", "quniform", "qloguniform", "randint", "qrandint", "lograndint", "qlograndint",
        "randn", "qrandn", "choice", "grid", "sample_from",
    };

    public static SearchSpace Parse(JsonObject spec)
    {
        var space = new SearchSpace();
        var problems = new List<SearchSpaceProblem>();
        foreach (var (key, node) in spec)
        {
            var errors = new List<string>();
            object? entry = node is JsonObject obj ? ParseDomain(obj, errors) : TrialConfig.FromNode(node);
            if (errors.Count > 0)
            {
                problems.AddRange(errors.Select(e => new SearchSpaceProblem(key, e)));
                continue;
            }
            var found = SearchSpace.Check(key, entry).ToList();
            problems.AddRange(found);
            if (found.Count == 0) space.Set(key, entry);
        }
        problems.AddRange(space.DependencyProblems());
        if (problems.Count > 0) throw new SearchSpaceException(problems);
        return space;
    }

    private static Domain? ParseDomain(JsonObject obj, List<string> errors)
    {
        if (obj.Count != 1)
        {
            errors.Add($"an object entry must have exactly one keyword ({string.Join(", ", Keywords)}), got {(obj.Count == 0 ? "none" : string.Join(", ", obj.Select(kv => kv.Key)))}");
            return null;
        }
        var (keyword, args) = obj.First();
        switch (keyword)
        {
            case "choice":
            case "grid":
                if (args is not JsonArray values)
                {
                    errors.Add($"{keyword} expects a list of values");
                    return null;
                }
                var items = values.Select(TrialConfig.FromNode).ToArray();
                return keyword == "grid" ? Domain.Grid(items) : Domain.Choice(items);
            case "sample_from":
                if (args is JsonValue v && v.GetValueKind() == JsonValueKind.String) return Domain.SampleFrom(v.GetValue<string>());
                errors.Add("sample_from expects an expression string, for example \"2 * width\"");
                return null;
        }
        var (min, max, form) = keyword switch
        {
            "uniform" => (2, 2, "[low, high]"),
            "loguniform" => (2, 3, "[low, high] or [low, high, base]"),
            "quniform" => (3, 3, "[low, high, q]"),
            "qloguniform" => (3, 4, "[low, high, q] or [low, high, q, base]"),
            "randint" => (2, 2, "[low, high]"),
            "qrandint" => (2, 3, "[low, high] or [low, high, q]"),
            "lograndint" => (2, 3, "[low, high] or [low, high, base]"),
            "qlograndint" => (3, 4, "[low, high, q] or [low, high, q, base]"),
            "randn" => (0, 2, "[], [mean] or [mean, sd]"),
            "qrandn" => (3, 3, "[mean, sd, q]"),
            _ => (-1, -1, ""),
        };
        if (min < 0)
        {
            errors.Add($"unknown spec keyword '{keyword}'{DidYouMean.Suggest(keyword, Keywords)} (expected one of {string.Join(", ", Keywords)})");
            return null;
        }
        if (args is not JsonArray array || array.Count < min || array.Count > max)
        {
            int got = args is JsonArray a ? a.Count : -1;
            errors.Add($"{keyword} expects {form}, got {(got < 0 ? "something that is not a list" : $"{got} value(s)")}");
            return null;
        }
        var numbers = new double[array.Count];
        for (int i = 0; i < array.Count; i++)
        {
            if (!ConfigValues.TryGetNumber(TrialConfig.FromNode(array[i]), out numbers[i]))
                errors.Add($"{keyword} expects numbers, got '{array[i]?.ToJsonString() ?? "null"}' at position {i + 1}");
        }
        if (errors.Count > 0) return null;
        bool integral = keyword is "randint" or "qrandint" or "lograndint" or "qlograndint";
        int integralCount = keyword is "randint" or "lograndint" ? 2 : keyword == "qrandint" ? array.Count : 3;
        if (integral)
        {
            for (int i = 0; i < integralCount; i++)
                if (numbers[i] != Math.Floor(numbers[i]) || Math.Abs(numbers[i]) > 9e15)
                    errors.Add($"{keyword} expects whole numbers, got {ConfigValues.Num(numbers[i])} at position {i + 1}");
            if (errors.Count > 0) return null;
        }
        double At(int i, double fallback) => i < numbers.Length ? numbers[i] : fallback;
        long L(int i) => (long)numbers[i];
        return keyword switch
        {
            "uniform" => Domain.Uniform(numbers[0], numbers[1]),
            "loguniform" => Domain.LogUniform(numbers[0], numbers[1], At(2, 10)),
            "quniform" => Domain.QUniform(numbers[0], numbers[1], numbers[2]),
            "qloguniform" => Domain.QLogUniform(numbers[0], numbers[1], numbers[2], At(3, 10)),
            "randint" => Domain.RandInt(L(0), L(1)),
            "qrandint" => Domain.QRandInt(L(0), L(1), numbers.Length > 2 ? L(2) : 1),
            "lograndint" => Domain.LogRandInt(L(0), L(1), At(2, 10)),
            "qlograndint" => Domain.QLogRandInt(L(0), L(1), L(2), At(3, 10)),
            "randn" => Domain.RandN(At(0, 0), At(1, 1)),
            _ => Domain.QRandN(numbers[0], numbers[1], numbers[2]),
        };
    }
}
