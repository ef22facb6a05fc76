using TorchTrials.Gpu;

namespace TorchTrials.Tests.Gpu;

public class ResourcesTests
{
    [Fact]
    public void testSerialization_resources_round_trip_through_json()
    {
        var original = new Resources(1, 0, 0, 1, custom: new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 });
        var json = original.ToJson();
        var back = Resources.FromJson(json);
        Assert.Equal(original, back);
        Assert.Contains("\"custom_resources\":{\"a\":1,\"b\":2}", json);
    }

    [Fact]
    public void testResourceNumericalError_subtracting_thirds_never_goes_negative()
    {
        var resource = new Resources(cpu: 0.99, gpu: 0.99, custom: new Dictionary<string, double> { ["a"] = 0.99 });
        var small = new Resources(cpu: 0.33, gpu: 0.33, custom: new Dictionary<string, double> { ["a"] = 0.33 });
        for (int i = 0; i < 3; i++) resource = Resources.Subtract(resource, small);
        Assert.True(resource.IsNonNegative);
        Assert.True(resource.Cpu.IsZero && resource.Gpu.IsZero && resource.CustomTotal("a").IsZero);
    }

    [Theory]
    [InlineData(double.NaN, "cpu", "finite")]
    [InlineData(-1, "cpu", "negative")]
    [InlineData(double.PositiveInfinity, "cpu", "finite")]
    public void Construction_rejects_bad_amounts_naming_the_field(double value, string field, string why)
    {
        var error = Assert.Throws<ArgumentException>(() => new Resources(cpu: value));
        Assert.Contains($"'{field}'", error.Message);
        Assert.Contains(why, error.Message);
    }

    [Fact]
    public void Construction_names_the_extra_and_custom_fields_too()
    {
        Assert.Contains("'extra_gpu'", Assert.Throws<ArgumentException>(() => new Resources(extraGpu: -0.5)).Message);
        Assert.Contains("'custom_resources.a'", Assert.Throws<ArgumentException>(() => new Resources(custom: new Dictionary<string, double> { ["a"] = double.NaN })).Message);
        Assert.Contains("'memory'", Assert.Throws<ArgumentException>(() => new Resources(memory: -1)).Message);
    }

    [Fact]
    public void Json_with_an_unknown_field_is_rejected_naming_it()
    {
        var error = Assert.Throws<System.Text.Json.JsonException>(() => Resources.FromJson("{\"cpu\":1,\"gpus\":2}"));
        Assert.Contains("'gpus'", error.Message);
    }

    [Fact]
    public void Amounts_print_exactly()
    {
        Assert.Equal("0.33", ResourceAmount.From(0.33, "x").ToString());
        Assert.Equal("2", ResourceAmount.From(2, "x").ToString());
        Assert.Equal("1 CPU, 0.5 GPU, a: 2", new Resources(cpu: 1, gpu: 0.5, custom: new Dictionary<string, double> { ["a"] = 2 }).ToString());
    }
}
