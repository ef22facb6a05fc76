using TorchTrials.Trainables;

namespace TorchTrials.Tests.Trainables;

/// <summary>Issue 10 (code written twice): one range-checked reader for the built-ins' config keys.</summary>
public class TrialConfigRangeTests
{
    [Fact]
    public void A_whole_number_below_its_minimum_is_an_error_naming_the_key()
    {
        var config = TrialConfig.From(("width", 0L), ("depth", -1L));

        Assert.Equal(128, TrialConfig.Empty.GetInt("width", 128, min: 1));
        Assert.Equal(0, TrialConfig.From(("depth", 0L)).GetInt("depth", 2, min: 0));
        var width = Assert.Throws<ArgumentOutOfRangeException>(() => config.GetInt("width", 128, min: 1));
        Assert.StartsWith("config key 'width' must be at least 1, got 0", width.Message);
        Assert.Equal("width", width.ParamName);
        var depth = Assert.Throws<ArgumentOutOfRangeException>(() => config.GetInt("depth", 2, min: 0));
        Assert.StartsWith("config key 'depth' must not be negative, got -1", depth.Message);
    }

    [Theory]
    [InlineData(0.0, true)]
    [InlineData(0.5, true)]
    [InlineData(1.0, false)]
    [InlineData(-0.1, false)]
    [InlineData(double.NaN, false)]
    public void A_number_outside_its_half_open_range_is_an_error_naming_the_key(double value, bool valid)
    {
        var config = TrialConfig.From(("dropout", value));
        if (valid)
        {
            Assert.Equal(value, config.GetDouble("dropout", 0, min: 0, maxExclusive: 1));
            return;
        }
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => config.GetDouble("dropout", 0, min: 0, maxExclusive: 1));
        Assert.StartsWith("config key 'dropout' must be in [0, 1), got ", error.Message);
    }
}
