using System.Collections.Immutable;
using System.Text.Json.Nodes;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Search.Space;

/// <summary>A sweep spec's search space (what the CLI's YAML becomes) parses into the same domains as the C# API, and every problem is reported at once.</summary>
public class SearchSpaceSpecTests
{
    private static JsonObject Spec(string json) => JsonNode.Parse(json)!.AsObject();

    [Fact]
    public void Every_keyword_parses_into_its_domain()
    {
        var space = SearchSpace.FromSpec(Spec("""
            {
              "epochs": 10,
              "layers": [64, 64],
              "a": {"uniform": [0, 1]},
              "b": {"loguniform": [1e-4, 1e-1, 2]},
              "c": {"quniform": [0, 1, 0.25]},
              "d": {"qloguniform": [0.01, 1, 0.01]},
              "e": {"randint": [0, 4]},
              "f": {"qrandint": [0, 10, 5]},
              "g": {"lograndint": [1, 100]},
              "h": {"qlograndint": [10, 1000, 10]},
              "i": {"randn": [0, 2]},
              "j": {"qrandn": [0, 1, 0.5]},
              "k": {"choice": ["relu", "tanh", 3]},
              "l": {"grid": [1, 2, 3]},
              "m": {"sample_from": "2 * e + 1"}
            }
            """));
        Assert.True(TrialConfig.From(("epochs", 10L), ("layers", ImmutableArray.Create<object?>(64L, 64L))).Equals(space.Constants), space.Constants.ToString());
        Assert.Equal("uniform", ((Domain)space["a"]!).Kind);
        var b = Assert.IsType<FloatDomain>(space["b"]);
        Assert.Equal((1e-4, 1e-1, 2.0, true), (b.Low, b.High, b.LogBase, b.IsLog));
        Assert.Equal(0.25, Assert.IsType<FloatDomain>(space["c"]).Q);
        Assert.Equal("qloguniform", ((Domain)space["d"]!).Kind);
        var e = Assert.IsType<IntegerDomain>(space["e"]);
        Assert.Equal((0L, 3L), (e.First, e.Last));
        Assert.Equal((0L, 10L), (Assert.IsType<IntegerDomain>(space["f"]).First, Assert.IsType<IntegerDomain>(space["f"]).Last));
        Assert.Equal(99L, Assert.IsType<IntegerDomain>(space["g"]).Last);
        Assert.Equal("qlograndint", ((Domain)space["h"]!).Kind);
        Assert.Equal(2.0, Assert.IsType<NormalDomain>(space["i"]).Sd);
        Assert.Equal(0.5, Assert.IsType<NormalDomain>(space["j"]).Q);
        Assert.Equal(3, Assert.IsType<CategoricalDomain>(space["k"]).Values.Length);
        Assert.True(Assert.IsType<CategoricalDomain>(space["l"]).IsGrid);
        Assert.Equal("2 * e + 1", Assert.IsType<FunctionDomain>(space["m"]).ExpressionText);
    }

    [Fact]
    public void Every_problem_is_collected_into_one_exception_naming_each_key()
    {
        var e = Assert.Throws<SearchSpaceException>(() => SearchSpace.FromSpec(Spec("""
            {
              "ok": {"uniform": [0, 1]},
              "lr": {"loguniform": [0, 1]},
              "width": {"choice": []},
              "n": {"randint": [1.5, 4]},
              "x": {"uniform": [0]},
              "y": {"uniform": [0, 1], "choice": [1]},
              "z": {"bogus": 1},
              "w": {"sample_from": "missing + 1"},
              "s": {"randn": [0, -1]},
              "q": {"quniform": [0, 1, "a"]}
            }
            """)));
        var keys = e.Problems.Select(p => p.Key).ToArray();
        Assert.Equal(new[] { "lr", "width", "n", "x", "y", "z", "s", "q", "w" }, keys);
        Assert.StartsWith("search space has 9 problems: lr: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("x: uniform expects [low, high], got 1 value(s)", e.Message);
        Assert.Contains("n: randint expects whole numbers, got 1.5", e.Message);
        Assert.Contains("y: an object entry must have exactly one keyword", e.Message);
        Assert.Contains("w: sample_from refers to unknown key 'missing'", e.Message);
        Assert.Contains("q: quniform expects numbers", e.Message);
    }

    [Fact]
    public void Defaults_follow_Ray_randn_is_standard_and_qrandint_q_is_one()
    {
        var space = SearchSpace.FromSpec(Spec("""{"r": {"randn": []}, "n": {"qrandint": [1, 3]}}"""));
        var r = Assert.IsType<NormalDomain>(space["r"]);
        Assert.Equal((0.0, 1.0), (r.Mean, r.Sd));
        Assert.Equal(3L, Assert.IsType<IntegerDomain>(space["n"]).Last);
    }
}
