using TorchTrials.Gpu;

namespace TorchTrials.Tests.Gpu;

public class DeviceSlotAllocatorTests
{
    private static DeviceSlotAllocator Machine(int cpus = 8, int gpus = 2, double gib = 16, Dictionary<string, double>? custom = null) =>
        new(DeviceInventory.Simulated(cpus, gpus, gib, custom));

    [Fact]
    public void Fractional_requests_are_packed_on_one_device_before_the_next()
    {
        var allocator = Machine();
        var a = allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.5), "a")!;
        var b = allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.25), "b")!;
        var c = allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.25), "c")!;
        Assert.Equal(0, a.Gpus.Single().DeviceIndex);
        Assert.Equal(0, b.Gpus.Single().DeviceIndex);
        Assert.Equal(0, c.Gpus.Single().DeviceIndex);
        var d = allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.5), "d")!;
        Assert.Equal(1, d.Gpus.Single().DeviceIndex);
    }

    [Fact]
    public void A_fractional_request_is_never_split_across_two_devices()
    {
        var allocator = Machine(gpus: 2);
        allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.6), "a");
        allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.6), "b");
        // 0.8 GPU is free in total (0.4 + 0.4) but no single device has 0.5.
        Assert.Null(allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.5), "c"));
    }

    [Fact]
    public void Memory_caps_follow_the_fraction_or_the_request_and_admission_respects_them()
    {
        var allocator = Machine(gpus: 1, gib: 16);
        var half = allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.5), "a")!;
        Assert.Equal(8L << 30, half.GpuMemoryCapBytes);
        var explicitCap = allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.1, gpuMemory: 7L << 30), "b")!;
        Assert.Equal(7L << 30, explicitCap.GpuMemoryCapBytes);
        // 0.3 GPU of fraction is still free, but only 1 GiB of memory: a 2 GiB cap does not fit.
        Assert.Null(allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.1, gpuMemory: 2L << 30), "c"));
        Assert.NotNull(allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.1, gpuMemory: 1L << 30), "d"));
    }

    [Fact]
    public void Whole_gpu_requests_take_whole_free_devices()
    {
        var allocator = Machine(gpus: 3);
        allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.1), "frac");
        var two = allocator.TryAllocate(new Resources(cpu: 1, gpu: 2), "two")!;
        Assert.Equal(new[] { 1, 2 }, two.Gpus.Select(g => g.DeviceIndex));
    }

    [Theory]
    [InlineData(16, 0, "requests 16 CPUs but this machine has 8")]
    [InlineData(1, 3, "requests 3 GPUs but this machine has 2")]
    [InlineData(1, 1.5, "must be a whole number of GPUs")]
    public void Requests_that_can_never_fit_are_rejected_at_submission(double cpu, double gpu, string message)
    {
        var allocator = Machine();
        var error = Assert.Throws<ResourceRequestException>(() => allocator.TryAllocate(new Resources(cpu: cpu, gpu: gpu), "x"));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Unknown_or_too_large_custom_resources_never_fit()
    {
        var allocator = Machine(custom: new Dictionary<string, double> { ["a"] = 2 });
        Assert.Contains("does not offer", allocator.WhyNeverFits(new Resources(custom: new Dictionary<string, double> { ["b"] = 1 })));
        Assert.Contains("has 2", allocator.WhyNeverFits(new Resources(custom: new Dictionary<string, double> { ["a"] = 3 })));
        Assert.Null(allocator.WhyNeverFits(new Resources(custom: new Dictionary<string, double> { ["a"] = 2 })));
    }

    [Fact]
    public void Every_grant_is_released_exactly_once()
    {
        var allocator = Machine();
        var slot = allocator.TryAllocate(new Resources(cpu: 2, gpu: 0.5), "a")!;
        allocator.Release(slot);
        Assert.Throws<InvalidOperationException>(() => allocator.Release(slot));
        Assert.Equal(Resources.None, allocator.Committed);
        Assert.Throws<InvalidOperationException>(() => Machine().Release(allocator.TryAllocate(new Resources(cpu: 1), "b")!));
    }

    [Fact]
    public void Concurrent_grants_and_releases_keep_exact_accounts()
    {
        var allocator = Machine(cpus: 4, gpus: 2);
        Parallel.For(0, 2000, i =>
        {
            var slot = allocator.TryAllocate(new Resources(cpu: 0.5, gpu: 0.25), $"t{i}");
            if (slot is not null) allocator.Release(slot);
        });
        Assert.Equal(0, allocator.LiveSlots);
        Assert.Equal(Resources.None, allocator.Committed);
    }

    [Fact]
    public void Losing_a_device_marks_its_slots_lost_once_and_blocks_new_grants_until_restored()
    {
        var allocator = Machine(gpus: 1);
        var slot = allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.5), "a")!;
        Assert.Single(allocator.LoseGpu(0));
        Assert.True(slot.IsLost);
        Assert.Same(slot, allocator.TakeLostSlots().Single());
        Assert.Empty(allocator.TakeLostSlots());
        Assert.Null(allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.25), "b"));
        allocator.Release(slot);
        allocator.RestoreGpu(0);
        Assert.NotNull(allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.25), "c"));
    }

    [Fact]
    public void Usage_is_described_in_one_line()
    {
        var allocator = Machine(cpus: 4, gpus: 1, custom: new Dictionary<string, double> { ["a"] = 2 });
        allocator.TryAllocate(new Resources(cpu: 2, gpu: 0.5, custom: new Dictionary<string, double> { ["a"] = 2 }), "a");
        Assert.Equal("Resources requested: 2/4 CPUs, 0.5/1 GPUs, 8.0/16.0 GiB GPU memory (a: 2/2)", allocator.DescribeUsage());
    }

    [Fact]
    public void Simulated_inventories_parse_from_text_and_describe_themselves()
    {
        var inventory = DeviceInventory.Parse("cpus=4,gpus=2x16GiB,a=2");
        Assert.Equal(4, inventory.CpuCores);
        Assert.Equal(2, inventory.Gpus.Length);
        Assert.Equal(16L << 30, inventory.Gpus[0].TotalMemoryBytes);
        Assert.Equal(2, inventory.Custom["a"].ToDouble());
        Assert.Contains("GPU 1: Simulated GPU, 16.0 GiB (simulated)", inventory.Describe());
        Assert.Contains("'gpus'", Assert.Throws<FormatException>(() => DeviceInventory.Parse("gpus=two")).Message);
    }

    [Fact]
    public void Slots_on_simulated_gpus_place_tensors_on_the_cpu()
    {
        var slot = Machine().TryAllocate(new Resources(cpu: 3, gpu: 0.5), "a")!;
        Assert.Equal(TorchSharp.DeviceType.CPU, slot.TorchDevice.type);
        Assert.Equal(3, slot.CpuThreads);
        Assert.Null(slot.Stream);
    }
}
