using TorchTrials.Trainables;
using TorchTrials.Trainables.Checkpoints;

namespace TorchTrials.Cluster;

/// <summary>
/// Checkpoints as bytes on the wire: the two files of a <see cref="PersistentCheckpoint"/> (state.safetensors and
/// metadata.json), so what crosses machines is exactly what a persistent checkpoint holds on disk.
/// </summary>
internal static class CheckpointFiles
{
    public static WireCheckpoint Read(string directory, bool persistent, string? resultJson = null) => new()
    {
        Tensors = File.ReadAllBytes(Path.Combine(directory, PersistentCheckpoint.TensorFile)),
        MetadataJson = File.ReadAllText(Path.Combine(directory, PersistentCheckpoint.MetadataFile)),
        Persistent = persistent,
        ResultJson = resultJson,
    };

    /// <summary>The state as a persistent checkpoint's files, written through a scratch folder that is removed after.</summary>
    public static WireCheckpoint FromState(TrainableState state, TrialResult? result, string scratchRoot)
    {
        var scratch = Path.Combine(scratchRoot, "wire-" + Guid.NewGuid().ToString("N"));
        try
        {
            PersistentCheckpoint.Write(scratch, state, result);
            return Read(scratch, persistent: false, result is null ? null : ResultJson.Serialize(result));
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>
    /// Writes the files into <paramref name="directory"/> (through a temporary folder renamed at the end, as
    /// <see cref="PersistentCheckpoint.Write"/> does, so a crash never leaves half a checkpoint under the final name).
    /// </summary>
    public static PersistentCheckpoint Write(WireCheckpoint files, string directory)
    {
        if (files.Tensors is null || files.MetadataJson is null) throw new InvalidDataException("the checkpoint carries no files");
        var full = Path.GetFullPath(directory);
        var temp = full + ".tmp-" + Environment.ProcessId;
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        File.WriteAllBytes(Path.Combine(temp, PersistentCheckpoint.TensorFile), files.Tensors);
        File.WriteAllText(Path.Combine(temp, PersistentCheckpoint.MetadataFile), files.MetadataJson);
        if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        Directory.Move(temp, full);
        return PersistentCheckpoint.Open(full);
    }
}
