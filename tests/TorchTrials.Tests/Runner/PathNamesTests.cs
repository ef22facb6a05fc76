using TorchTrials.Gpu;
using TorchTrials.Runner;
using TorchTrials.Runner.Search;
using TorchTrials.Tests.Support;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Tests.Runner;

public class PathNamesTests
{
    [Theory]
    [InlineData("__fake_dcdaf_00000")]
    [InlineData("lr=0.01,width=64")]
    [InlineData("my-sweep_2026-12-01_23-20-26")]
    public void A_name_that_is_already_safe_is_kept(string name) => Assert.Equal(name, PathNames.Component(name));

    [Theory]
    [InlineData("../../escape")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("")]
    [InlineData("a\\b\0c\n")]
    public void An_unsafe_name_becomes_one_component_that_is_neither_dot_nor_dot_dot(string name)
    {
        var safe = PathNames.Component(name);
        Assert.DoesNotContain('/', safe);
        Assert.DoesNotContain('\\', safe);
        Assert.DoesNotContain('\0', safe);
        Assert.NotEqual(".", safe);
        Assert.NotEqual("..", safe);
        Assert.NotEmpty(safe);
        Assert.Equal(Path.Combine("/x", safe), Path.GetFullPath(Path.Combine("/x", safe)));
    }

    [Fact]
    public void Different_names_never_share_a_component_and_long_ones_are_bounded()
    {
        Assert.NotEqual(PathNames.Component("a/b"), PathNames.Component("a_b"));
        Assert.NotEqual(PathNames.Component("a/b"), PathNames.Component("a\\b"));
        var longName = new string('x', 400);
        Assert.InRange(PathNames.Component(longName).Length, 1, 200);
        Assert.NotEqual(PathNames.Component(longName), PathNames.Component(longName + "y"));
    }

    [Theory]
    [InlineData("x/../../../escape")]
    [InlineData("../../../../escape")]
    public void Trial_ids_that_reach_outside_keep_params_events_and_checkpoints_inside_the_experiment(string prefix)
    {
        // Given trial ids "{prefix}_00000".. and every per-trial file on: params.json, progress.csv, result.json, events, checkpoints
        using var temp = new TempDir();
        var storage = Path.Combine(temp.Path, "a", "b", "results");
        var tuner = new Tuner("__fake", new SearchSpace { { "lr", Domain.Grid(0.1, 0.2) } },
            new TuneConfig { Variants = new BasicVariantOptions { TrialIdPrefix = prefix } },
            new RunConfig
            {
                Name = "exp",
                StoragePath = storage,
                Stop = Stop.AfterIterations(2),
                Checkpoint = new CheckpointConfig { Frequency = 1, Storage = CheckpointStorage.Persistent },
                ResourcesPerTrial = new Resources(cpu: 1),
                Inventory = DeviceInventory.Simulated(2),
                Executor = ExecutorKind.Inline,
            });

        // When the sweep runs
        var grid = tuner.Fit();

        // Then every file it wrote is inside the experiment folder, and each trial has its files there
        Assert.Equal(2, grid.NumTerminated);
        var experiment = Path.Combine(storage, "exp") + Path.DirectorySeparatorChar;
        var files = Directory.EnumerateFiles(temp.Path, "*", SearchOption.AllDirectories).ToList();
        Assert.All(files, f => Assert.StartsWith(experiment, f, StringComparison.Ordinal));
        Assert.Equal(2, files.Count(f => Path.GetFileName(f) == "params.json"));
        // two trial runs' event files and the experiment's HParams record in the experiment folder itself
        var events = files.Where(f => Path.GetFileName(f).StartsWith("events.out.tfevents.", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, events.Count);
        Assert.Single(events, f => Path.GetDirectoryName(f) + Path.DirectorySeparatorChar == experiment);
        Assert.True(files.Count(f => Path.GetFileName(f) == PersistentCheckpoint.MetadataFile) >= 2);
    }
}
