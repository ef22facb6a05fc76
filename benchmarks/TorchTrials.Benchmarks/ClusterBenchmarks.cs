using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using TorchTrials.Cluster;
using TorchTrials.Gpu;
using TorchTrials.Runner.Execution;
using TorchTrials.Runner.Loggers;
using TorchTrials.Trainables;

namespace TorchTrials.Benchmarks;

/// <summary>
/// Two local worker processes of this executable (<c>cluster-worker</c> mode) on Orleans localhost clustering: the first
/// takes the primary's ports, the second joins it. Killed when disposed.
/// </summary>
internal sealed class LocalCluster : IDisposable
{
    private readonly List<Process> _workers = new();

    public string Connection { get; }

    private LocalCluster(string connection) => Connection = connection;

    public static LocalCluster Start(int workers, string inventory)
    {
        // A gateway port away from the default 30000 (tests, a developer's own workers); the primary's silo port follows it.
        int gateway = 31000 + Random.Shared.Next(0, 900);
        var cluster = new LocalCluster($"localhost:{gateway}?cluster=bench{gateway}");
        try
        {
            // One after the other: the first becomes the primary, the others find its ports taken and join it.
            for (int i = 0; i < workers; i++) cluster.StartWorker($"w{i}", inventory);
            cluster.WaitForNodes(workers);
        }
        catch
        {
            cluster.Dispose();
            throw;
        }
        return cluster;
    }

    private void StartWorker(string name, string inventory)
    {
        var info = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
        // Under `dotnet run` the process is the dotnet host: pass it the entry assembly.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") info.ArgumentList.Add(typeof(LocalCluster).Assembly.Location);
        foreach (var a in new[] { "cluster-worker", "--cluster", Connection, "--name", name, "--inventory", inventory }) info.ArgumentList.Add(a);
        var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start a worker process");
        _workers.Add(process);
        var ready = process.StandardOutput.ReadLineAsync();
        if (!ready.Wait(TimeSpan.FromSeconds(60)))
            throw new InvalidOperationException($"worker {name} did not say ready within 60 s");
        if (ready.Result != "ready")
            throw new InvalidOperationException($"worker {name} did not start: {ready.Result ?? "it exited"}");
        process.StandardOutput.ReadToEndAsync(); // keep draining
    }

    private void WaitForNodes(int count)
    {
        var factory = ClusterExecutorFactory.Connect(Connection);
        var dir = Path.Combine(Path.GetTempPath(), "torchtrials-bench-probe");
        using var executor = (ClusterTrialExecutor)factory.Create(new ExecutorSetup(new DeviceSlotAllocator(DeviceInventory.Simulated(1)),
            TrainableRegistry.CreateDefault(), new ExecutorOptions(), null, null, NullLogger.Instance, dir));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (executor.Nodes.Count < count)
        {
            if (DateTime.UtcNow > deadline) throw new InvalidOperationException($"{executor.Nodes.Count} of {count} workers joined");
            Thread.Sleep(50);
        }
    }

    public void Dispose()
    {
        foreach (var p in _workers)
        {
            try
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                p.WaitForExit(10_000);
            }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        _workers.Clear();
    }

    /// <summary>The hidden worker mode: joins the cluster, says "ready" on stdout, runs until killed.</summary>
    public static int RunWorker(string[] args)
    {
        string? Arg(string name)
        {
            int i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        }
        var worker = ClusterWorker.StartAsync(new WorkerOptions
        {
            Cluster = ClusterConnection.Parse(Arg("--cluster") ?? "localhost"),
            Name = Arg("--name"),
            Inventory = DeviceInventory.Parse(Arg("--inventory") ?? "cpus=2"),
        }).GetAwaiter().GetResult();
        Console.WriteLine("ready");
        Console.Out.Flush();
        Thread.Sleep(Timeout.Infinite);
        GC.KeepAlive(worker);
        return 0;
    }
}

/// <summary>The bookkeeping and throughput workloads in-process and on two local worker processes, alternating run by run.</summary>
public sealed class ClusterBenchmark : IBenchmark
{
    public string Name => "cluster";

    public string Title => "Cluster of 2 local workers vs in-process";

    public BenchOutcome Run(BenchOptions options)
    {
        int trials = options.Quick ? 200 : 2000;
        int results = options.Quick ? 50 : 500;
        var bookLocal = new List<double>();
        var bookCluster = new List<double>();
        var rateLocal = new List<double>();
        var rateCluster = new List<double>();
        using (var bookCl = LocalCluster.Start(2, "cpus=8"))
        {
            var factory = ClusterExecutorFactory.Connect(bookCl.Connection);
            for (int i = 0; i < options.Repeats; i++)
            {
                bookLocal.Add(Stats.Time(() => Runs.Fit(options, "noop", trials, 1, DeviceInventory.Simulated(16), TrialFileOptions.None)) / trials * 1000);
                bookCluster.Add(Stats.Time(() => Runs.Fit(options, "noop", trials, 1, DeviceInventory.Simulated(16), TrialFileOptions.None, executor: factory)) / trials * 1000);
            }
        }
        using (var rateCl = LocalCluster.Start(2, "cpus=48"))
        {
            var factory = ClusterExecutorFactory.Connect(rateCl.Connection);
            for (int i = 0; i < options.Repeats; i++)
            {
                rateLocal.Add(96.0 * results / Stats.Time(() => Runs.Fit(options, "noop", 96, results, DeviceInventory.Simulated(96), new TrialFileOptions(), buffer: 256)));
                rateCluster.Add(96.0 * results / Stats.Time(() => Runs.Fit(options, "noop", 96, results, DeviceInventory.Simulated(96), new TrialFileOptions(), buffer: 256, executor: factory)));
            }
        }
        double rate = Stats.Median(rateCluster);
        const double ray = 96 * 50;
        return new BenchOutcome(Name, Title, "cluster far above Ray's 4,800 results/s (at least 5x)",
            new[]
            {
                new Measurement($"bookkeeping: {trials} one-iteration noop trials, store on, files off, in-process (16 simulated CPUs)", "ms/trial", bookLocal),
                new Measurement("the same on 2 worker processes (8 simulated CPUs each)", "ms/trial", bookCluster),
                new Measurement("bookkeeping ratio, cluster / in-process", "x", bookCluster.Zip(bookLocal, (c, l) => c / l).ToList()),
                new Measurement($"throughput: 96 trials x {results} results, store + all per-trial files, in-process (96 simulated CPUs)", "results/s", rateLocal),
                new Measurement("the same on 2 worker processes (48 simulated CPUs each)", "results/s", rateCluster),
                new Measurement("throughput ratio, in-process / cluster", "x", rateLocal.Zip(rateCluster, (l, c) => l / c).ToList()),
            },
            "cluster results/s / Ray's 4,800", rate / ray, rate > 5 * ray,
            "Each repeat runs the in-process sweep and then the cluster sweep back to back. The workers are this executable started twice in its hidden " +
            "`cluster-worker` mode on Orleans localhost clustering (the first holds the primary's ports, the second joins it); the controller connects as an Orleans client " +
            "and waits until both are listed before any timing. Each cluster sweep includes connecting the client (part of the run's cost).");
    }
}
