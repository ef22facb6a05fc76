using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using TorchTrials.Cluster;

namespace TorchTrials.Tests.Cluster;

/// <summary>What crosses the cluster arrives as it was sent, through the serializer Orleans uses between silos.</summary>
public sealed class WireTests
{
    private static T RoundTrip<T>(T value)
    {
        using var services = new ServiceCollection().AddSerializer().BuildServiceProvider();
        var serializer = services.GetRequiredService<Serializer>();
        return serializer.Deserialize<T>(serializer.SerializeToArray(value))!;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_result_batch_keeps_whether_it_ends_the_grant(bool endOfTraining)
    {
        // A batch in the middle of a grant that arrived as its end let the controller grant again: trials trained past their stop.
        var sent = new NodeEventBatch
        {
            Events = [new NodeEvent { Kind = NodeEventKind.Results, TrialId = "t1", Incarnation = 2, Results = ["{}"], EndOfTraining = endOfTraining }],
        };

        var received = Assert.Single(RoundTrip(sent).Events);

        Assert.Equal(endOfTraining, received.EndOfTraining);
        Assert.Equal(NodeEventKind.Results, received.Kind);
        Assert.Equal(2, received.Incarnation);
    }
}
