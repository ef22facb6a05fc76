using System.Globalization;
using System.Security.Cryptography;

namespace TorchTrials.Runner.Search;

/// <summary>
/// Trial ids "{prefix}_{index:D5}", with a prefix the search algorithm draws once, when the experiment is created, and keeps
/// in its saved state (so in the experiment store): a resumed experiment keeps its ids and its new trials continue the same
/// prefix, while two experiments, even of one spec and seed, never share ids when their results are pooled (TensorBoard,
/// a shared results folder). Ray Tune (<c>ray/tune/search/basic_variant.py</c>) draws <c>uuid1().hex[:5]</c> per generator
/// and keeps it in the generator's state the same way. Deviation: 10 characters instead of 5 (20 bits collide between
/// experiments), and the prefix never feeds any random stream, so it does not affect reproducibility.
/// </summary>
public static class TrialIds
{
    // Crockford's base-32 alphabet, lower case: safe in paths and tags, no i, l, o or u to misread.
    private const string Alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
    private const int TimeChars = 7;
    private const int RandomChars = 3;

    /// <summary>
    /// A new prefix: the creation time in milliseconds modulo 2^35 (about 397 days; most significant first, so prefixes
    /// of that window sort by creation) and 15 random bits: two experiments share one only when created in the same
    /// millisecond of that window and drawing the same random bits (1 in 32,768).
    /// </summary>
    public static string NewPrefix() =>
        Encode(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), RandomNumberGenerator.GetInt32(1 << (5 * RandomChars)));

    internal static string Encode(long unixMilliseconds, int random)
    {
        Span<char> chars = stackalloc char[TimeChars + RandomChars];
        ulong time = (ulong)unixMilliseconds;
        for (int i = TimeChars - 1; i >= 0; i--, time >>= 5) chars[i] = Alphabet[(int)(time & 31)];
        for (int i = TimeChars + RandomChars - 1; i >= TimeChars; i--, random >>= 5) chars[i] = Alphabet[random & 31];
        return new string(chars);
    }

    /// <summary>The id of the trial with 0-based <paramref name="index"/> under <paramref name="prefix"/>.</summary>
    public static string Format(string prefix, int index) => $"{prefix}_{index.ToString("D5", CultureInfo.InvariantCulture)}";
}
