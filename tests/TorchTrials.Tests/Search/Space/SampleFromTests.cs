using TorchTrials.Runner.Search;

namespace TorchTrials.Tests.Search.Space;

/// <summary>sample_from values are computed from the other values, after what they read, whatever the declaration order.</summary>
public class SampleFromTests
{
    private static Dictionary<string, object?> Values(params (string, object?)[] pairs) => pairs.ToDictionary(p => p.Item1, p => p.Item2);

    [Fact]
    public void Expressions_are_evaluated_after_their_dependencies_even_when_declared_first()
    {
        var space = new SearchSpace
        {
            ["total"] = Domain.SampleFrom("hidden * layers"),
            ["hidden"] = Domain.SampleFrom("2 ^ depth"),
            ["depth"] = Domain.RandInt(1, 5),
            ["layers"] = 3,
        }.Validate();
        var config = space.Resolve(Values(("depth", 4L)));
        Assert.Equal(16L, config["hidden"]);
        Assert.Equal(48L, config["total"]);
        Assert.Equal(new[] { "total", "hidden", "depth", "layers" }, config.Keys);
    }

    [Theory]
    [InlineData("1 + 2 * 3", 7L)]
    [InlineData("(1 + 2) * 3", 9L)]
    [InlineData("7 / 2", 3.5)]
    [InlineData("-2 ^ 2", -4L)]
    [InlineData("2 ^ 3 ^ 2", 512L)]
    [InlineData("2 ^ -1", 0.5)]
    [InlineData("min(3, x, 9)", 2.5)]
    [InlineData("max(1, 2)", 2L)]
    [InlineData("round(2.5)", 2L)]
    [InlineData("round(x * 3)", 8L)]
    [InlineData("floor(-x)", -3L)]
    [InlineData("ceil(x)", 3L)]
    [InlineData("int(-x)", -2L)]
    [InlineData("sqrt(16)", 4.0)]
    [InlineData("pow(2, 10)", 1024L)]
    [InlineData("log10(1000)", 3.0)]
    [InlineData("log(8, 2)", 3.0)]
    [InlineData("exp(0)", 1.0)]
    [InlineData("1e-3 * 2", 0.002)]
    public void Arithmetic_follows_Python_rules(string expression, object expected)
    {
        var space = new SearchSpace { ["x"] = 2.5, ["y"] = Domain.SampleFrom(expression) }.Validate();
        var value = space.Resolve(Values())["y"];
        Assert.IsType(expected.GetType(), value);
        if (expected is double d) Assert.Equal(d, (double)value!, 12);
        else Assert.Equal(expected, value);
    }

    [Fact]
    public void A_CSharp_function_reads_the_resolved_config()
    {
        var space = new SearchSpace
        {
            ["b"] = Domain.SampleFrom(c => c.GetLong("a") * 10),
            ["a"] = Domain.RandInt(1, 3),
        }.Validate();
        Assert.Equal(20L, space.Resolve(Values(("a", 2L)))["b"]);
    }

    [Fact]
    public void Functions_that_read_each_other_are_an_error_naming_them()
    {
        var space = new SearchSpace
        {
            ["p"] = Domain.SampleFrom(c => c.GetLong("q")),
            ["q"] = Domain.SampleFrom(c => c.GetLong("p")),
        };
        var e = Assert.Throws<SearchSpaceException>(() => space.Resolve(Values()));
        Assert.Equal(new[] { "p", "q" }, e.Problems.Select(p => p.Key));
        Assert.Contains("could not be resolved", e.Message);
    }

    [Fact]
    public void A_failing_expression_names_its_key()
    {
        var space = new SearchSpace { ["a"] = Domain.RandInt(0, 2), ["b"] = Domain.SampleFrom("1 / a") }.Validate();
        var e = Assert.Throws<SearchSpaceException>(() => space.Resolve(Values(("a", 0L))));
        Assert.Equal("search space: b: sample_from failed: division by zero", e.Message);
    }

    [Fact]
    public void A_string_value_in_arithmetic_is_an_error_naming_both_keys()
    {
        var space = new SearchSpace { ["act"] = Domain.Choice("relu"), ["b"] = Domain.SampleFrom("act + 1") }.Validate();
        var e = Assert.Throws<SearchSpaceException>(() => space.Resolve(Values(("act", "relu"))));
        Assert.Contains("b: sample_from failed: 'act' must be a number", e.Message);
    }
}
