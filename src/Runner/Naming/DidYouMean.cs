namespace TorchTrials.Runner;

/// <summary>The one place that suggests a known word for a mistyped one: spec keys, algorithm types, search-space keywords, trainable names.</summary>
public static class DidYouMean
{
    /// <summary>
    /// " (did you mean 'x'?)" for the closest known word within two edits (case-insensitive), else for the shortest known
    /// word that <paramref name="word"/> begins (n_startup for n_startup_trials), or "".
    /// </summary>
    public static string Suggest(string word, IEnumerable<string> known)
    {
        var candidates = known.ToList();
        var best = candidates.Select(k => (k, d: Distance(word, k))).Where(x => x.d <= 2 && x.d < word.Length).OrderBy(x => x.d).FirstOrDefault().k
            ?? (word.Length >= 4 ? candidates.Where(k => k.Length > word.Length && k.StartsWith(word, StringComparison.OrdinalIgnoreCase)).MinBy(k => k.Length) : null);
        return best is null ? "" : $" (did you mean '{best}'?)";
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
