using TorchTrials.Runner;
using TorchTrials.Runner.Search;

namespace TorchTrials.Tests.Search;

public class TrialIdsTests
{
    [Fact]
    public void A_new_prefix_is_one_safe_path_component_of_ten_characters()
    {
        var prefix = TrialIds.NewPrefix();
        Assert.Equal(10, prefix.Length);
        Assert.Equal(prefix, PathNames.Component(prefix));
        Assert.Equal($"{prefix}_00042", TrialIds.Format(prefix, 42));
    }

    [Fact]
    public void Prefixes_sort_by_creation_time_whatever_their_random_part()
    {
        // Given experiments created one millisecond, one second and one day apart, the later with the smaller random part
        long t0 = new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
        var prefixes = new[] { 0L, 1, 1_000, 86_400_000 }.Select((dt, i) => TrialIds.Encode(t0 + dt, 32_767 - i)).ToList();

        // Then their prefixes are distinct and in creation order
        Assert.Equal(prefixes, prefixes.Order(StringComparer.Ordinal));
        Assert.Equal(prefixes.Count, prefixes.Distinct().Count());
    }

    [Fact]
    public void Experiments_created_in_the_same_millisecond_differ_by_their_random_part()
    {
        long t = new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
        Assert.Equal(32_768, Enumerable.Range(0, 32_768).Select(r => TrialIds.Encode(t, r)).Distinct().Count());
    }
}
