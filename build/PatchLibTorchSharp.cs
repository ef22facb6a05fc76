#nullable enable
// Compiled twice: by MSBuild's RoslynCodeTaskFactory (the build-time patch task) and, with
// TORCHTRIALS_RUNTIME defined, into TorchTrials.Gpu (the run-time diagnosis of a failed load).
// The task factory compiles against netstandard2.0, hence the plain loops below.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

#if !TORCHTRIALS_RUNTIME
public class TorchTrialsPatchLibTorchSharp : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required]
    public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

    public string PackageRoot { get; set; } = "";

    /// <summary>Patch even where this machine's libstdc++ has GLIBCXX_3.4.32: output that ships elsewhere (a tool package).</summary>
    public bool Always { get; set; }

    public override bool Execute()
    {
        var libstdcxx = TorchTrials.Gpu.Native.Libstdcxx.Locate();
        foreach (var item in Libraries)
        {
            var path = Path.GetFullPath(item.ItemSpec);
            if (!string.IsNullOrEmpty(PackageRoot) && path.StartsWith(Path.GetFullPath(PackageRoot), StringComparison.Ordinal))
            {
                Log.LogWarning("TorchTrials: refusing to patch {0}: it is inside the NuGet package cache.", path);
                continue;
            }
            var outcome = TorchTrials.Gpu.Native.LibTorchSharpFix.Apply(path, libstdcxx, Always);
            if (outcome.Warning)
                Log.LogWarning("{0}", outcome.Message);
            else
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "{0}", outcome.Message);
        }
        return !Log.HasLoggedErrors;
    }
}
#endif

namespace TorchTrials.Gpu.Native
{
    /// <summary>The GNU symbol-version requirements (.gnu.version_r) of an ELF64 little-endian shared object.</summary>
    internal sealed class ElfVersionNeeds
    {
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlgWeak = 0x2;

        private readonly byte[] _image;
        private readonly List<(string File, string Version, int FlagsOffset)> _entries = new();

        private ElfVersionNeeds(byte[] image)
        {
            _image = image;
        }

        public IEnumerable<(string File, string Version, bool Weak)> Entries =>
            _entries.Select(e => (e.File, e.Version, (BitConverter.ToUInt16(_image, e.FlagsOffset) & VerFlgWeak) != 0));

        public byte[] Image => _image;

        public static ElfVersionNeeds Read(byte[] image)
        {
            if (image.Length < 64 || image[0] != 0x7f || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
                throw new InvalidDataException("not an ELF file");
            if (image[4] != 2 || image[5] != 1)
                throw new InvalidDataException("not a 64-bit little-endian ELF file");

            var needs = new ElfVersionNeeds(image);
            long shoff = BitConverter.ToInt64(image, 0x28);
            int shentsize = BitConverter.ToUInt16(image, 0x3A);
            int shnum = BitConverter.ToUInt16(image, 0x3C);
            for (int i = 0; i < shnum; i++)
            {
                long sh = shoff + (long)i * shentsize;
                if (BitConverter.ToUInt32(image, (int)sh + 4) != ShtGnuVerneed)
                    continue;
                long offset = BitConverter.ToInt64(image, (int)sh + 24);
                int link = (int)BitConverter.ToUInt32(image, (int)sh + 40);
                int count = (int)BitConverter.ToUInt32(image, (int)sh + 44);
                long strtab = BitConverter.ToInt64(image, (int)(shoff + (long)link * shentsize) + 24);

                long vn = offset;
                for (int n = 0; n < count; n++)
                {
                    int cnt = BitConverter.ToUInt16(image, (int)vn + 2);
                    string file = ReadString(image, strtab + BitConverter.ToUInt32(image, (int)vn + 4));
                    long aux = vn + BitConverter.ToUInt32(image, (int)vn + 8);
                    for (int a = 0; a < cnt; a++)
                    {
                        string version = ReadString(image, strtab + BitConverter.ToUInt32(image, (int)aux + 8));
                        needs._entries.Add((file, version, (int)aux + 4));
                        aux += BitConverter.ToUInt32(image, (int)aux + 12);
                    }
                    vn += BitConverter.ToUInt32(image, (int)vn + 12);
                }
            }
            return needs;
        }

        /// <summary>Sets VER_FLG_WEAK on the requirement of <paramref name="version"/>; false when the file does not require it.</summary>
        public bool MarkWeak(string version)
        {
            bool found = false;
            foreach (var e in _entries.Where(e => e.Version == version))
            {
                ushort flags = BitConverter.ToUInt16(_image, e.FlagsOffset);
                flags |= VerFlgWeak;
                _image[e.FlagsOffset] = (byte)(flags & 0xff);
                _image[e.FlagsOffset + 1] = (byte)(flags >> 8);
                found = true;
            }
            return found;
        }

        private static string ReadString(byte[] image, long offset)
        {
            int end = (int)offset;
            while (end < image.Length && image[end] != 0) end++;
            return Encoding.ASCII.GetString(image, (int)offset, end - (int)offset);
        }
    }

    /// <summary>The libstdc++ the dynamic loader will use here, and the GLIBCXX versions it defines.</summary>
    internal sealed class Libstdcxx
    {
        private static readonly string[] Candidates =
        {
            "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/lib64/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
            "/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
        };

        private readonly byte[] _image;

        private Libstdcxx(string path, byte[] image)
        {
            Path = path;
            _image = image;
        }

        public string Path { get; }

        /// <summary>Prefers the copy already mapped into this process (the .NET host links it), else the usual system paths.</summary>
        public static Libstdcxx? Locate()
        {
            string? path = null;
            try
            {
                path = File.ReadLines("/proc/self/maps")
                    .Select(l => l.Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries))
                    .Where(f => f.Length >= 6 && f[5].Contains("libstdc++.so"))
                    .Select(f => f[5])
                    .FirstOrDefault();
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            path ??= Candidates.FirstOrDefault(File.Exists);
            return path is null ? null : new Libstdcxx(path, File.ReadAllBytes(path));
        }

        /// <summary>The newest version named <paramref name="prefix"/>N.N.N that the library defines (e.g. GLIBCXX_3.4.30), or null.</summary>
        public string? Highest(string prefix)
        {
            var needle = Encoding.ASCII.GetBytes(prefix);
            string? best = null;
            int[]? bestParts = null;
            for (int i = 1; i + needle.Length <= _image.Length; i++)
            {
                if (_image[i - 1] != 0) continue;
                int k = 0;
                while (k < needle.Length && _image[i + k] == needle[k]) k++;
                if (k < needle.Length) continue;
                int end = i + k;
                while (end < _image.Length && (_image[end] == (byte)'.' || (_image[end] >= (byte)'0' && _image[end] <= (byte)'9'))) end++;
                if (end == i + k || end >= _image.Length || _image[end] != 0) continue;
                var parts = Encoding.ASCII.GetString(_image, i + k, end - i - k).Split('.');
                var numbers = new int[parts.Length];
                bool ok = true;
                for (int p = 0; p < parts.Length && ok; p++) ok = int.TryParse(parts[p], out numbers[p]);
                if (!ok || (bestParts is not null && CompareVersions(numbers, bestParts) <= 0)) continue;
                best = Encoding.ASCII.GetString(_image, i, end - i);
                bestParts = numbers;
            }
            return best;
        }

        private static int CompareVersions(int[] a, int[] b)
        {
            for (int i = 0; i < Math.Max(a.Length, b.Length); i++)
            {
                int x = i < a.Length ? a[i] : -1, y = i < b.Length ? b[i] : -1;
                if (x != y) return x.CompareTo(y);
            }
            return 0;
        }

        /// <summary>True when the library defines the version node (its name is in the dynamic string table).</summary>
        public bool Defines(string version)
        {
            var needle = Encoding.ASCII.GetBytes(version + "\0");
            for (int i = 0; i + needle.Length <= _image.Length; i++)
            {
                if (i > 0 && _image[i - 1] != 0) continue;
                int k = 0;
                while (k < needle.Length && _image[i + k] == needle[k]) k++;
                if (k == needle.Length) return true;
            }
            return false;
        }
    }

    internal sealed class FixOutcome
    {
        public FixOutcome(bool changed, bool warning, string message)
        {
            Changed = changed;
            Warning = warning;
            Message = message;
        }

        public bool Changed { get; }
        public bool Warning { get; }
        public string Message { get; }
    }

    /// <summary>The one-bit fix of FACTS.md: mark the GLIBCXX_3.4.32 requirement of a copy of libLibTorchSharp.so weak.</summary>
    internal static class LibTorchSharpFix
    {
        public const string MissingVersion = "GLIBCXX_3.4.32";

        /// <param name="always">Mark the requirement weak even when <paramref name="libstdcxx"/> defines it (harmless: no relocation uses it).</param>
        public static FixOutcome Apply(string path, Libstdcxx? libstdcxx, bool always = false)
        {
            byte[] image;
            ElfVersionNeeds needs;
            try
            {
                image = File.ReadAllBytes(path);
                needs = ElfVersionNeeds.Read(image);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or IndexOutOfRangeException)
            {
                return new FixOutcome(false, true, $"TorchTrials: cannot read {path} as an ELF library ({e.Message}); TorchSharp may not load on this machine.");
            }

            var cxxNeeds = needs.Entries.Where(e => e.File.StartsWith("libstdc++", StringComparison.Ordinal)).ToList();
            if (libstdcxx is null)
                return new FixOutcome(false, true, $"TorchTrials: no libstdc++.so.6 found on this machine; TorchSharp needs it (install the libstdc++6 package).");

            var missing = cxxNeeds.Where(e => !e.Weak && (!libstdcxx.Defines(e.Version) || (always && e.Version == MissingVersion))).Select(e => e.Version).ToList();
            if (missing.Count == 0)
                return new FixOutcome(false, false, $"TorchTrials: {path} needs nothing that {libstdcxx.Path} lacks; left as shipped.");

            var unfixable = missing.Where(v => v != MissingVersion).ToList();
            if (unfixable.Count > 0)
                return new FixOutcome(false, true,
                    $"TorchTrials: {path} needs {string.Join(", ", unfixable)} from libstdc++, which {libstdcxx.Path} lacks and which cannot be patched safely; install a newer libstdc++6 (GCC 13 or later) or use a TorchSharp build made for this system.");

            needs.MarkWeak(MissingVersion);
            var temp = path + ".torchtrials-tmp";
            File.WriteAllBytes(temp, needs.Image);
            // A new inode, so a hard link into the package cache (if any) is never written through.
            File.Delete(path);
            File.Move(temp, path);
            var why = libstdcxx.Defines(MissingVersion) ? "so that it also loads where libstdc++ lacks it" : $"{libstdcxx.Path} lacks it";
            return new FixOutcome(true, false, $"TorchTrials: marked {MissingVersion} weak in {path} ({why}; no relocation uses it).");
        }
    }
}
