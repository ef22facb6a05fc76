using System.Collections.Immutable;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Search.Space;

/// <summary>Every searchable domain maps its values to [0, 1] and back, in its natural scale, keeping quantization and integrality.</summary>
public class DomainUnitMappingTests
{
    private static readonly double[] Grid = Enumerable.Range(0, 1001).Select(i => i / 1000.0).Append(0.9999999).ToArray();

    [Fact]
    public void Uniform_maps_linearly_and_round_trips()
    {
        var d = Domain.Uniform(-5, 10);
        Assert.Equal(0.0, d.ToUnit(-5.0), 12);
        Assert.Equal(1.0 / 3, d.ToUnit(0.0), 12);
        Assert.Equal(2.5, (double)d.FromUnit(0.5)!, 12);
        foreach (var u in Grid) Assert.Equal(u, d.ToUnit(d.FromUnit(u)), 9);
    }

    [Fact]
    public void LogUniform_maps_in_log_scale_whatever_the_base()
    {
        var d = Domain.LogUniform(1e-4, 1e-1);
        Assert.Equal(1e-4, (double)d.FromUnit(0)!, 15);
        Assert.Equal(1e-3, (double)d.FromUnit(1.0 / 3)!, 12);
        Assert.Equal(2.0 / 3, d.ToUnit(1e-2), 12);
        var base2 = Domain.LogUniform(1e-4, 1e-1, logBase: 2);
        Assert.Equal(d.ToUnit(0.005), base2.ToUnit(0.005), 12);
        foreach (var u in Grid)
        {
            var v = (double)d.FromUnit(u)!;
            Assert.InRange(v, 1e-4, 1e-1);
            Assert.Equal(u, d.ToUnit(v), 9);
        }
    }

    [Fact]
    public void QUniform_gives_every_multiple_an_equal_cell_with_both_ends_included()
    {
        var d = Domain.QUniform(0, 1, 0.25);
        Assert.Equal(5, d.Cells);
        var seen = Grid.Select(u => (double)d.FromUnit(u)!).Distinct().Order().ToArray();
        Assert.Equal(new[] { 0.0, 0.25, 0.5, 0.75, 1.0 }, seen);
        Assert.Equal(0.5, d.ToUnit(0.5), 12);
        Assert.Equal(0.1, d.ToUnit(0.0), 12);
        Assert.Equal(0.9, d.ToUnit(1.0), 12);
        Assert.Equal(0.3, (double)Domain.QUniform(0, 1, 0.1).FromUnit(0.35)!);
    }

    [Fact]
    public void RandInt_excludes_the_upper_bound_and_spreads_values_evenly()
    {
        var d = Domain.RandInt(0, 4);
        var counts = Grid.Take(1000).GroupBy(u => (long)d.FromUnit(u)!).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new long[] { 0, 1, 2, 3 }, counts.Keys.Order());
        Assert.All(counts.Values, c => Assert.Equal(250, c));
        Assert.Equal(0.125, d.ToUnit(0L));
        Assert.Equal(0.875, d.ToUnit(3L));
    }

    [Fact]
    public void QRandInt_includes_the_upper_bound_and_keeps_multiples_of_q()
    {
        var d = Domain.QRandInt(1, 10, 3);
        var values = Grid.Select(u => (long)d.FromUnit(u)!).Distinct().Order().ToArray();
        Assert.Equal(new long[] { 3, 6, 9 }, values);
        Assert.Equal(new long[] { 0, 5, 10 }, Grid.Select(u => (long)Domain.QRandInt(0, 10, 5).FromUnit(u)!).Distinct().Order());
        Assert.True(d.IsValid(6L));
        Assert.False(d.IsValid(7L));
    }

    [Fact]
    public void LogRandInt_rounds_a_log_uniform_draw_over_cells_widened_by_half_a_step()
    {
        var d = Domain.LogRandInt(1, 100);
        var values = Grid.Select(u => (long)d.FromUnit(u)!).ToArray();
        Assert.Equal(1, values.Min());
        Assert.Equal(99, values.Max());
        Assert.Equal(Math.Log(2) / (Math.Log(99.5) - Math.Log(0.5)), d.ToUnit(1L), 12);
        Assert.Equal((Math.Log(10) - Math.Log(0.5)) / (Math.Log(99.5) - Math.Log(0.5)), d.ToUnit(10L), 12);
        foreach (var v in new long[] { 1, 2, 3, 10, 50, 99 }) Assert.Equal(v, (long)d.FromUnit(d.ToUnit(v))!);
        int small = values.Count(v => v < 10), large = values.Count(v => v >= 10);
        Assert.True(small > large / 2, "a log domain spends comparable room on each decade");
    }

    [Fact]
    public void QLogRandInt_and_QLogUniform_stay_on_multiples_of_q()
    {
        var i = Domain.QLogRandInt(10, 1000, 10);
        Assert.All(Grid, u => Assert.Equal(0, (long)i.FromUnit(u)! % 10));
        Assert.Equal(10L, i.FromUnit(0));
        Assert.Equal(1000L, i.FromUnit(1));
        var f = Domain.QLogUniform(0.01, 1, 0.01);
        Assert.All(Grid, u =>
        {
            var v = (double)f.FromUnit(u)!;
            Assert.InRange(v, 0.01, 1);
            Assert.Equal(Math.Round(v / 0.01), v / 0.01, 9);
        });
        foreach (var v in new[] { 0.01, 0.05, 0.37, 1.0 }) Assert.Equal(v, (double)f.FromUnit(f.ToUnit(v))!, 12);
    }

    [Fact]
    public void RandN_maps_through_the_normal_cdf()
    {
        var d = Domain.RandN(3, 2);
        Assert.Equal(3.0, (double)d.FromUnit(0.5)!, 9);
        Assert.Equal(3 + 2 * 1.959963984540054, (double)d.FromUnit(0.975)!, 7);
        Assert.Equal(0.8413447460685429, d.ToUnit(5.0), 9);
        Assert.True(double.IsFinite((double)d.FromUnit(0)!));
        Assert.Equal(0.5, (double)Domain.QRandN(0, 1, 0.5).FromUnit(0.7)!);
    }

    [Fact]
    public void Choice_maps_index_i_to_the_centre_of_its_cell()
    {
        var d = Domain.Choice("relu", 64, new[] { 1, 2 }, null);
        Assert.Equal(0.125, d.ToUnit("relu"));
        Assert.Equal(0.375, d.ToUnit(64L));
        Assert.Equal(0.625, d.ToUnit(ImmutableArray.Create<object?>(1L, 2L)));
        Assert.Equal(0.875, d.ToUnit(null));
        Assert.Equal("relu", d.FromUnit(0.0));
        Assert.Null(d.FromUnit(0.99));
        var e = Assert.Throws<ArgumentException>(() => d.ToUnit("tanh"));
        Assert.Contains("tanh", e.Message);
    }

    [Fact]
    public void A_collection_is_one_choice_unless_given_to_ChoiceOf()
    {
        var widths = new List<int> { 64, 128, 256 };
        Assert.Equal(3, Domain.ChoiceOf(widths).Values.Length);
        Assert.Single(Domain.Choice(widths).Values);
        Assert.True(Domain.GridOf(widths).IsGrid);
    }

    [Fact]
    public void Sampling_a_unit_domain_is_mapping_a_uniform_draw()
    {
        var d = Domain.Uniform(2, 3);
        var a = new SearchRandom(7);
        var b = new SearchRandom(7);
        for (int i = 0; i < 100; i++) Assert.Equal(d.FromUnit(b.NextDouble()), d.Sample(a));
    }

    [Fact]
    public void Values_outside_the_unit_interval_are_clamped()
    {
        Assert.Equal(10.0, (double)Domain.Uniform(0, 10).FromUnit(1.5)!);
        Assert.Equal(0L, Domain.RandInt(0, 3).FromUnit(-1));
        Assert.Equal(1.0, Domain.Uniform(0, 10).ToUnit(25.0));
    }

    [Fact]
    public void A_constant_is_not_a_domain_and_TrialConfig_values_come_back_normalised()
    {
        var space = new SearchSpace { ["epochs"] = 10, ["name"] = "mlp" };
        Assert.Equal(TrialConfig.From(("epochs", 10L), ("name", "mlp")), space.Constants);
        Assert.Empty(space.SearchDimensions);
    }
}
