using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using static TorchTrials.Tests.Search.SearchTestKit;

namespace TorchTrials.Tests.Search.Tpe;

/// <summary>
/// The pieces of Optuna 3.1.0's TPE, pinned on small inputs. The expected numbers were computed by hand from the formulas
/// and checked against Debian's python3-optuna 3.1.0 (<c>_ParzenEstimator(...).log_pdf</c>, <c>default_gamma</c>, <c>default_weights</c>).
/// </summary>
public class TpeRulesTests
{
    private static readonly TpeOptions Defaults = new();

    [Theory]
    [InlineData(10, 1)]
    [InlineData(11, 2)]
    [InlineData(20, 2)]
    [InlineData(29, 3)]
    [InlineData(30, 3)]
    [InlineData(31, 4)]
    [InlineData(100, 10)]
    [InlineData(240, 24)]
    [InlineData(250, 25)]
    [InlineData(1000, 25)]
    public void Gamma_is_min_of_ceil_a_tenth_and_25(int n, int expected) => Assert.Equal(expected, TpeOptions.DefaultGamma(n));

    [Fact]
    public void Weights_are_ones_below_25_then_a_ramp_for_the_oldest_and_25_ones_for_the_newest()
    {
        Assert.Equal(Enumerable.Repeat(1.0, 24), TpeOptions.DefaultWeights(24));
        Assert.Equal(Enumerable.Repeat(1.0, 25), TpeOptions.DefaultWeights(25));
        var w27 = TpeOptions.DefaultWeights(27);
        Assert.Equal(1.0 / 27, w27[0], 15);
        Assert.Equal(Enumerable.Repeat(1.0, 26), w27.Skip(1));
        var w30 = TpeOptions.DefaultWeights(30);
        Assert.Equal(new[] { 1.0 / 30, 1.0 / 30 + 0.241666666666666667, 1.0 / 30 + 2 * 0.241666666666666667, 1.0 / 30 + 3 * 0.241666666666666667, 1.0 }, w30.Take(5).ToArray(), new Tolerance(1e-15));
        Assert.Equal(Enumerable.Repeat(1.0, 25), w30.Skip(5));
        Assert.Empty(TpeOptions.DefaultWeights(0));
    }

    [Fact]
    public void Univariate_bandwidths_are_neighbour_distances_with_the_prior_in_the_sorted_centres()
    {
        var pe = Build(KernelKind.Continuous, 0, new[] { 0.1, 0.5, 0.52, 0.9 });

        Assert.Equal(new[] { 0.1, 0.5, 0.52, 0.9, 0.5 }, pe.Mus(0).ToArray());
        Assert.Equal(new[] { 0.4, 0.4, 0.38, 0.38, 1.0 }, pe.Sigmas(0).ToArray(), new Tolerance(1e-15));
        Assert.Equal(Enumerable.Repeat(0.2, 5), pe.Weights.ToArray());
        Assert.Equal(new[] { -0.8352043723741998, -0.6248765745877436, -0.5665367089913591, -0.8669953381979525 },
            pe.LogPdf(new[] { new[] { 0.05, 0.3, 0.51, 0.99 } }), new Tolerance(1e-12));
    }

    [Fact]
    public void Magic_clip_keeps_kernels_at_least_a_32nd_wide_with_30_observations_and_the_prior_and_old_ones_weigh_less()
    {
        var pe = Build(KernelKind.Continuous, 0, Thirty);

        Assert.All(pe.Sigmas(0).ToArray(), s => Assert.True(s >= 1.0 / 32 - 1e-15));
        Assert.Contains(1.0 / 32, pe.Sigmas(0).ToArray());
        Assert.Equal(pe.Weights[29], pe.Weights[5]);
        Assert.True(pe.Weights[0] < pe.Weights[4]);
        Assert.Equal(new[] { -2.7212082350529947, -2.6783421926042585 }, pe.LogPdf(new[] { new[] { 0.2, 0.7 } }), new Tolerance(1e-12));
    }

    [Fact]
    public void The_sorted_build_used_for_g_of_x_equals_the_plain_one()
    {
        var weights = TpeOptions.DefaultWeights(30);
        var order = Enumerable.Range(0, 30).OrderBy(i => Thirty[i]).ToArray();
        var sorted = ParzenEstimator.Build(new[] { new KernelDimension(KernelKind.Continuous, 0) },
            new[] { order.Select(i => Thirty[i]).ToArray() }, order.Select(i => weights[i]).ToArray(), Defaults, sortedByFirstDimension: true);
        var plain = Build(KernelKind.Continuous, 0, Thirty);
        var points = new[] { new[] { 0.0, 0.2, 0.5, 0.7, 0.999 } };
        Assert.Equal(plain.LogPdf(points), sorted.LogPdf(points), new Tolerance(1e-13));
    }

    [Fact]
    public void Integers_use_the_discrete_mass_of_their_cell_with_bounds_widened_by_half_a_step()
    {
        var d = Domain.RandInt(0, 10);
        var pe = Build(KernelKind.Discrete, 10, new[] { 2L, 3L, 7L }.Select(v => d.ToUnit(v)).ToArray());

        Assert.Equal(new[] { 0.2, 0.2, 0.25, 1.0 }, pe.Sigmas(0).ToArray(), new Tolerance(1e-15));
        Assert.Equal(new[] { -2.5845750399143377, -1.9707054824198234, -2.8353675672183845 },
            pe.LogPdf(new[] { new[] { 0L, 3L, 9L }.Select(v => d.ToUnit(v)).ToArray() }), new Tolerance(1e-12));
    }

    [Fact]
    public void The_shortcut_for_one_discrete_dimension_gives_the_full_sum()
    {
        var random = new SearchRandom(3);
        var domain = Domain.RandInt(0, 1000);
        var values = Enumerable.Range(0, 300).Select(_ => domain.ToUnit((long)random.NextInt(1000))).ToArray();
        var weights = TpeOptions.DefaultWeights(300);
        var single = ParzenEstimator.Build(new[] { new KernelDimension(KernelKind.Discrete, 1000) }, new[] { values }, weights, Defaults);
        // A one-category dimension adds log 1 = 0 to every kernel, so this estimator is the same mixture, summed in full.
        var full = ParzenEstimator.Build(new[] { new KernelDimension(KernelKind.Discrete, 1000), new KernelDimension(KernelKind.Categorical, 1) },
            new[] { values, new double[300] }, weights, Defaults);
        var points = Enumerable.Range(0, 40).Select(_ => domain.ToUnit((long)random.NextInt(1000))).ToArray();
        Assert.Equal(full.LogPdf(new[] { points, new double[40] }), single.LogPdf(new[] { points }), new Tolerance(1e-12));
    }

    [Fact]
    public void Log_floats_are_modelled_in_log_space_through_the_unit_mapping()
    {
        var d = Domain.LogUniform(1e-4, 1e-1);
        var pe = Build(KernelKind.Continuous, 0, new[] { d.ToUnit(1e-3), d.ToUnit(2e-2) });
        Assert.Equal(new[] { -0.6282535296006561, -0.7388647438624857 },
            pe.LogPdf(new[] { new[] { d.ToUnit(1e-3), d.ToUnit(5e-2) } }), new Tolerance(1e-12));
    }

    [Fact]
    public void Categories_use_Optunas_categorical_kernel()
    {
        var pe = Build(KernelKind.Categorical, 3, new[] { 0.0, 2.0, 2.0 });
        Assert.Equal(new[] { -1.0986122886681098, -1.6582280766035324, -0.7419373447293772 },
            pe.LogPdf(new[] { new[] { 0.0, 1.0, 2.0 } }), new Tolerance(1e-12));
    }

    [Fact]
    public void Multivariate_bandwidths_follow_Scotts_rule_then_the_magic_clip()
    {
        var kinds = new[] { new KernelDimension(KernelKind.Continuous, 0), new KernelDimension(KernelKind.Continuous, 0) };
        var pe = ParzenEstimator.Build(kinds, new[] { new[] { 0.1, 0.5, 0.9 }, new[] { 0.2, 0.4, 0.8 } }, new[] { 1.0, 1.0, 1.0 },
            Defaults with { Multivariate = true });

        // Scott: 0.2 * 3^(-1/6) = 0.166, below the clip 1 / min(100, 1 + 4) = 0.2.
        Assert.Equal(new[] { 0.2, 0.2, 0.2, 1.0 }, pe.Sigmas(0).ToArray(), new Tolerance(1e-15));
        Assert.Equal(new[] { -1.1411439460438917, -1.2166922256126573 },
            pe.LogPdf(new[] { new[] { 0.3, 0.6 }, new[] { 0.3, 0.7 } }), new Tolerance(1e-12));
    }

    [Fact]
    public void Observations_are_ranked_as_Optunas_observation_pairs_and_split_by_gamma()
    {
        var tpe = Configured(new TpeSearcher(options: new TpeOptions { StartupTrials = 100, Seed = 1 }), Objectives.BraninSpace());
        for (int i = 0; i < 8; i++) tpe.Suggest($"t{i}");

        tpe.OnTrialComplete("t0", Loss(5), TrialOutcome.Completed);
        tpe.OnTrialResult("t1", Loss(3.0, 1));
        tpe.OnTrialResult("t1", Loss(2.0, 2));
        tpe.OnTrialComplete("t1", Loss(2.0, 2), TrialOutcome.Pruned);
        tpe.OnTrialComplete("t2", Loss(1), TrialOutcome.Completed);
        tpe.OnTrialComplete("t3", Loss(0.1), TrialOutcome.Errored);
        tpe.OnTrialResult("t4", Loss(0.5, 1));
        tpe.OnTrialComplete("t4", Loss(0.5, 1), TrialOutcome.Pruned);
        tpe.OnTrialComplete("t5", null, TrialOutcome.Pruned);
        tpe.OnTrialComplete("t6", Loss(double.NaN, 2), TrialOutcome.Pruned);

        // Completed by loss; then pruned, deepest step first, then by loss (NaN as +inf); a pruned trial without reports last.
        Assert.Equal(new[] { 2, 0, 1, 6, 4, 5 }, tpe.RankedObservations());
        Assert.Equal(6, tpe.ObservationCount);
        var (below, above) = tpe.Split();
        Assert.Equal(new[] { 2 }, below);
        Assert.Equal(new[] { 0, 1, 4, 5, 6 }, above);
    }

    [Fact]
    public void Maximising_ranks_the_largest_metric_first()
    {
        var tpe = new TpeSearcher(options: new TpeOptions { StartupTrials = 100, Seed = 1 });
        Assert.True(tpe.SetSearchProperties("acc", MetricMode.Max, Objectives.BraninSpace()));
        for (int i = 0; i < 3; i++) tpe.Suggest($"t{i}");
        tpe.OnTrialComplete("t0", Result("acc", 0.5), TrialOutcome.Completed);
        tpe.OnTrialComplete("t1", Result("acc", 0.9), TrialOutcome.Completed);
        tpe.OnTrialComplete("t2", Result("acc", 0.1), TrialOutcome.Completed);
        Assert.Equal(new[] { 1, 0, 2 }, tpe.RankedObservations());
    }

    [Fact]
    public void A_completed_trial_without_the_metric_is_ignored_like_a_failed_one()
    {
        var tpe = Configured(new TpeSearcher(options: new TpeOptions { Seed = 1 }), Objectives.BraninSpace());
        tpe.Suggest("t0");
        tpe.OnTrialComplete("t0", Result("other", 1), TrialOutcome.Completed);
        Assert.Equal(0, tpe.ObservationCount);
    }

    [Fact]
    public void With_constant_liar_running_trials_rank_last_and_count_in_g_but_not_in_n()
    {
        var tpe = Configured(new TpeSearcher(options: new TpeOptions { StartupTrials = 100, Seed = 1, ConstantLiar = true }), Objectives.BraninSpace());
        for (int i = 0; i < 3; i++) tpe.Suggest($"t{i}");
        tpe.OnTrialComplete("t1", Loss(1), TrialOutcome.Completed);
        Assert.Equal(1, tpe.ObservationCount);
        var (below, above) = tpe.Split();
        Assert.Equal(new[] { 1 }, below);
        Assert.Equal(new[] { 0, 2 }, above);
    }

    private static readonly double[] Thirty =
    {
        0.5488135039273248, 0.7151893663724195, 0.6027633760716439, 0.5448831829968969, 0.4236547993389047, 0.6458941130666561,
        0.4375872112626925, 0.8917730007820798, 0.9636627605010293, 0.3834415188257777, 0.7917250380826646, 0.5288949197529045,
        0.5680445610939323, 0.925596638292661, 0.07103605819788694, 0.08712929970154071, 0.02021839744032572, 0.832619845547938,
        0.7781567509498505, 0.8700121482468192, 0.978618342232764, 0.7991585642167236, 0.46147936225293185, 0.7805291762864555,
        0.11827442586893322, 0.6399210213275238, 0.1433532874090464, 0.9446689170495839, 0.5218483217500717, 0.4146619399905236,
    };

    private static ParzenEstimator Build(KernelKind kind, long cells, double[] values) =>
        ParzenEstimator.Build(new[] { new KernelDimension(kind, cells) }, new[] { values }, TpeOptions.DefaultWeights(values.Length), Defaults);

    private sealed class Tolerance(double epsilon) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= epsilon * Math.Max(1, Math.Abs(x));

        public int GetHashCode(double obj) => 0;
    }
}
