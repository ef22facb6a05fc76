using System.Security.Cryptography;
using System.Text;

namespace TorchTrials.Runner;

/// <summary>
/// The one place that turns names, ids, tags and config values into path components, so that params.json, event files,
/// checkpoints and policy files can never leave the experiment folder, whatever a caller chose as a trial id, id prefix
/// or experiment name ("/", "..", control characters).
/// </summary>
public static class PathNames
{
    private const int MaxBytes = 180;

    /// <summary>
    /// <paramref name="name"/> as one safe path component: letters, digits and <c>-_.=+,@~</c> are kept, every other
    /// character becomes '_', and "", "." and ".." are never returned. A name that had to change gets a short hash of the
    /// original appended, so two different names never share a folder; a name that is already safe is returned unchanged.
    /// </summary>
    public static string Component(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var safe = new StringBuilder(name.Length);
        foreach (var c in name) safe.Append(char.IsLetterOrDigit(c) || "-_.=+,@~".Contains(c) ? c : '_');
        var text = safe.ToString();
        if (text == name && name is not ("" or "." or "..") && Encoding.UTF8.GetByteCount(name) <= MaxBytes) return name;
        if (text.Trim('.').Length == 0) text = "_" + text;
        while (Encoding.UTF8.GetByteCount(text) > MaxBytes) text = text[..^1];
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)))[..8];
        return $"{text}-{hash}";
    }
}
