using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace TorchTrials.Trainables.Checkpoints;

/// <summary>Where a checkpoint lives: on the trial's device (spilling to host and disk under pressure), or in files.</summary>
public enum CheckpointStorage
{
    Memory,
    Persistent,
}

/// <summary>A saved trainable state and the result it was taken at.</summary>
public abstract class Checkpoint : IDisposable
{
    protected Checkpoint(TrialResult? result) => Result = result;

    public abstract CheckpointStorage Storage { get; }

    /// <summary>The last result before the save; null for checkpoints given from outside (restore_path).</summary>
    public TrialResult? Result { get; internal set; }

    public long TrainingIteration => Result?.TrainingIteration ?? 0;

    /// <summary>The state on <paramref name="device"/>; the caller owns the returned snapshot.</summary>
    public abstract TrainableState LoadState(Device device);

    /// <summary>
    /// Copies the checkpoint's model tensors (named "model.NAME" as <see cref="TrainableState.Capture(nn.Module?, optim.Optimizer?, System.Text.Json.Nodes.JsonObject?)"/>
    /// names them) into <paramref name="model"/> in place, on the model's device, and the optimizer's state into
    /// <paramref name="optimizer"/> when one is given; returns <paramref name="model"/>. The model must be built as the
    /// trial built it: a tensor missing on either side, or of another shape, is an error naming it.
    /// </summary>
    public TModel LoadInto<TModel>(TModel model, optim.Optimizer? optimizer = null) where TModel : nn.Module
    {
        ArgumentNullException.ThrowIfNull(model);
        var live = TrainableState.ModelTensors(model);
        using var state = LoadState(live.Count > 0 ? live[0].Value.device : CPU);
        foreach (var (name, tensor) in live)
        {
            if (!state.TryGetTensor(name, out var saved))
                throw new InvalidOperationException($"checkpoint {this} has no tensor {name}: build the model as the trial did (same config)");
            if (!saved.shape.SequenceEqual(tensor.shape))
                throw new InvalidOperationException($"checkpoint {this}: {name} has shape [{string.Join(", ", saved.shape)}], the model's is [{string.Join(", ", tensor.shape)}]: build the model as the trial did (same config)");
        }
        var names = live.Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        if (state.Tensors.FirstOrDefault(t => t.Key.StartsWith("model.", StringComparison.Ordinal) && !names.Contains(t.Key)).Key is { } extra)
            throw new InvalidOperationException($"checkpoint {this} has {extra}, which the model lacks: build the model as the trial did (same config)");
        state.RestoreInto(live, optimizer);
        return model;
    }

    /// <summary>Frees what the checkpoint holds (device memory, or its files for persistent checkpoints).</summary>
    public abstract void Delete();

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) { }
}

/// <summary>
/// A checkpoint in a directory: <c>state.safetensors</c> (every tensor, readable by PyTorch's safetensors)
/// and <c>metadata.json</c> (the state's metadata and the result it was taken at). Written to a temporary
/// directory and renamed, so a crash never leaves a half-written checkpoint under the final name.
/// </summary>
public sealed class PersistentCheckpoint : Checkpoint
{
    public const string TensorFile = "state.safetensors";
    public const string MetadataFile = "metadata.json";

    private PersistentCheckpoint(string directory, TrialResult? result) : base(result) => Directory = directory;

    public override CheckpointStorage Storage => CheckpointStorage.Persistent;

    public string Directory { get; }

    public static PersistentCheckpoint Write(string directory, TrainableState state, TrialResult? result)
    {
        var full = Path.GetFullPath(directory);
        var temp = full + ".tmp-" + Environment.ProcessId;
        if (System.IO.Directory.Exists(temp)) System.IO.Directory.Delete(temp, recursive: true);
        System.IO.Directory.CreateDirectory(temp);
        SafeTensors.Write(Path.Combine(temp, TensorFile), state.Tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var meta = new JsonObject
        {
            ["metadata"] = state.Metadata.DeepClone(),
            ["result"] = result?.ToJsonObject(),
            ["training_iteration"] = result?.TrainingIteration ?? 0,
        };
        File.WriteAllText(Path.Combine(temp, MetadataFile), SafeTensors.MetadataJson(meta));
        if (System.IO.Directory.Exists(full)) System.IO.Directory.Delete(full, recursive: true);
        System.IO.Directory.Move(temp, full);
        return new PersistentCheckpoint(full, result);
    }

    /// <summary>Opens a checkpoint directory written by <see cref="Write"/>; throws naming the path when it is not one or is incomplete.</summary>
    public static PersistentCheckpoint Open(string directory)
    {
        var full = Path.GetFullPath(directory);
        var metaPath = Path.Combine(full, MetadataFile);
        if (!File.Exists(metaPath) || !File.Exists(Path.Combine(full, TensorFile)))
            throw new FileNotFoundException($"'{directory}' is not a checkpoint directory (needs {TensorFile} and {MetadataFile})", metaPath);
        SafeTensors.Verify(Path.Combine(full, TensorFile));
        var meta = JsonNode.Parse(File.ReadAllText(metaPath)) as JsonObject
            ?? throw new InvalidDataException($"{metaPath} is not a JSON object");
        var result = meta["result"] is JsonObject r ? ResultJson.Read(r) : null;
        return new PersistentCheckpoint(full, result);
    }

    public override TrainableState LoadState(Device device)
    {
        var (tensors, _) = SafeTensors.Read(Path.Combine(Directory, TensorFile), device);
        var meta = JsonNode.Parse(File.ReadAllText(Path.Combine(Directory, MetadataFile))) as JsonObject;
        var metadata = meta?["metadata"] as JsonObject ?? new JsonObject();
        return new TrainableState(tensors, (JsonObject)metadata.DeepClone());
    }

    public override void Delete()
    {
        if (System.IO.Directory.Exists(Directory)) System.IO.Directory.Delete(Directory, recursive: true);
    }

    public override string ToString() => Directory;

    internal static JsonSerializerOptions Indented { get; } = new() { WriteIndented = true };
}
