using TorchTrials.Runner;
using TorchTrials.Runner.Callbacks;
using TorchTrials.Tests.Support;

namespace TorchTrials.Tests.Runner;

/// <summary>The controller's callbacks run in the order given; as in Ray's CallbackList, one that throws is not isolated.</summary>
public class CallbackListTests
{
    private sealed class Recorder(string name, List<string> calls, bool throws = false) : ITrialCallback
    {
        public void OnStepBegin(int iteration, IReadOnlyList<Trial> trials)
        {
            calls.Add($"{name}:{iteration}");
            if (throws) throw new InvalidOperationException($"{name} failed");
        }
    }

    [Fact]
    public void Callbacks_hear_each_step_in_order_and_one_that_throws_ends_the_step_before_the_next_hears_it()
    {
        var calls = new List<string>();
        using var h = new Harness(cpus: 1, callbacks: new ITrialCallback[] { new Recorder("a", calls), new Recorder("b", calls, throws: true), new Recorder("c", calls) });
        h.Add(new Trial("noop", stop: Stop.AfterIterations(2)));

        var error = Assert.Throws<InvalidOperationException>(h.Controller.Step);

        Assert.Equal("b failed", error.Message);
        Assert.Equal(new[] { "a:1", "b:1" }, calls);
    }
}
