using TorchTrials.Runner;
using TorchTrials.Runner.Report;
using TorchTrials.Trainables;

namespace TorchTrials.Tests.Runner.Report;

/// <summary>fANOVA importances on synthetic sweeps whose answer is known (issue 13, picture 5).</summary>
public class ParameterImportanceTests
{
    internal static SweepData Sweep(int count, int seed, Func<Random, Dictionary<string, object?>> sample,
        Func<Dictionary<string, object?>, double> metric, IReadOnlyList<ParamDomain>? domains = null)
    {
        var rng = new Random(seed);
        var trials = new List<SweepTrial>();
        for (int i = 0; i < count; i++)
        {
            var p = sample(rng);
            var result = new TrialResult { Metrics = [new("loss", (object)metric(p))], TrainingIteration = 1 };
            trials.Add(new SweepTrial($"t{i}", i, TrialStatus.Terminated, p, [result], []));
        }
        return new SweepData { Metric = "loss", Mode = MetricMode.Min, Trials = trials, Domains = domains ?? [] };
    }

    private static readonly ParamDomain[] Unit =
    [
        new("x1", ParamKind.Float) { Low = 0, High = 1 },
        new("x2", ParamKind.Float) { Low = 0, High = 1 },
        new("x3", ParamKind.Float) { Low = 0, High = 1 },
    ];

    private static Dictionary<string, object?> Uniform(Random r) => new()
    {
        ["x1"] = r.NextDouble(), ["x2"] = r.NextDouble(), ["x3"] = r.NextDouble(),
    };

    [Fact]
    public void DominantParamTakesAlmostAllAndUnusedParamNone()
    {
        var data = Sweep(200, 1, Uniform, p => 10 * (double)p["x1"]! + 0.1 * (double)p["x2"]!, Unit);
        var importances = ParameterImportance.Fanova(data).ToDictionary(p => p.Param, p => p.Importance);
        Assert.True(importances["x1"] > 0.9, $"x1 {importances["x1"]}");
        Assert.True(importances["x3"] < 0.02, $"x3 {importances["x3"]}");
        Assert.Equal(1.0, importances.Values.Sum(), 6);
        Assert.Equal("x1", ParameterImportance.Fanova(data)[0].Param);
    }

    [Fact]
    public void AdditiveCaseMatchesVarianceShare()
    {
        // y = a + 2b, a and b uniform on [0,1]: Var(a) : Var(2b) = 1 : 4.
        var data = Sweep(400, 2, Uniform, p => (double)p["x1"]! + 2 * (double)p["x2"]!, Unit);
        var importances = ParameterImportance.Fanova(data).ToDictionary(p => p.Param, p => p.Importance);
        Assert.InRange(importances["x1"], 0.14, 0.26);
        Assert.InRange(importances["x2"], 0.74, 0.86);
        Assert.True(importances["x3"] < 0.03, $"x3 {importances["x3"]}");
    }

    [Fact]
    public void CategoricalThatDrivesTheMetricDominates()
    {
        string[] optimizers = ["sgd", "adam", "rmsprop"];
        var domains = new[]
        {
            new ParamDomain("optimizer", ParamKind.Categorical) { Categories = optimizers },
            new ParamDomain("lr", ParamKind.Float) { Low = 1e-4, High = 1e-1, Log = true },
        };
        var effect = new Dictionary<string, double> { ["sgd"] = 0, ["adam"] = 5, ["rmsprop"] = 2 };
        var data = Sweep(150, 3, r => new() { ["optimizer"] = optimizers[r.Next(3)], ["lr"] = Math.Pow(10, -4 + 3 * r.NextDouble()) },
            p => effect[(string)p["optimizer"]!] + 0.01 * Math.Log10((double)p["lr"]!), domains);
        var importances = ParameterImportance.Fanova(data);
        Assert.Equal("optimizer", importances[0].Param);
        Assert.True(importances[0].Importance > 0.9, $"{importances[0].Importance}");
        Assert.Equal(2, importances.Count);
    }

    [Fact]
    public void SameSeedSameImportancesOtherSeedStillClose()
    {
        var data = Sweep(120, 4, Uniform, p => Math.Sin(3 * (double)p["x1"]!) + (double)p["x2"]! * (double)p["x3"]!, Unit);
        var a = ParameterImportance.Fanova(data, seed: 7);
        var b = ParameterImportance.Fanova(data, seed: 7);
        Assert.Equal(a, b);
        var c = ParameterImportance.Fanova(data, seed: 8);
        Assert.NotEqual(a.Select(p => p.Importance), c.Select(p => p.Importance));
    }

    [Fact]
    public void ConstantMetricGivesZeroImportancesNotNaN()
    {
        var data = Sweep(50, 5, Uniform, _ => 3.0, Unit);
        var importances = ParameterImportance.Fanova(data);
        Assert.Equal(3, importances.Count);
        Assert.All(importances, p => Assert.Equal(0.0, p.Importance));
    }

    [Fact]
    public void RawOverloadReturnsOneImportancePerGroup()
    {
        var rng = new Random(6);
        var x = new double[100, 2];
        var y = new double[100];
        for (int i = 0; i < 100; i++)
        {
            x[i, 0] = rng.NextDouble();
            x[i, 1] = rng.NextDouble();
            y[i] = x[i, 1] > 0.5 ? 1 : 0;
        }
        var importances = ParameterImportance.Fanova(x, y, [(0, 1), (0, 1)], [[0], [1]]);
        Assert.Equal(2, importances.Length);
        Assert.True(importances[1] > 0.95, $"{importances[1]}");
    }

    [Fact]
    public void OnlyTrialsThatReportedTheMetricCount()
    {
        var data = Sweep(100, 7, Uniform, p => 10 * (double)p["x1"]!, Unit);
        var silent = new SweepTrial("none", 100, TrialStatus.Error, new Dictionary<string, object?> { ["x1"] = 0.5, ["x2"] = 0.5, ["x3"] = 0.5 },
            [new TrialResult { Metrics = [new("other", (object)1.0)] }], []);
        var withSilent = data with { Trials = [.. data.Trials, silent] };
        Assert.Equal(ParameterImportance.Fanova(data), ParameterImportance.Fanova(withSilent));
        Assert.Empty(ParameterImportance.Fanova(data with { Metric = "missing" }));
    }
}
