using System.Globalization;

namespace TorchTrials.Gpu;

/// <summary>
/// A non-integral resource quantity (CPUs, GPUs, custom units) in fixed point with four decimals,
/// Ray's resource precision. Sums and differences are exact, so 0.99 - 3 x 0.33 is exactly 0.
/// </summary>
public readonly struct ResourceAmount : IEquatable<ResourceAmount>, IComparable<ResourceAmount>
{
    /// <summary>Units per whole resource.</summary>
    public const long Scale = 10_000;

    private ResourceAmount(long units) => Units = units;

    /// <summary>The amount in 1/<see cref="Scale"/> units.</summary>
    public long Units { get; }

    public static ResourceAmount Zero => default;

    public static ResourceAmount One => new(Scale);

    public bool IsZero => Units == 0;

    public bool IsWhole => Units % Scale == 0;

    /// <summary>Converts a user value, rejecting NaN, infinities and negatives with a message naming <paramref name="field"/>.</summary>
    public static ResourceAmount From(double value, string field)
    {
        if (double.IsNaN(value) || double.IsInfinity(value))
            throw new ArgumentException($"resource '{field}' must be a finite number, got {value.ToString(CultureInfo.InvariantCulture)}", field);
        if (value < 0)
            throw new ArgumentException($"resource '{field}' must not be negative, got {value.ToString(CultureInfo.InvariantCulture)}", field);
        if (value > long.MaxValue / (double)Scale)
            throw new ArgumentException($"resource '{field}' is too large: {value.ToString(CultureInfo.InvariantCulture)}", field);
        return new ResourceAmount((long)Math.Round(value * Scale, MidpointRounding.AwayFromZero));
    }

    public static ResourceAmount FromUnits(long units) => new(units);

    public double ToDouble() => Units / (double)Scale;

    public static ResourceAmount operator +(ResourceAmount a, ResourceAmount b) => new(checked(a.Units + b.Units));

    public static ResourceAmount operator -(ResourceAmount a, ResourceAmount b) => new(checked(a.Units - b.Units));

    public static ResourceAmount operator *(ResourceAmount a, int n) => new(checked(a.Units * n));

    public static bool operator <(ResourceAmount a, ResourceAmount b) => a.Units < b.Units;

    public static bool operator >(ResourceAmount a, ResourceAmount b) => a.Units > b.Units;

    public static bool operator <=(ResourceAmount a, ResourceAmount b) => a.Units <= b.Units;

    public static bool operator >=(ResourceAmount a, ResourceAmount b) => a.Units >= b.Units;

    public static bool operator ==(ResourceAmount a, ResourceAmount b) => a.Units == b.Units;

    public static bool operator !=(ResourceAmount a, ResourceAmount b) => a.Units != b.Units;

    public static ResourceAmount Min(ResourceAmount a, ResourceAmount b) => a.Units <= b.Units ? a : b;

    public bool Equals(ResourceAmount other) => Units == other.Units;

    public override bool Equals(object? obj) => obj is ResourceAmount other && Equals(other);

    public override int GetHashCode() => Units.GetHashCode();

    public int CompareTo(ResourceAmount other) => Units.CompareTo(other.Units);

    /// <summary>Shortest exact decimal form: "2", "0.5", "0.3333".</summary>
    public override string ToString()
    {
        long whole = Math.DivRem(Units, Scale, out long frac);
        if (frac == 0) return whole.ToString(CultureInfo.InvariantCulture);
        string sign = Units < 0 ? "-" : "";
        string digits = Math.Abs(frac).ToString("D4", CultureInfo.InvariantCulture).TrimEnd('0');
        return $"{sign}{Math.Abs(whole).ToString(CultureInfo.InvariantCulture)}.{digits}";
    }
}
