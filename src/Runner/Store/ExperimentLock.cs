using System.Globalization;
using System.Text.Json.Nodes;

namespace TorchTrials.Runner.Store;

/// <summary>An experiment that cannot be opened as asked: it exists already, is owned by another process, or its store is damaged.</summary>
public class ExperimentOpenException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>The experiment is owned by another live process (<see cref="Owner"/> says which, when it could be read).</summary>
public sealed class ExperimentInUseException(string directory, ExperimentOwner? owner)
    : ExperimentOpenException(owner is null
        ? $"the experiment in '{directory}' is in use by another process (its owner is still starting)"
        : $"the experiment in '{directory}' is in use by process {owner.Pid} on {owner.Host} (since {owner.Started:u}); wait for it to end or stop it first")
{
    public string Directory { get; } = directory;

    public ExperimentOwner? Owner { get; } = owner;
}

/// <summary>Who holds an experiment's lock: process id, host and when it took the lock.</summary>
public sealed record ExperimentOwner(int Pid, string Host, DateTimeOffset Started);

/// <summary>
/// One process owns an experiment at a time (DESIGN.md, Durability rules). The owner holds an exclusive OS lock on
/// <c>experiment.lock</c> for its lifetime: a <see cref="FileStream"/> opened with <see cref="FileShare.None"/>, which .NET
/// takes as <c>flock(LOCK_EX | LOCK_NB)</c> on Unix and as a sharing lock on Windows, so the OS releases it when the process
/// dies and a crash never leaves a stale lock. .NET takes a shared flock on every other open of a file, so the owner's
/// pid, host and start time live in <c>experiment.owner</c>, written once the lock is held and only ever read by others.
/// Deviation from Ray Tune, which has no such lock. The lock file is never deleted: deleting it would let a process that
/// opened the old file and one that creates a new one both hold "the" lock.
/// </summary>
public sealed class ExperimentLock : IDisposable
{
    public const string LockFileName = "experiment.lock";
    public const string OwnerFileName = "experiment.owner";

    private readonly FileStream _lock;
    private readonly string _ownerPath;
    private bool _disposed;

    private ExperimentLock(FileStream stream, string directory, ExperimentOwner owner)
    {
        _lock = stream;
        Directory = directory;
        _ownerPath = Path.Combine(directory, OwnerFileName);
        Owner = owner;
    }

    public string Directory { get; }

    public ExperimentOwner Owner { get; }

    /// <summary>
    /// Takes the lock of the experiment in <paramref name="directory"/> (which must exist), or throws
    /// <see cref="ExperimentInUseException"/> naming the owner when another process (or another lock in this one) holds it.
    /// </summary>
    public static ExperimentLock Acquire(string directory)
    {
        directory = Path.GetFullPath(directory);
        FileStream stream;
        try
        {
            stream = new FileStream(Path.Combine(directory, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (IsHeldElsewhere(e))
        {
            throw new ExperimentInUseException(directory, WaitForOwner(directory));
        }
        var owner = new ExperimentOwner(Environment.ProcessId, Environment.MachineName, DateTimeOffset.UtcNow);
        try
        {
            var json = new JsonObject
            {
                ["pid"] = owner.Pid,
                ["host"] = owner.Host,
                ["started"] = owner.Started.ToString("O", CultureInfo.InvariantCulture),
            }.ToJsonString();
            // Replaced in one rename, so a reader sees the old owner or the new one, never half a file.
            var temp = Path.Combine(directory, $"{OwnerFileName}.tmp-{Environment.ProcessId}");
            File.WriteAllText(temp, json);
            File.Move(temp, Path.Combine(directory, OwnerFileName), overwrite: true);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return new ExperimentLock(stream, directory, owner);
    }

    /// <summary>The owner recorded in <paramref name="directory"/>, or null. It may be a dead process's: only a held lock says it is live.</summary>
    public static ExperimentOwner? ReadOwner(string directory)
    {
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, OwnerFileName)));
            return new ExperimentOwner(
                node!["pid"]!.GetValue<int>(),
                node["host"]?.GetValue<string>() ?? "?",
                DateTimeOffset.Parse(node["started"]!.GetValue<string>(), CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or NullReferenceException
                                       or FormatException or InvalidOperationException)
        {
            return null;
        }
    }

    // flock's EWOULDBLOCK (11 on Linux, 35 on macOS) or Windows' sharing and lock violations; any other failure is not "in use".
    private static bool IsHeldElsewhere(IOException e) =>
        e.GetType() == typeof(IOException) && e.HResult is 11 or 35 or unchecked((int)0x80070020) or unchecked((int)0x80070021);

    // The owner writes its file right after taking the lock: give it a moment rather than report an unknown owner.
    private static ExperimentOwner? WaitForOwner(string directory)
    {
        var deadline = DateTime.UtcNow.AddSeconds(2);
        while (true)
        {
            var owner = ReadOwner(directory);
            if (owner is not null || DateTime.UtcNow >= deadline) return owner;
            Thread.Sleep(50);
        }
    }

    /// <summary>Releases the lock; the owner file goes first so nobody reads this process as the owner after it.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (ReadOwner(Directory) is { } recorded && recorded.Pid == Owner.Pid && recorded.Started == Owner.Started) File.Delete(_ownerPath);
        }
        catch (IOException)
        {
        }
        _lock.Dispose();
    }
}
