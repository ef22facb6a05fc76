using MathNet.Numerics.LinearAlgebra;
using TorchTrials.Runner;
using TorchTrials.Runner.Schedulers;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Schedulers.Pbt;

public class Pb2Tests
{
    [Fact]
    public void Cholesky_solves_a_hand_factorised_system_and_jitter_rescues_only_a_semidefinite_matrix()
    {
        // A = [[4, 2, 2], [2, 5, 3], [2, 3, 6]] = L Lᵀ with L = [[2, 0, 0], [1, 2, 0], [1, 1, 2]].
        var a = Matrix<double>.Build.DenseOfArray(new double[,] { { 4, 2, 2 }, { 2, 5, 3 }, { 2, 3, 6 } });
        var l = Jitchol.TryDecompose(a)!;
        Assert.Equal(new double[] { 2, 0, 0, 1, 2, 0, 1, 1, 2 }, l.Factor.ToRowMajorArray());
        // A x = (8, 10, 11) for x = (1, 1, 1).
        Assert.All(l.Solve(Vector<double>.Build.DenseOfArray(new double[] { 8, 10, 11 })), v => Assert.Equal(1, v, 12));
        Assert.Equal(2 * Math.Log(8), l.DeterminantLn, 12);
        // [[1, 2], [2, 1]] has eigenvalue -1: no jitter up to 1e-2 of its diagonal helps. [[1, 1], [1, 1]] is singular but
        // semidefinite: 1e-6 on the diagonal makes it factorise.
        var indefinite = Matrix<double>.Build.DenseOfArray(new double[,] { { 1, 2 }, { 2, 1 } });
        var singular = Matrix<double>.Build.DenseOfArray(new double[,] { { 1, 1 }, { 1, 1 } });
        Assert.Null(Jitchol.TryDecompose(indefinite));
        Assert.Null(Jitchol.Decompose(indefinite));
        Assert.Null(Jitchol.TryDecompose(singular));
        Assert.NotNull(Jitchol.Decompose(singular));
    }

    [Fact]
    public void The_beta_schedule_is_0_2_plus_log_0_4_t()
    {
        Assert.Equal(0.2, Pb2Selection.Beta(1), 12);
        Assert.Equal(0.2, Pb2Selection.Beta(2), 12);
        Assert.Equal(0.2 + Math.Log(4), Pb2Selection.Beta(10), 12);
    }

    [Fact]
    public void Reward_changes_are_taken_per_trial_and_config_over_positive_time()
    {
        // a: (t 4, r 10), (t 8, r 14) -> change (14 - 10) / 4 = 1 at t 8 with reward before 10.
        // b: (t 4, r 3) under lr 0.1, then (t 8, r 9) under lr 0.2: a new config, so no change yet; (t 12, r 11) -> 0.5.
        // a's duplicate time (t 8 again) has no positive time change and is dropped.
        var data = new List<Pb2Row>
        {
            new("a", 4, new[] { 0.1 }, 10), new("b", 4, new[] { 0.1 }, 3), new("a", 8, new[] { 0.1 }, 14),
            new("b", 8, new[] { 0.2 }, 9), new("a", 8, new[] { 0.1 }, 15), new("b", 12, new[] { 0.2 }, 11),
        };
        var changes = Pb2Selection.Differences(data);
        Assert.Equal(new[] { ("a", 8.0, 10.0, 1.0), ("b", 12.0, 9.0, 0.5) }, changes.Select(c => (c.Row.Trial, c.Row.Time, c.RewardBefore, c.Change)));
    }

    [Fact]
    public void The_gp_gradients_match_finite_differences()
    {
        var random = new Random(5);
        var x = Enumerable.Range(0, 12).Select(_ => new[] { random.NextDouble(), random.NextDouble(), random.NextDouble() }).ToArray();
        var y = x.Select(r => Math.Sin(3 * r[2]) + 0.1 * r[1]).ToArray();
        var gp = TimeVaryingGp.Fit(x, y);

        var p = new[] { 0.3, -0.5, -1.0, -2.0 };
        var (_, gradient) = gp.NegativeLogLikelihood(p);
        for (int i = 0; i < p.Length; i++)
        {
            var plus = (double[])p.Clone();
            var minus = (double[])p.Clone();
            plus[i] += 1e-6;
            minus[i] -= 1e-6;
            double numeric = (gp.NegativeLogLikelihood(plus).Value - gp.NegativeLogLikelihood(minus).Value) / 2e-6;
            Assert.Equal(numeric, gradient[i], 4);
        }

        var at = new[] { 0.5, 0.4, 0.3 };
        var meanGradient = new double[1];
        var varianceGradient = new double[1];
        gp.PredictWithGradient(at, 2, meanGradient, varianceGradient);
        var (meanPlus, varPlus) = gp.Predict(new[] { 0.5, 0.4, 0.3 + 1e-6 });
        var (meanMinus, varMinus) = gp.Predict(new[] { 0.5, 0.4, 0.3 - 1e-6 });
        Assert.Equal((meanPlus - meanMinus) / 2e-6, meanGradient[0], 4);
        Assert.Equal((varPlus - varMinus) / 2e-6, varianceGradient[0], 4);
    }

    [Fact]
    public void Maximum_likelihood_fitting_improves_on_the_starting_hyperparameters()
    {
        var random = new Random(9);
        var x = Enumerable.Range(0, 30).Select(_ => new[] { random.NextDouble(), random.NextDouble() }).ToArray();
        var y = x.Select(r => Math.Sin(6 * r[1])).ToArray();
        var gp = TimeVaryingGp.Fit(x, y);
        double start = -gp.NegativeLogLikelihood(new[] { 0.0, 0.0, Math.Log(0.2 / 0.8), 0.0 }).Value;
        Assert.True(gp.LogLikelihood > start + 1, $"fitted {gp.LogLikelihood} vs start {start}");
        Assert.InRange(gp.Epsilon, 0, 0.5);
    }

    [Fact]
    public void The_bandit_picks_the_hyperparameter_with_the_largest_observed_improvement()
    {
        // Improvement per unit time peaks at x = 0.3 (of bounds [0, 1]); time and reward before are noise.
        var random = new Random(1);
        var x = new List<double[]>();
        var y = new List<double>();
        for (int i = 0; i < 100; i++)
        {
            double h = random.NextDouble();
            x.Add(new[] { i / 4.0, random.NextDouble() * 100, h });
            y.Add(-10 * (h - 0.3) * (h - 0.3) + 0.3 * random.NextDouble());
        }
        var chosen = Pb2Selection.SelectConfig(x, y, null, new[] { 25.0, 50 }, new[] { (0.0, 1.0) }, new Random(2));
        Assert.InRange(chosen[0], 0.2, 0.45);
    }

    [Fact]
    public void The_bounded_bfgs_acquisition_optimum_is_at_least_as_good_as_projected_gradient_ascent()
    {
        // Improvement per unit time has two bumps over two hyperparameters, the higher one at (0.8, 0.2), with a
        // valley between them: local searches from some of the 10 starts end on the lower bump.
        var random = new Random(3);
        var x = new List<double[]>();
        var y = new List<double>();
        for (int i = 0; i < 60; i++)
        {
            double a = random.NextDouble(), b = random.NextDouble();
            x.Add(new[] { random.NextDouble(), random.NextDouble(), a, b });
            y.Add(Math.Exp(-20 * ((a - 0.8) * (a - 0.8) + (b - 0.2) * (b - 0.2))) + 0.6 * Math.Exp(-20 * ((a - 0.2) * (a - 0.2) + (b - 0.7) * (b - 0.7))));
        }
        var gp = TimeVaryingGp.Fit(x.ToArray(), y.ToArray());
        var fixedPoint = new[] { 0.5, 0.5 };
        var gradient = new double[2];
        for (int seed = 0; seed < 5; seed++)
        {
            var bfgsB = Pb2Selection.OptimizeAcquisition(gp, gp, fixedPoint, 2, new Random(seed));
            var ascent = ProjectedGradientAscent(gp, fixedPoint, 2, new Random(seed));
            double ours = Pb2Selection.Ucb(gp, gp, fixedPoint, bfgsB, gradient), old = Pb2Selection.Ucb(gp, gp, fixedPoint, ascent, gradient);
            Assert.True(ours >= old - 1e-9, $"seed {seed}: BFGS-B UCB {ours} at ({bfgsB[0]}, {bfgsB[1]}) vs ascent {old} at ({ascent[0]}, {ascent[1]})");
            Assert.All(bfgsB, v => Assert.InRange(v, 0, 1));
            Assert.InRange(bfgsB[0], 0.6, 1.0);
            Assert.InRange(bfgsB[1], 0.0, 0.4);
        }
    }

    /// <summary>
    /// The optimiser PB2 used before MathNet's BFGS-B, kept here as the reference to beat: from the same 10 starts,
    /// projected gradient ascent with an Armijo test, doubling the step after a success and halving it after a failure.
    /// </summary>
    private static double[] ProjectedGradientAscent(TimeVaryingGp m, double[] fixedPoint, int dimensions, Random random)
    {
        double[] best = Array.Empty<double>();
        double bestValue = double.NegativeInfinity;
        var gradient = new double[dimensions];
        var trialGradient = new double[dimensions];
        for (int start = 0; start < 10; start++)
        {
            var x = Enumerable.Range(0, dimensions).Select(_ => random.NextDouble()).ToArray();
            double value = Pb2Selection.Ucb(m, m, fixedPoint, x, gradient);
            double step = 1;
            for (int iteration = 0; iteration < 200 && step > 1e-10; iteration++)
            {
                var candidate = x.Select((v, i) => Math.Clamp(v + step * gradient[i], 0, 1)).ToArray();
                double moved = 0, ascent = 0;
                for (int i = 0; i < dimensions; i++)
                {
                    moved += Math.Abs(candidate[i] - x[i]);
                    ascent += gradient[i] * (candidate[i] - x[i]);
                }
                if (moved < 1e-12) break;
                double candidateValue = Pb2Selection.Ucb(m, m, fixedPoint, candidate, trialGradient);
                if (candidateValue >= value + 1e-4 * ascent)
                {
                    x = candidate;
                    value = candidateValue;
                    Array.Copy(trialGradient, gradient, dimensions);
                    step *= 2;
                }
                else
                {
                    step /= 2;
                }
            }
            if (value > bestValue)
            {
                bestValue = value;
                best = x;
            }
        }
        return best;
    }

    [Fact]
    public void Pb2_records_each_perturbation_step_and_gives_the_recipient_a_record_at_the_donors_point()
    {
        var pb2 = new Pb2(new Pb2Options
        {
            TimeAttr = TrialResult.TrainingIterationKey, Metric = "score", Mode = MetricMode.Max, PerturbationInterval = 2, Seed = 1, LogConfig = false,
            QuantileFraction = 0.5, HyperparamBounds = new Dictionary<string, (double, double)> { ["lr"] = (0.0, 1.0) },
        });
        var control = new FakeTrialControl { Scheduler = pb2 };
        var a = control.Add("a", TrialConfig.From(("lr", 0.2)));
        var b = control.Add("b", TrialConfig.From(("lr", 0.8)));
        pb2.OnTrialAdd(control, a);
        pb2.OnTrialAdd(control, b);
        void Report(Trial t, long time, double score)
        {
            var result = Results.At(time, score);
            pb2.OnTrialResult(control, t, result);
            t.LastResult = result;
        }

        // Ranked [b, a] with 0.5: one each side. a needs a change over time to be modelled; b exploits it from t = 4 on.
        Report(a, 2, 5);
        Report(b, 2, 1);
        Assert.Empty(control.Exploits);
        Report(a, 4, 9);
        Report(b, 4, 2);
        var exploit = Assert.Single(control.Exploits);
        Assert.Same(b, exploit.Recipient);
        Assert.InRange(exploit.Config.GetDouble("lr"), 0.0, 1.0);
        // Rows: a@2, b@2, a@4, b@4 and the recipient's new row at a's time and reward with the chosen lr.
        Assert.Equal(5, pb2.Data.Count);
        Assert.Equal(("b", 4.0, 9.0), (pb2.Data[^1].Trial, pb2.Data[^1].Time, pb2.Data[^1].Reward));
        Assert.Equal(exploit.Config.GetDouble("lr"), pb2.Data[^1].Hyperparameters[0]);
    }

    [Fact]
    public void Bad_bounds_fail_at_construction_naming_the_option()
    {
        Assert.Contains("Pb2Options.HyperparamBounds", Assert.Throws<OptionException>(() => new Pb2(new Pb2Options())).Message);
        Assert.Contains("Pb2Options.HyperparamBounds['lr']", Assert.Throws<OptionException>(() => new Pb2(new Pb2Options
        {
            HyperparamBounds = new Dictionary<string, (double, double)> { ["lr"] = (1, 0) },
        })).Message);
    }
}
