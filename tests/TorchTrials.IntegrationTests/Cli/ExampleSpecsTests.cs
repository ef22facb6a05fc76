using TorchTrials.Runner.Spec;

namespace TorchTrials.IntegrationTests.Cli;

/// <summary>
/// Every spec the repository ships (examples/, benchmarks/, .ci/outside/) passes validation as it stands, so a rename
/// of a spec key (keep -> num_to_keep) cannot leave one of them behind. Validation includes the trainables'
/// prerequisites: the Fashion-MNIST examples need Debian's dataset-fashion-mnist, which .ci/run installs.
/// </summary>
public class ExampleSpecsTests
{
    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "TorchTrials.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no TorchTrials.sln above {AppContext.BaseDirectory}");
    }

    public static TheoryData<string> Specs()
    {
        var root = RepoRoot();
        var data = new TheoryData<string>();
        foreach (var folder in new[] { "examples", "benchmarks", Path.Combine(".ci", "outside") })
            foreach (var path in Directory.EnumerateFiles(Path.Combine(root, folder), "*.yaml", SearchOption.AllDirectories)
                         .Where(p => !p.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                                     && !p.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
                         .Order(StringComparer.Ordinal))
                data.Add(Path.GetRelativePath(root, path));
        return data;
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void A_shipped_spec_validates(string relativePath)
    {
        var error = Record.Exception(() => SweepPlan.Load(Path.Combine(RepoRoot(), relativePath)));
        Assert.True(error is null, $"{relativePath}: {(error as SpecValidationException)?.Errors.FirstOrDefault()?.ToString() ?? error?.Message}");
    }
}
