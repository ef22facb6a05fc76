using TorchTrials.Gpu.Native;

namespace TorchTrials.Tests.Gpu;

/// <summary>Issue 11: a load failure names the real cause first, in one line, and the fix.</summary>
public class NativeLoadDiagnosisTests
{
    private const string Shim = "/home/me/app/bin/runtimes/linux-x64/native/libLibTorchSharp.so";
    private const string SystemLibstdcxx = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";

    [Fact]
    public void A_libstdcxx_without_glibcxx_3_4_32_is_named_with_its_newest_version_and_the_package_fix()
    {
        // Given the shim of TorchSharp 0.107 on Debian 12, unpatched
        var diagnosis = new NativeLoadDiagnosis(Shim, new[] { "GLIBCXX_3.4.32" }, SystemLibstdcxx, "GLIBCXX_3.4.30");

        // When it is described before TorchSharp runs
        var line = diagnosis.Describe(null);

        // Then one line says what is missing, where, and what to do
        Assert.True(diagnosis.IsLibstdcxxMismatch);
        Assert.Equal(
            "TorchSharp's native library cannot load: libLibTorchSharp.so needs GLIBCXX_3.4.32 but " +
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6 has up to GLIBCXX_3.4.30; reference the TorchTrials package " +
            "(its build step marks that need weak in the output copy; do not set TorchTrialsSkipNativeFix) " +
            "or install libstdc++ from GCC 13 or later.", line);
    }

    [Fact]
    public void A_version_other_than_3_4_32_cannot_be_patched_and_the_fix_is_a_newer_libstdcxx()
    {
        var line = new NativeLoadDiagnosis(Shim, new[] { "GLIBCXX_3.4.33", "GLIBCXX_3.4.32" }, SystemLibstdcxx, "GLIBCXX_3.4.30").Describe(null);

        Assert.StartsWith("TorchSharp's native library cannot load: libLibTorchSharp.so needs GLIBCXX_3.4.33, GLIBCXX_3.4.32 but", line);
        Assert.EndsWith("install libstdc++ from GCC 13 or later (only GLIBCXX_3.4.32 can be marked weak).", line);
        Assert.DoesNotContain("TorchTrials package", line);
    }

    [Fact]
    public void Without_a_libstdcxx_mismatch_the_first_line_of_torchsharps_own_error_is_kept_on_one_line()
    {
        // TorchSharp's message starts with a blank-free first line and goes on for about 140 lines of trace
        var torchSharp = "\nThis application or script uses TorchSharp but doesn't contain a reference to libtorch-cpu-linux-x64, Version=2.10.0.0.\n\n" +
                         "Consider referencing one of the combination packages\n\nTrace from LoadNativeBackend:\n...";

        var line = new NativeLoadDiagnosis(Shim, Array.Empty<string>(), SystemLibstdcxx, "GLIBCXX_3.4.32").Describe(torchSharp);

        Assert.Equal("TorchSharp's native library cannot load: This application or script uses TorchSharp but doesn't contain a reference " +
                     "to libtorch-cpu-linux-x64, Version=2.10.0.0. (the exception's inner error has TorchSharp's load trace).", line);
    }

    [Fact]
    public void A_missing_shim_says_which_package_brings_it()
    {
        var diagnosis = new NativeLoadDiagnosis(null, Array.Empty<string>(), null, null);

        Assert.False(diagnosis.IsLibstdcxxMismatch);
        Assert.Equal("TorchSharp's native library cannot load: libLibTorchSharp.so is not next to TorchSharp.dll; reference the " +
                     "TorchTrials package (it brings TorchSharp and libtorch-cpu-linux-x64).", diagnosis.Describe("whatever TorchSharp said"));
    }

    [Fact]
    public void Inspecting_the_shipped_shim_finds_exactly_the_mismatch_of_this_machine_and_the_patched_output_copy_has_none()
    {
        // Given this machine's libstdc++ and TorchSharp's shim as shipped (NuGet cache) and as patched (this test's output)
        var libstdcxx = Libstdcxx.Locate()!;
        var highest = libstdcxx.Highest("GLIBCXX_")!;
        Assert.StartsWith("GLIBCXX_3.4.", highest);
        Assert.True(libstdcxx.Defines(highest));
        var output = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

        // Then the output copy loads here, and the shipped one needs GLIBCXX_3.4.32 exactly where the system lacks it
        Assert.False(NativeLoadDiagnosis.Inspect(output).IsLibstdcxxMismatch);
        var shipped = NativeFixTests.ShippedLibrary();
        if (!File.Exists(shipped)) return; // a custom NuGet layout
        var diagnosis = NativeLoadDiagnosis.Inspect(shipped);
        bool lacks = !libstdcxx.Defines(LibTorchSharpFix.MissingVersion);
        Assert.Equal(lacks ? new[] { LibTorchSharpFix.MissingVersion } : Array.Empty<string>(), diagnosis.Missing);
        Assert.Equal(lacks, diagnosis.IsLibstdcxxMismatch);
        Assert.Equal(highest, diagnosis.LibstdcxxHighest);
    }
}
