using System.Text.Json.Nodes;
using TorchTrials.Runner.Search;

namespace TorchTrials.Tests.Search.Space;

/// <summary>A bad space is refused with a one-line message naming the key and what is wrong, one scenario per kind of mistake.</summary>
public class SearchSpaceValidationTests
{
    private static SearchSpaceException Refused(string key, Domain domain) =>
        Assert.Throws<SearchSpaceException>(() => new SearchSpace { [key] = domain });

    private static void AssertNames(SearchSpaceException e, string key, string what)
    {
        Assert.StartsWith($"search space: {key}: ", e.Message);
        Assert.Contains(what, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(key, Assert.Single(e.Problems).Key);
    }

    [Fact]
    public void Low_not_below_high_is_refused() => AssertNames(Refused("lr", Domain.Uniform(1, 1)), "lr", "low (1) must be below high (1)");

    [Fact]
    public void Randint_with_equal_bounds_is_refused_because_high_is_exclusive() =>
        AssertNames(Refused("layers", Domain.RandInt(3, 3)), "layers", "high is exclusive");

    [Fact]
    public void Non_positive_log_bounds_are_refused()
    {
        AssertNames(Refused("lr", Domain.LogUniform(0, 1)), "lr", "bounds must be positive");
        AssertNames(Refused("n", Domain.LogRandInt(-1, 10)), "n", "bounds must be positive");
    }

    [Fact]
    public void A_non_positive_q_is_refused()
    {
        AssertNames(Refused("x", Domain.QUniform(0, 1, 0)), "x", "q must be positive");
        AssertNames(Refused("n", Domain.QRandInt(0, 10, -2)), "n", "q must be positive");
    }

    [Fact]
    public void Quantized_float_bounds_must_be_multiples_of_q() =>
        AssertNames(Refused("x", Domain.QUniform(0.1, 1, 0.25)), "x", "low 0.1 is not a multiple of q 0.25");

    [Fact]
    public void An_empty_choice_is_refused() => AssertNames(Refused("act", Domain.Choice()), "act", "at least one value");

    [Fact]
    public void A_non_positive_sd_is_refused() => AssertNames(Refused("noise", Domain.RandN(0, 0)), "noise", "sd must be positive");

    [Fact]
    public void A_bad_log_base_is_refused() => AssertNames(Refused("lr", Domain.LogUniform(1e-3, 1, logBase: 1)), "lr", "base must be positive and not 1");

    [Fact]
    public void Infinite_bounds_are_refused() => AssertNames(Refused("x", Domain.Uniform(0, double.PositiveInfinity)), "x", "finite");

    [Fact]
    public void A_sample_from_expression_that_does_not_parse_is_refused() =>
        AssertNames(Refused("y", Domain.SampleFrom("2 * (width")), "y", "not valid");

    [Fact]
    public void A_sample_from_reading_an_unknown_key_is_refused_when_validated()
    {
        var space = new SearchSpace { ["y"] = Domain.SampleFrom("2 * widht"), ["width"] = Domain.RandInt(1, 4) };
        var e = Assert.Throws<SearchSpaceException>(() => space.Validate());
        AssertNames(e, "y", "unknown key 'widht'");
    }

    [Fact]
    public void A_sample_from_cycle_is_refused_naming_the_keys_on_it()
    {
        var space = new SearchSpace { ["a"] = Domain.SampleFrom("b + 1"), ["b"] = Domain.SampleFrom("a * 2"), ["c"] = Domain.SampleFrom("a") };
        var e = Assert.Throws<SearchSpaceException>(() => space.Validate());
        var problem = Assert.Single(e.Problems);
        Assert.Equal("a", problem.Key);
        Assert.Contains("cycle: a -> b -> a", problem.Message);
    }

    [Fact]
    public void A_constant_of_an_unsupported_type_is_refused() =>
        Assert.Contains("x", Assert.Throws<SearchSpaceException>(() => new SearchSpace { ["x"] = new object() }).Message);

    [Fact]
    public void An_unknown_spec_keyword_is_refused_naming_the_key_and_the_keyword()
    {
        var e = Assert.Throws<SearchSpaceException>(() => SearchSpace.FromSpec(JsonNode.Parse("""{"lr": {"unifrom": [0, 1]}}""")!.AsObject()));
        AssertNames(e, "lr", "unknown spec keyword 'unifrom'");
    }
}
