namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// Unconstrained BFGS with an Armijo backtracking line search, for the handful of GP hyperparameters. It stops where
/// scipy's L-BFGS-B (which GPy calls) stops by default: largest gradient component below 1e-5, or a relative decrease
/// of the objective below factr * machine epsilon = 1e7 * 2.2e-16.
/// </summary>
internal static class Bfgs
{
    private const double RelativeTolerance = 1e7 * 2.220446049250313e-16;

    public static double[] Minimize(Func<double[], (double Value, double[] Gradient)> function, double[] start, int maxIterations = 200, double gradientTolerance = 1e-5)
    {
        int n = start.Length;
        var x = (double[])start.Clone();
        var (fx, g) = function(x);
        if (!double.IsFinite(fx)) return x;
        var h = Identity(n);
        for (int iteration = 0; iteration < maxIterations; iteration++)
        {
            if (g.Max(Math.Abs) < gradientTolerance) break;
            var p = Multiply(h, g);
            for (int i = 0; i < n; i++) p[i] = -p[i];
            double slope = Dot(g, p);
            if (slope >= 0)
            {
                h = Identity(n);
                p = g.Select(v => -v).ToArray();
                slope = Dot(g, p);
            }

            double step = 1;
            double[] xNew = x;
            double fNew = fx;
            double[] gNew = g;
            bool accepted = false;
            while (step > 1e-12)
            {
                xNew = x.Select((v, i) => v + step * p[i]).ToArray();
                (fNew, gNew) = function(xNew);
                if (double.IsFinite(fNew) && fNew <= fx + 1e-4 * step * slope && gNew.All(double.IsFinite))
                {
                    accepted = true;
                    break;
                }
                step /= 2;
            }
            if (!accepted) break;

            var s = xNew.Select((v, i) => v - x[i]).ToArray();
            var y = gNew.Select((v, i) => v - g[i]).ToArray();
            double sy = Dot(s, y);
            bool converged = (fx - fNew) <= RelativeTolerance * Math.Max(Math.Max(Math.Abs(fx), Math.Abs(fNew)), 1);
            x = xNew;
            fx = fNew;
            g = gNew;
            if (converged) break;
            if (sy > 1e-12) h = Update(h, s, y, sy);
        }
        return x;
    }

    /// <summary>H' = (I - ρ s yᵀ) H (I - ρ y sᵀ) + ρ s sᵀ with ρ = 1 / (yᵀ s).</summary>
    private static double[,] Update(double[,] h, double[] s, double[] y, double sy)
    {
        int n = s.Length;
        double rho = 1 / sy;
        var hy = Multiply(h, y);
        double yhy = Dot(y, hy);
        var result = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                result[i, j] = h[i, j] - rho * (hy[i] * s[j] + s[i] * hy[j]) + (rho * rho * yhy + rho) * s[i] * s[j];
        return result;
    }

    private static double[,] Identity(int n)
    {
        var m = new double[n, n];
        for (int i = 0; i < n; i++) m[i, i] = 1;
        return m;
    }

    private static double[] Multiply(double[,] m, double[] v)
    {
        int n = v.Length;
        var r = new double[n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                r[i] += m[i, j] * v[j];
        return r;
    }

    private static double Dot(double[] a, double[] b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}
