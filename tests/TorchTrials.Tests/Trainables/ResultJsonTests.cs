using TorchTrials.Trainables;

namespace TorchTrials.Tests.Trainables;

/// <summary>The result row's JSON form: what the logger and the store write, the same type reads back.</summary>
public class ResultJsonTests
{
    private static readonly TrialResult Sample = new()
    {
        Metrics = new KeyValuePair<string, object>[] { new("loss", 0.25), new("epochs", 3L), new("best", true), new("label", "w64") },
        TrainingIteration = 7,
        TimeThisIterS = 0.5,
        TimeTotalS = 3.5,
        TimeSinceRestore = 1.5,
        IterationsSinceRestore = 3,
        TimestepsSinceRestore = 30,
        TimestepsTotal = 70,
        Done = true,
        TrialId = "abc_00001",
        ExperimentTag = "1_lr=0.1",
        Timestamp = 1_764_000_000,
        Pid = 42,
        Hostname = "node",
    };

    [Fact]
    public void The_result_json_form_reads_back_as_the_result_it_was_written_from()
    {
        var back = ResultJson.Parse(ResultJson.Serialize(Sample, TrialConfig.From(("lr", 0.1))));

        Assert.Equal(Sample.Metrics, back.Metrics);
        Assert.Equal(Sample with { Metrics = back.Metrics }, back);
    }

    [Fact]
    public void The_store_form_reads_back_with_every_per_result_field_and_leaves_the_trial_fields_to_the_trial_row()
    {
        var back = ResultJson.Parse(System.Text.Encoding.UTF8.GetString(ResultJson.SerializeCompactUtf8(Sample)));

        Assert.Equal(Sample.Metrics, back.Metrics);
        Assert.Equal(Sample with { Metrics = back.Metrics, TrialId = "", ExperimentTag = "", Pid = 0, Hostname = "" }, back);
    }
}
