using System.Diagnostics;
using TorchSharp;
using TorchTrials.Gpu;
using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;
using static TorchSharp.torch;

namespace TorchTrials.Benchmarks;

/// <summary>
/// Save plus restore of a trial's state: through TorchTrials' in-memory checkpoints, as a plain hand-written tensor
/// clone and copy back, and through files as Ray's PBT pays.
/// </summary>
public sealed class CheckpointBenchmark : IBenchmark
{
    public string Name => "checkpoint";

    public string Title => "Checkpoint save + restore";

    public BenchOutcome Run(BenchOptions options)
    {
        int rounds = options.Quick ? 20 : 200;
        int diskRounds = options.Quick ? 3 : 20;
        var memory = new List<double>();
        var plain = new List<double>();
        var disk = new List<double>();
        long bytes = 0;
        var thread = new Thread(() =>
        {
            torch.set_num_threads(1);
            var allocator = new DeviceSlotAllocator(DeviceInventory.Simulated(2));
            var slot = allocator.TryAllocate(new Resources(cpu: 1), "bench")!;
            using var host = TrainableHost.Create(TrainableRegistry.CreateDefault().Get("mlp_digits"),
                TrialConfig.From(("width", 256), ("depth", 2), ("lr", 1e-3)), new TrainableContext { TrialId = "bench", Slot = slot });
            host.Train();
            var store = MemoryCheckpointStore.Unbounded(Path.Combine(options.WorkDirectory, "spill"));
            var live = ((Trainables.Builtin.SupervisedTrainable)host.Trainable).LiveTensors().ToList();
            using (var probe = host.Save()) bytes = probe.ByteSize;

            void MemoryRound()
            {
                var checkpoint = store.Add(MemoryCheckpoint.Pending(null));
                checkpoint.Complete(host.Save());
                host.Restore(checkpoint);
                checkpoint.Delete();
            }

            void PlainRound()
            {
                using var _ = no_grad();
                var clones = live.Select(t => t.clone()).ToList();
                for (int i = 0; i < live.Count; i++) live[i].copy_(clones[i]);
                foreach (var c in clones) c.Dispose();
            }

            for (int r = 0; r < options.Repeats; r++)
            {
                // Alternate the two round by round, so both see the same allocator and cache state; keep the median round.
                var m = new List<double>(rounds);
                var p = new List<double>(rounds);
                MemoryRound();
                PlainRound();
                for (int i = 0; i < rounds; i++)
                {
                    m.Add(Stats.Time(MemoryRound) * 1000);
                    p.Add(Stats.Time(PlainRound) * 1000);
                }
                memory.Add(Stats.Median(m));
                plain.Add(Stats.Median(p));
                disk.Add(PerRound(diskRounds, () =>
                {
                    var dir = Path.Combine(options.WorkDirectory, "disk-checkpoint");
                    using (var state = host.Save()) PersistentCheckpoint.Write(dir, state, null);
                    host.Restore(PersistentCheckpoint.Open(dir));
                }));
            }
        });
        thread.Start();
        thread.Join();
        double ratio = Stats.Median(memory) / Stats.Median(plain);
        double diskRatio = Stats.Median(disk) / Stats.Median(memory);
        return new BenchOutcome(Name, Title, "in-memory at most 1.5x a plain clone; at least 20x faster than the disk round trip",
            new[]
            {
                new Measurement($"in-memory checkpoint: save (clone on the device) + restore (copy into the live tensors), {bytes / 1024} KiB of model and Adam state; median of {rounds} rounds", "ms", memory),
                new Measurement("plain clone + copy back of the same tensors, by hand, alternating round by round with the above", "ms", plain),
                new Measurement("disk round trip: safetensors + metadata written, fsynced, read and restored", "ms", disk),
            },
            "in-memory / plain clone", ratio, ratio <= 1.5 && diskRatio >= 20,
            $"Disk round trip / in-memory = {diskRatio:0.#}x. The model is the digits MLP 64-256-256-10 with Adam on the CPU; on a GPU the in-memory path stays device to device while the disk path adds the device-to-host copy.");
    }

    private static double PerRound(int rounds, Action action)
    {
        action();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < rounds; i++) action();
        return clock.Elapsed.TotalMilliseconds / rounds;
    }
}

/// <summary>Aggregate training throughput of concurrent trials on this machine's cores.</summary>
public sealed class ConcurrencyBenchmark : IBenchmark
{
    public string Name => "concurrency";

    public string Title => "Concurrent trials on CPU";

    public BenchOutcome Run(BenchOptions options)
    {
        int epochs = options.Quick ? 2 : 20;
        const int trials = 4;
        var space = new Runner.Search.SearchSpace { { "width", 256 }, { "depth", 2 }, { "batch_size", 64 }, { "lr", 1e-3 } };
        long samplesPerEpoch = Trainables.Data.DigitsDataset.Split().TrainCount;
        double Throughput(int concurrent, int threads) =>
            trials * epochs * samplesPerEpoch / Stats.Time(() => Runs.Fit(options, "mlp_digits", trials, epochs, DeviceInventory.Simulated(Environment.ProcessorCount),
                Runner.Loggers.TrialFileOptions.None, space: space, maxConcurrent: concurrent, threads: threads, cpu: 1));
        var sequential = new List<double>();
        var sequentialAllThreads = new List<double>();
        var concurrent = new List<double>();
        var oversubscribed = new List<double>();
        int cores = Environment.ProcessorCount;
        for (int r = 0; r < options.Repeats; r++)
        {
            sequential.Add(Throughput(1, 1));
            sequentialAllThreads.Add(Throughput(1, cores));
            concurrent.Add(Throughput(cores, 1));
            oversubscribed.Add(Throughput(cores, cores));
        }
        double ratio = Stats.Median(concurrent) / Stats.Median(sequential);
        return new BenchOutcome(Name, Title, $"{cores} concurrent trials beat one at a time (measured, no fixed goal on CPU)",
            new[]
            {
                new Measurement("one trial at a time, 1 LibTorch thread", "samples/s", sequential),
                new Measurement($"one trial at a time, {cores} LibTorch threads", "samples/s", sequentialAllThreads),
                new Measurement($"{cores} trials at once, 1 thread each (the executor's choice: threads = the slot's CPUs)", "samples/s", concurrent),
                new Measurement($"{cores} trials at once, {cores} threads each (oversubscribed)", "samples/s", oversubscribed),
            },
            $"{cores} concurrent / one at a time (1 thread)", ratio, null,
            $"{trials} trials x {epochs} epochs of the digits MLP (64-256-256-10, batch 64). The executor sets each trial thread's LibTorch intra-op threads to its slot's whole CPUs, so N trials on N cores do not oversubscribe.");
    }
}
