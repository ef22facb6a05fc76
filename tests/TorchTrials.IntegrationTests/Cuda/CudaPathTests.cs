using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Gpu.Cuda;
using TorchTrials.Runner;
using TorchTrials.Runner.Loggers;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.IntegrationTests.Cuda;

/// <summary>The CUDA code paths: streams through LibTorch's C shim, slots on real devices, training and checkpoints on the GPU.</summary>
public class CudaPathTests
{
    [NvmlFact]
    public void Nvml_lists_the_gpus_with_their_memory()
    {
        var inventory = DeviceInventory.Detect();
        Assert.NotEmpty(inventory.Gpus);
        Assert.All(inventory.Gpus, g => Assert.True(g.TotalMemoryBytes > 0, $"GPU {g.Index} reports no memory"));
    }

    [CudaFact]
    public void Each_slot_gets_a_pool_stream_that_a_thread_can_make_current_and_synchronise()
    {
        var streams = CudaStreamApi.TryLoad(out _)!;
        var allocator = new DeviceSlotAllocator(DeviceInventory.Detect(), streams);
        var slot = allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.25), "a")!;
        Assert.NotNull(slot.Stream);
        Assert.Equal(DeviceType.CUDA, slot.TorchDevice.type);

        var thread = new Thread(() =>
        {
            streams.SetCurrent(slot.Stream!);
            using var x = torch.ones(1024, 1024, device: slot.TorchDevice);
            using var y = x.matmul(x);
            streams.Synchronize(slot.Stream!);
            Assert.Equal(1024f, y[0, 0].item<float>());
        });
        thread.Start();
        thread.Join();
        allocator.Release(slot);
    }

    [CudaFact]
    public void A_memory_checkpoint_stays_on_the_device_and_restores_without_a_host_copy()
    {
        var allocator = new DeviceSlotAllocator(DeviceInventory.Detect(), CudaStreamApi.TryLoad(out _));
        var slot = allocator.TryAllocate(new Resources(cpu: 1, gpu: 0.5), "t")!;
        using var host = TrainableHost.Create(TrainableRegistry.CreateDefault().Get("mlp_digits"),
            TrialConfig.From(("width", 64), ("depth", 1)), new TrainableContext { TrialId = "t", Slot = slot });
        host.Train();
        var checkpoint = MemoryCheckpoint.FromState(host.Save(), null);
        Assert.Equal(DeviceType.CUDA, checkpoint.HomeDevice!.type);
        Assert.Equal(MemoryLocation.Device, checkpoint.Location);
        var expected = host.Train();
        host.Restore(checkpoint);
        var again = host.Train();
        Assert.Equal(expected.GetDouble("val_loss"), again.GetDouble("val_loss"), 4);
        checkpoint.Delete();
    }

    [CudaFact]
    public void Two_half_gpu_trials_train_concurrently_on_their_own_streams()
    {
        var dir = Path.Combine(Path.GetTempPath(), "torchtrials-cuda", Guid.NewGuid().ToString("N"));
        var grid = new Tuner("mlp_digits", new SearchSpace { { "lr", Domain.Grid(1e-3, 3e-3) }, { "width", 128 } },
            new TuneConfig { Metric = "val_accuracy", Mode = MetricMode.Max },
            new RunConfig
            {
                StoragePath = dir,
                Stop = Stop.AfterIterations(5),
                ResourcesPerTrial = new Resources(cpu: 1, gpu: 0.5),
                Loggers = TrialFileOptions.None,
            }).Fit();
        Assert.Equal(2, grid.NumTerminated);
        Assert.True(grid.GetBestResult().LastResult!.GetDouble("val_accuracy") > 0.9);
    }
}
