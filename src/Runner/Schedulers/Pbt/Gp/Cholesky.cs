using System.Numerics;

namespace TorchTrials.Runner.Schedulers;

/// <summary>
/// Cholesky factorisation and solves for the small dense symmetric matrices PB2's GP needs. Matrices are flat,
/// row-major <c>double[n * n]</c>; the factor is lower triangular, so every inner loop is a dot product of row prefixes.
/// </summary>
internal static class Cholesky
{
    /// <summary>Lower-triangular L with A = L Lᵀ, or null when A is not (numerically) positive definite.</summary>
    public static double[]? TryDecompose(ReadOnlySpan<double> a, int n)
    {
        var l = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            var rowI = l.AsSpan(i * n, n);
            for (int j = 0; j <= i; j++)
            {
                var rowJ = l.AsSpan(j * n, j);
                double sum = a[i * n + j] - Dot(rowI[..j], rowJ);
                if (i == j)
                {
                    if (!(sum > 0)) return null;
                    rowI[j] = Math.Sqrt(sum);
                }
                else
                {
                    rowI[j] = sum / l[j * n + j];
                }
            }
        }
        return l;
    }

    /// <summary>
    /// Like GPy's jitchol: factorise, and when that fails add growing jitter (1e-6 .. 1e-2 of the mean diagonal) to the
    /// diagonal; null when even that fails.
    /// </summary>
    public static double[]? DecomposeWithJitter(double[] a, int n)
    {
        if (TryDecompose(a, n) is { } l) return l;
        double mean = 0;
        for (int i = 0; i < n; i++) mean += a[i * n + i];
        mean /= n;
        if (!(mean > 0)) return null;
        double jitter = mean * 1e-6;
        for (int attempt = 0; attempt < 5; attempt++, jitter *= 10)
        {
            var copy = (double[])a.Clone();
            for (int i = 0; i < n; i++) copy[i * n + i] += jitter;
            if (TryDecompose(copy, n) is { } lj) return lj;
        }
        return null;
    }

    /// <summary>x with L x = b.</summary>
    public static double[] SolveLower(double[] l, ReadOnlySpan<double> b)
    {
        int n = b.Length;
        var x = new double[n];
        for (int i = 0; i < n; i++)
            x[i] = (b[i] - Dot(l.AsSpan(i * n, i), x.AsSpan(0, i))) / l[i * n + i];
        return x;
    }

    /// <summary>x with Lᵀ x = b.</summary>
    public static double[] SolveUpperTransposed(double[] l, ReadOnlySpan<double> b)
    {
        int n = b.Length;
        var x = new double[n];
        for (int i = n - 1; i >= 0; i--)
        {
            double sum = b[i];
            for (int k = i + 1; k < n; k++) sum -= l[k * n + i] * x[k];
            x[i] = sum / l[i * n + i];
        }
        return x;
    }

    /// <summary>x with (L Lᵀ) x = b.</summary>
    public static double[] Solve(double[] l, ReadOnlySpan<double> b) => SolveUpperTransposed(l, SolveLower(l, b));

    /// <summary>(L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹, through U = L⁻ᵀ (upper triangular, row-major) so the products are row dot products.</summary>
    public static double[] Inverse(double[] l, int n)
    {
        // Column j of L⁻¹ solves L x = e_j; it is row j of U.
        var u = new double[n * n];
        for (int j = 0; j < n; j++)
        {
            var row = u.AsSpan(j * n, n);
            row[j] = 1 / l[j * n + j];
            for (int i = j + 1; i < n; i++)
            {
                row[i] = -Dot(l.AsSpan(i * n + j, i - j), row.Slice(j, i - j)) / l[i * n + i];
            }
        }
        var inverse = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = i; j < n; j++)
            {
                double value = Dot(u.AsSpan(i * n + j, n - j), u.AsSpan(j * n + j, n - j));
                inverse[i * n + j] = value;
                inverse[j * n + i] = value;
            }
        }
        return inverse;
    }

    public static double LogDeterminant(double[] l, int n)
    {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.Log(l[i * n + i]);
        return 2 * sum;
    }

    public static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double sum = 0;
        int i = 0;
        if (Vector.IsHardwareAccelerated && a.Length >= Vector<double>.Count * 2)
        {
            var acc = Vector<double>.Zero;
            for (; i <= a.Length - Vector<double>.Count; i += Vector<double>.Count)
                acc += new Vector<double>(a[i..]) * new Vector<double>(b[i..]);
            sum = Vector.Sum(acc);
        }
        for (; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}
