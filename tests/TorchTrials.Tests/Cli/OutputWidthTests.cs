using TorchTrials.Cli.Rendering;

namespace TorchTrials.Tests.Cli;

public sealed class OutputWidthTests
{
    [Theory]
    [InlineData("80", 80)]
    [InlineData("132", 132)]
    [InlineData(null, OutputWidth.Unwrapped)]
    [InlineData("", OutputWidth.Unwrapped)]
    [InlineData("0", OutputWidth.Unwrapped)]
    [InlineData("-5", OutputWidth.Unwrapped)]
    [InlineData("wide", OutputWidth.Unwrapped)]
    public void Redirected_output_takes_a_positive_columns_and_is_unwrapped_otherwise(string? columns, int width) =>
        Assert.Equal(width, OutputWidth.ForRedirected(columns));
}
