using TorchSharp;
using TorchTrials.Gpu.Native;

namespace TorchTrials.Tests;

public class NativeRuntimeTests
{
    [Fact]
    public void A_tensor_op_and_a_backward_pass_run_on_the_loaded_runtime()
    {
        NativeRuntime.EnsureLoaded();
        using var x = torch.tensor(new float[] { 1f, 2f, 3f }, requires_grad: true);
        using var y = (x * x).sum();
        y.backward();
        Assert.Equal(14f, y.item<float>());
        Assert.Equal(new float[] { 2f, 4f, 6f }, x.grad!.data<float>().ToArray());
    }
}
