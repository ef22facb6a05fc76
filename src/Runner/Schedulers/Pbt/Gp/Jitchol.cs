using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Factorization;

namespace TorchTrials.Runner.Schedulers;

/// <summary>MathNet's Cholesky factorisation for PB2's GP, with GPy's jitchol fallback.</summary>
internal static class Jitchol
{
    /// <summary>The Cholesky factorisation of <paramref name="a"/>, or null when it is not (numerically) positive definite.</summary>
    public static Cholesky<double>? TryDecompose(Matrix<double> a)
    {
        try
        {
            var cholesky = a.Cholesky();
            var factor = cholesky.Factor;
            for (int i = 0; i < a.RowCount; i++)
                if (!(factor[i, i] > 0) || !double.IsFinite(factor[i, i])) return null;
            return cholesky;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>
    /// Like GPy's jitchol: factorise, and when that fails add growing jitter (1e-6 .. 1e-2 of the mean diagonal) to the
    /// diagonal; null when even that fails.
    /// </summary>
    public static Cholesky<double>? Decompose(Matrix<double> a)
    {
        if (TryDecompose(a) is { } l) return l;
        int n = a.RowCount;
        double mean = a.Diagonal().Average();
        if (!(mean > 0)) return null;
        double jitter = mean * 1e-6;
        for (int attempt = 0; attempt < 5; attempt++, jitter *= 10)
        {
            var copy = a + Matrix<double>.Build.DenseDiagonal(n, jitter);
            if (TryDecompose(copy) is { } lj) return lj;
        }
        return null;
    }
}
