using TorchSharp;
using static TorchSharp.torch;

namespace TorchTrials.Trainables;

/// <summary>
/// Tensors a trainable built to keep: what its <see cref="Trainable.Setup"/> created, or what a training function
/// created before its first yield. They are detached from TorchSharp's thread-static scope stack (a scope left open
/// across steps would also catch other trials' tensors on the inline executor's shared thread) and held here, so
/// neither a step's scope nor a finalizer frees them, until the owner lets go.
/// </summary>
internal sealed class OwnedTensors : IDisposable
{
    private readonly List<IDisposable> _owned = new();

    public int Count => _owned.Count;

    /// <summary>Takes over everything still attached to <paramref name="scope"/>.</summary>
    public void Adopt(DisposeScope scope)
    {
        var items = scope.DisposablesView;
        scope.Detach(items);
        _owned.AddRange(items);
    }

    public T Add<T>(T tensor) where T : Tensor
    {
        _owned.Add(tensor.DetachFromDisposeScope());
        return tensor;
    }

    public void Dispose()
    {
        // Some may already be disposed by their user (a module's parameters): disposing twice is harmless.
        foreach (var item in _owned) item.Dispose();
        _owned.Clear();
    }
}
