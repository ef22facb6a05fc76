using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.Optimization;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// MathNet.Numerics' BFGS (unbounded) and BFGS-B (box bounds: a Cauchy point by gradient projection, then a BFGS step on
/// the free variables, as in L-BFGS-B but with the full BFGS matrix) for PB2's GP. They stop as scipy's L-BFGS-B
/// stops by default: (projected) gradient below 1e-5, or no progress. MathNet throws when it runs out of iterations or
/// its line search meets a value it cannot use (the GP's likelihood is infinite where the covariance is not positive
/// definite); these return the best finite point evaluated instead, which is where scipy would have stopped too.
/// </summary>
internal static class Minimizers
{
    private const double GradientTolerance = 1e-5;
    private const double ParameterTolerance = 1e-12;
    private const double FunctionProgressTolerance = 1e7 * 2.220446049250313e-16;

    public static double[] Bfgs(Func<double[], (double Value, double[] Gradient)> function, double[] start, int maxIterations) =>
        Run(function, start, objective => new BfgsMinimizer(GradientTolerance, ParameterTolerance, FunctionProgressTolerance, maxIterations)
            .FindMinimum(objective, Vector<double>.Build.DenseOfArray(start)));

    /// <summary>The minimum within [lower, upper] (per coordinate) from <paramref name="start"/>, which must lie inside.</summary>
    public static double[] BfgsB(Func<double[], (double Value, double[] Gradient)> function, double[] start, double lower, double upper, int maxIterations)
    {
        var build = Vector<double>.Build;
        return Run(function, start, objective => new BfgsBMinimizer(GradientTolerance, ParameterTolerance, FunctionProgressTolerance, maxIterations)
            .FindMinimum(objective, build.Dense(start.Length, lower), build.Dense(start.Length, upper), build.DenseOfArray(start)));
    }

    private static double[] Run(Func<double[], (double Value, double[] Gradient)> function, double[] start, Func<IObjectiveFunction, MinimizationResult> minimize)
    {
        double[] best = (double[])start.Clone();
        double bestValue = double.PositiveInfinity;
        var objective = ObjectiveFunction.Gradient(point =>
        {
            var x = point.ToArray();
            var (value, gradient) = function(x);
            if (double.IsFinite(value) && value < bestValue && gradient.All(double.IsFinite))
            {
                bestValue = value;
                best = x;
            }
            return (value, Vector<double>.Build.DenseOfArray(gradient));
        });
        try
        {
            minimize(objective);
        }
        catch (OptimizationException)
        {
        }
        // The minimiser's answer is one of the evaluated points, so the best of them is at least as good.
        return best;
    }
}
