using System.Diagnostics;
using TorchTrials.Benchmarks;
using TorchTrials.Gpu.Native;

if (args.Length > 0 && args[0] == "cluster-worker") return LocalCluster.RunWorker(args);

var quick = args.Contains("--quick");
var only = Arg("--only")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
var repeats = int.TryParse(Arg("--repeats"), out var r) ? r : quick ? 1 : 5;
var output = ResultsWriter.OutputPath(Arg("--out"), quick, only, quick || only is not null ? "" : FindRepoRoot(), Path.GetTempPath(), DateTime.Now);
var work = Path.Combine(Path.GetTempPath(), "torchtrials-bench", Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(work);

IBenchmark[] all =
{
    new BookkeepingBenchmark(),
    new ResultThroughputBenchmark(),
    new StepOverheadBenchmark(),
    new CheckpointBenchmark(),
    new ConcurrencyBenchmark(),
    new SearchOverheadBenchmark(),
    new TpeCostBenchmark(),
    new ParzenKernelBenchmark(),
    new FusedOptimizerBenchmark(),
    new SearchQualityBenchmark(),
    new EarlyStoppingBenchmark(EarlyStoppingBenchmark.Space.Narrow),
    new EarlyStoppingBenchmark(EarlyStoppingBenchmark.Space.Wide),
    new EarlyStoppingBenchmark(EarlyStoppingBenchmark.Space.Fashion),
    new FusionThroughputBenchmark(),
    new FusionSweepBenchmark(),
    new FusionLanesBenchmark(),
    new FusionGpuBenchmark(),
    new ReportBenchmark(),
    new ClusterBenchmark(),
};

if (args.Contains("--list"))
{
    foreach (var b in all) Console.WriteLine($"{b.Name,-14} {b.Title}");
    return 0;
}
var unknown = only?.Where(o => all.All(b => b.Name != o)).ToList() ?? new List<string>();
if (unknown.Count > 0)
{
    Console.Error.WriteLine($"error: unknown benchmark(s) {string.Join(", ", unknown)}; known: {string.Join(", ", all.Select(b => b.Name))}");
    return 2;
}

NativeRuntime.EnsureLoaded();
var options = new BenchOptions(quick, repeats, work);
var outcomes = new List<BenchOutcome>();
var clock = Stopwatch.StartNew();
foreach (var benchmark in all.Where(b => only is null || only.Contains(b.Name)))
{
    Console.WriteLine($"== {benchmark.Title}");
    var outcome = benchmark.Run(options);
    outcomes.Add(outcome);
    foreach (var m in outcome.Measurements) Console.WriteLine($"   {m.Name}: {m.Format()}");
    Console.WriteLine($"   ratio {outcome.Ratio:0.###} ({outcome.RatioDescription}); goal {outcome.Goal}: {(outcome.GoalMet is null ? "n/a" : outcome.GoalMet.Value ? "met" : "MISSED")}");
}
var markdown = ResultsWriter.Markdown(outcomes, options, clock.Elapsed);
if (output is not null)
{
    File.WriteAllText(output, markdown);
    Console.WriteLine($"wrote {output}");
}
if (args.Contains("--keep")) Console.WriteLine($"kept {work}");
else try { Directory.Delete(work, true); } catch (IOException) { }
return 0;

string? Arg(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

static string FindRepoRoot()
{
    var dir = new DirectoryInfo(AppContext.BaseDirectory);
    while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "TorchTrials.sln"))) dir = dir.Parent;
    return dir?.FullName ?? Directory.GetCurrentDirectory();
}
