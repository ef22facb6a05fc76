using System.Globalization;
using System.Text.Json.Nodes;

namespace TorchTrials.Runner.Search;

/// <summary>
/// The searchers' random source: xoshiro256** seeded through SplitMix64 (Blackman and Vigna). Same seed, same stream,
/// on every platform and .NET version, and its state can be saved with an experiment and restored on resume.
/// </summary>
public sealed class SearchRandom
{
    private ulong _s0, _s1, _s2, _s3;

    public SearchRandom(long seed)
    {
        ulong x = unchecked((ulong)seed);
        _s0 = SplitMix(ref x);
        _s1 = SplitMix(ref x);
        _s2 = SplitMix(ref x);
        _s3 = SplitMix(ref x);
    }

    private SearchRandom(ulong s0, ulong s1, ulong s2, ulong s3) => (_s0, _s1, _s2, _s3) = (s0, s1, s2, s3);

    /// <summary>A seed for callers that did not give one.</summary>
    public static long NewSeed() => System.Random.Shared.NextInt64();

    /// <summary>A seed derived from <paramref name="seed"/> and <paramref name="stream"/>, for independent sub-streams (one per sample block).</summary>
    public static long Derive(long seed, long stream)
    {
        ulong x = unchecked((ulong)seed ^ (0x9E3779B97F4A7C15UL * (ulong)(stream + 1)));
        return unchecked((long)SplitMix(ref x));
    }

    public ulong NextUInt64()
    {
        ulong result = RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n), without modulo bias (Lemire's method).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"n must be positive, got {n}");
        ulong bound = (ulong)n;
        ulong threshold = (0UL - bound) % bound;
        while (true)
        {
            ulong r = NextUInt64();
            UInt128 m = (UInt128)r * bound;
            if ((ulong)m >= threshold) return (int)(ulong)(m >> 64);
        }
    }

    public JsonNode SaveState() => new JsonArray(Hex(_s0), Hex(_s1), Hex(_s2), Hex(_s3));

    public static SearchRandom FromState(JsonNode state)
    {
        if (state is not JsonArray { Count: 4 } a)
            throw new FormatException("random state must be an array of four hex words");
        ulong P(int i) => ulong.Parse(a[i]!.GetValue<string>(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return new SearchRandom(P(0), P(1), P(2), P(3));
    }

    private static string Hex(ulong v) => v.ToString("x16", CultureInfo.InvariantCulture);

    private static ulong RotateLeft(ulong x, int k) => (x << k) | (x >> (64 - k));

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
