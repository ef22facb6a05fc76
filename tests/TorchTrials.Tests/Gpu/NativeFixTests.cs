using TorchTrials.Gpu.Native;

namespace TorchTrials.Tests.Gpu;

/// <summary>The build-time fix of FACTS.md, checked on the shipped library itself.</summary>
public class NativeFixTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "torchtrials-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    internal static string ShippedLibrary()
    {
        var home = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return Path.Combine(home, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    }

    [Fact]
    public void The_copy_in_the_output_has_the_glibcxx_3_4_32_requirement_marked_weak_when_the_system_lacks_it()
    {
        var output = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        var libstdcxx = Libstdcxx.Locate();
        Assert.NotNull(libstdcxx);
        var needs = ElfVersionNeeds.Read(File.ReadAllBytes(output)).Entries.Where(e => e.Version == LibTorchSharpFix.MissingVersion).ToList();
        Assert.NotEmpty(needs);
        Assert.All(needs, n => Assert.Equal(!libstdcxx!.Defines(LibTorchSharpFix.MissingVersion), n.Weak));
    }

    [Fact]
    public void Applying_the_fix_to_a_copy_changes_one_flag_and_is_idempotent_and_the_package_cache_is_untouched()
    {
        var shipped = ShippedLibrary();
        if (!File.Exists(shipped)) return; // a custom NuGet layout; the output test above still covers the fix
        Directory.CreateDirectory(_dir);
        var copy = Path.Combine(_dir, "libLibTorchSharp.so");
        File.Copy(shipped, copy);
        var libstdcxx = Libstdcxx.Locate()!;
        var first = LibTorchSharpFix.Apply(copy, libstdcxx);
        var second = LibTorchSharpFix.Apply(copy, libstdcxx);

        var before = File.ReadAllBytes(shipped);
        var after = File.ReadAllBytes(copy);
        Assert.Equal(before.Length, after.Length);
        int differing = before.Zip(after).Count(p => p.First != p.Second);
        if (libstdcxx.Defines(LibTorchSharpFix.MissingVersion))
        {
            Assert.False(first.Changed);
            Assert.Equal(0, differing);
        }
        else
        {
            Assert.True(first.Changed);
            Assert.Equal(1, differing);
        }
        Assert.False(second.Changed);
        Assert.False(ElfVersionNeeds.Read(before).Entries.Single(e => e.Version == LibTorchSharpFix.MissingVersion).Weak);
    }

    [Fact]
    public void Always_marks_the_requirement_weak_in_a_copy_whatever_this_machines_libstdcxx_has()
    {
        // Given a copy of the shipped shim (the tool package patches its copy so it loads on machines older than the packer's)
        var shipped = ShippedLibrary();
        if (!File.Exists(shipped)) return;
        Directory.CreateDirectory(_dir);
        var copy = Path.Combine(_dir, "libLibTorchSharp.so");
        File.Copy(shipped, copy);

        // When the fix is applied with always
        var outcome = LibTorchSharpFix.Apply(copy, Libstdcxx.Locate(), always: true);

        // Then the GLIBCXX_3.4.32 need is weak and nothing else changed
        Assert.True(outcome.Changed);
        Assert.True(ElfVersionNeeds.Read(File.ReadAllBytes(copy)).Entries.Single(e => e.Version == LibTorchSharpFix.MissingVersion).Weak);
        Assert.Equal(1, File.ReadAllBytes(shipped).Zip(File.ReadAllBytes(copy)).Count(p => p.First != p.Second));
    }

    [Fact]
    public void A_file_that_is_not_an_elf_library_gets_a_clear_warning()
    {
        Directory.CreateDirectory(_dir);
        var bogus = Path.Combine(_dir, "libLibTorchSharp.so");
        File.WriteAllText(bogus, "not a library");
        var outcome = LibTorchSharpFix.Apply(bogus, Libstdcxx.Locate());
        Assert.True(outcome.Warning);
        Assert.Contains("cannot read", outcome.Message);
    }
}
