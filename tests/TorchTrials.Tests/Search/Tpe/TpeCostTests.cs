using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Trainables;
using Xunit.Abstractions;

namespace TorchTrials.Tests.Search.Tpe;

/// <summary>
/// Measures what a TPE suggestion costs with 100, 1000 and 2000 completed observations on 4 float parameters and prints
/// it (wall clock and this thread's CPU time, which a shared machine disturbs less). It asserts nothing about time; it
/// checks only that suggestions stay valid. Run it in Release for meaningful numbers:
/// <c>dotnet test tests/TorchTrials.Tests -c Release --filter "FullyQualifiedName~TpeCostTests" --logger "console;verbosity=detailed"</c>.
/// </summary>
public class TpeCostTests(ITestOutputHelper output)
{
    [Fact]
    public void Cost_per_suggestion_is_printed_for_100_1000_and_2000_observations()
    {
        var space = new SearchSpace
        {
            ["a"] = Domain.Uniform(0, 1),
            ["b"] = Domain.Uniform(-5, 5),
            ["c"] = Domain.LogUniform(1e-5, 1),
            ["d"] = Domain.Uniform(0, 100),
        };
        var tpe = new TpeSearcher("loss", MetricMode.Min, new TpeOptions { Seed = 1 });
        Assert.True(tpe.SetSearchProperties(null, null, space));
        var random = new SearchRandom(2);
        int added = 0, id = 0;
#if DEBUG
        output.WriteLine("Debug build: the JIT does not optimise; run with -c Release for meaningful numbers");
#endif
        foreach (int target in new[] { 100, 1000, 2000 })
        {
            for (; added < target; added++)
            {
                var config = TrialConfig.From(("a", random.NextDouble()), ("b", random.NextDouble() * 10 - 5),
                    ("c", Math.Pow(10, -5 * random.NextDouble())), ("d", random.NextDouble() * 100));
                tpe.AddEvaluatedPoint(config, Math.Sin(7 * config.GetDouble("a")) + config.GetDouble("b") * config.GetDouble("b"));
            }
            // Warm-up also lets the tiered JIT replace its first, unoptimised code.
            for (int i = 0; i < (target == 100 ? Warmup : 10); i++) tpe.Suggest($"warm{id++}");
            // Five blocks; the fastest block is the least disturbed by whatever else the machine runs.
            const int blocks = Blocks, rounds = Rounds;
            var wall = new List<double>();
            var cpu = new List<double>();
            for (int b = 0; b < blocks; b++)
            {
                double cpu0 = ThreadCpuMilliseconds();
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < rounds; i++)
                {
                    var config = tpe.Suggest($"t{id++}").Config!;
                    Assert.InRange(config.GetDouble("b"), -5, 5);
                }
                wall.Add(watch.Elapsed.TotalMilliseconds / rounds);
                cpu.Add((ThreadCpuMilliseconds() - cpu0) / rounds);
            }
            output.WriteLine($"TPE, 4 float params, {target} observations: {wall.Min():F3} ms per suggestion (best block, wall), " +
                $"median block {SearchTestKit.Median(wall):F3} ms; thread CPU best {cpu.Min():F3} ms, median {SearchTestKit.Median(cpu):F3} ms");
        }
        Assert.Equal(2000, tpe.ObservationCount);
    }

#if DEBUG
    private const int Warmup = 10, Blocks = 2, Rounds = 10;
#else
    private const int Warmup = 300, Blocks = 5, Rounds = 60;
#endif

    private static double ThreadCpuMilliseconds()
    {
        if (!OperatingSystem.IsLinux()) return double.NaN;
        return clock_gettime(ClockThreadCpuTime, out var t) == 0 ? t.Seconds * 1e3 + t.Nanoseconds / 1e6 : double.NaN;
    }

    private const int ClockThreadCpuTime = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int clock_gettime(int clock, out TimeSpec time);
}
