using TorchTrials.Trainables;

namespace TorchTrials.Runner.Search;

/// <summary>
/// Standard test functions for searchers, with the spaces they are defined on. Used by the tests and the benchmark harness.
/// </summary>
public static class Objectives
{
    /// <summary>Branin's global minimum, reached at (-π, 12.275), (π, 2.275) and (9.42478, 2.475).</summary>
    public const double BraninMinimum = 0.397887357729738;

    /// <summary>Hartmann-6's global minimum, at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573).</summary>
    public const double Hartmann6Minimum = -3.32236801141551;

    private static readonly double[] HartmannAlpha = { 1.0, 1.2, 3.0, 3.2 };

    private static readonly double[,] HartmannA =
    {
        { 10, 3, 17, 3.5, 1.7, 8 },
        { 0.05, 10, 17, 0.1, 8, 14 },
        { 3, 3.5, 1.7, 10, 17, 8 },
        { 17, 8, 0.05, 10, 0.1, 14 },
    };

    private static readonly double[,] HartmannP =
    {
        { 1312e-4, 1696e-4, 5569e-4, 124e-4, 8283e-4, 5886e-4 },
        { 2329e-4, 4135e-4, 8307e-4, 3736e-4, 1004e-4, 9991e-4 },
        { 2348e-4, 1451e-4, 3522e-4, 2883e-4, 3047e-4, 6650e-4 },
        { 4047e-4, 8828e-4, 8732e-4, 5743e-4, 1091e-4, 381e-4 },
    };

    /// <summary>Branin-Hoo: (x2 - 5.1 x1² / (4π²) + 5 x1 / π - 6)² + 10 (1 - 1 / (8π)) cos x1 + 10, on x1 ∈ [-5, 10], x2 ∈ [0, 15].</summary>
    public static double Branin(double x1, double x2)
    {
        const double a = 1, r = 6, s = 10;
        double b = 5.1 / (4 * Math.PI * Math.PI), c = 5 / Math.PI, t = 1 / (8 * Math.PI);
        double u = x2 - b * x1 * x1 + c * x1 - r;
        return a * u * u + s * (1 - t) * Math.Cos(x1) + s;
    }

    /// <summary>Branin of a config with keys x1 and x2.</summary>
    public static double Branin(TrialConfig config) => Branin(config.GetDouble("x1"), config.GetDouble("x2"));

    public static SearchSpace BraninSpace() => new()
    {
        ["x1"] = Domain.Uniform(-5, 10),
        ["x2"] = Domain.Uniform(0, 15),
    };

    /// <summary>Hartmann-6: -Σᵢ αᵢ exp(-Σⱼ Aᵢⱼ (xⱼ - Pᵢⱼ)²) on [0, 1]^6.</summary>
    public static double Hartmann6(ReadOnlySpan<double> x)
    {
        if (x.Length != 6) throw new ArgumentException($"Hartmann-6 takes 6 coordinates, got {x.Length}", nameof(x));
        double total = 0;
        for (int i = 0; i < 4; i++)
        {
            double inner = 0;
            for (int j = 0; j < 6; j++)
            {
                double d = x[j] - HartmannP[i, j];
                inner += HartmannA[i, j] * d * d;
            }
            total += HartmannAlpha[i] * Math.Exp(-inner);
        }
        return -total;
    }

    /// <summary>Hartmann-6 of a config with keys x1 .. x6.</summary>
    public static double Hartmann6(TrialConfig config)
    {
        Span<double> x = stackalloc double[6];
        for (int j = 0; j < 6; j++) x[j] = config.GetDouble($"x{j + 1}");
        return Hartmann6(x);
    }

    public static SearchSpace Hartmann6Space()
    {
        var space = new SearchSpace();
        for (int j = 1; j <= 6; j++) space[$"x{j}"] = Domain.Uniform(0, 1);
        return space;
    }

    /// <summary>Ray Tune's examples' <c>evaluation_fn</c>: (0.1 + width · step / 100)⁻¹ + height · 0.1 (without its sleep).</summary>
    public static double EasyObjective(double step, double width, double height) => 1.0 / (0.1 + width * step / 100) + height * 0.1;

    /// <summary>The easy objective's loss after its last step (steps - 1), for a config with width, height and optionally steps (default 100).</summary>
    public static double EasyObjective(TrialConfig config) =>
        EasyObjective(config.GetInt("steps", 100) - 1, config.GetDouble("width"), config.GetDouble("height"));

    /// <summary>The space of Ray's examples: width uniform(0, 20), height uniform(-100, 100), steps 100 (metric mean_loss, mode min).</summary>
    public static SearchSpace EasySpace() => new()
    {
        ["steps"] = 100,
        ["width"] = Domain.Uniform(0, 20),
        ["height"] = Domain.Uniform(-100, 100),
    };
}
