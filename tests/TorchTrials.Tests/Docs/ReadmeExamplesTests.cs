using System.Text.RegularExpressions;

namespace TorchTrials.Tests.Docs;

/// <summary>
/// Issue 11, item 4: the README's "Bring your own model" code is the examples' code, so neither drifts from the other.
/// A block marked <c>&lt;!-- examples/FILE --&gt;</c> holds that file word for word, except that a file-based app's first line
/// <c>#:project ../src/Runner/TorchTrials.Runner.csproj</c> reads <c>#:package TorchTrials@VERSION</c> there, as it does outside
/// the repository (CI copies each examples/byo-*.cs out and makes that same change).
/// </summary>
public partial class ReadmeExamplesTests
{
    private const string ProjectLine = "#:project ../src/Runner/TorchTrials.Runner.csproj";

    private static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "TorchTrials.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no TorchTrials.sln above {AppContext.BaseDirectory}");
    }

    private static string Read(string relative) => File.ReadAllText(Path.Combine(Root, relative)).ReplaceLineEndings("\n");

    [GeneratedRegex(@"<!-- (?<path>examples/[^ ]+) -->\n```[a-z]*\n(?<code>.*?)\n```", RegexOptions.Singleline)]
    private static partial Regex MarkedBlock();

    [GeneratedRegex(@"^#:package TorchTrials@\d+\.\d+\.\d+\S*$")]
    private static partial Regex PackageLine();

    private static Dictionary<string, string> ReadmeBlocks() =>
        MarkedBlock().Matches(Read("README.md")).ToDictionary(m => m.Groups["path"].Value, m => m.Groups["code"].Value, StringComparer.Ordinal);

    private static IEnumerable<string> ByoApps() =>
        Directory.GetFiles(Path.Combine(Root, "examples"), "byo-*.cs").Select(f => "examples/" + Path.GetFileName(f)).Order(StringComparer.Ordinal);

    [Fact]
    public void Every_marked_README_block_is_its_file_word_for_word_but_the_package_line()
    {
        var blocks = ReadmeBlocks();
        Assert.NotEmpty(blocks);
        foreach (var (path, code) in blocks)
        {
            var file = Read(path).TrimEnd('\n').Split('\n');
            var shown = code.Split('\n');
            if (file[0] == ProjectLine)
            {
                Assert.Matches(PackageLine(), shown[0]);
                file = file[1..];
                shown = shown[1..];
            }
            Assert.Equal(string.Join('\n', file), string.Join('\n', shown));
        }
    }

    [Fact]
    public void Every_byo_app_starts_with_the_project_line_CI_rewrites_and_is_shown_in_the_README()
    {
        var blocks = ReadmeBlocks();
        var apps = ByoApps().ToList();
        Assert.Contains("examples/byo-function.cs", apps);
        Assert.Contains("examples/byo-class.cs", apps);
        foreach (var app in apps)
        {
            Assert.Equal(ProjectLine, Read(app).Split('\n')[0]);
            Assert.True(blocks.ContainsKey(app), $"README.md shows no block marked <!-- {app} -->");
        }
    }

    [Fact]
    public void The_class_library_holds_the_class_form_examples_class_word_for_word()
    {
        static string ClassOf(string text) => text[text.IndexOf("/// <summary>\n/// A two-layer MLP", StringComparison.Ordinal)..].TrimEnd('\n');

        Assert.Equal(ClassOf(Read("examples/byo-class.cs")), ClassOf(Read("examples/byo-assembly/DigitsMlp.cs")));
    }

    [Fact]
    public void The_notebook_holds_the_function_forms_functions_and_tuner_word_for_word()
    {
        var app = Read("examples/byo-function.cs");
        var notebook = Read("examples/byo-notebook.dib");
        int functions = app.IndexOf("static nn.Module", StringComparison.Ordinal);
        int tuner = app.IndexOf("var tuner", StringComparison.Ordinal);
        int best = app.IndexOf("var best", StringComparison.Ordinal);

        Assert.Contains(app[functions..tuner].TrimEnd('\n'), notebook, StringComparison.Ordinal);
        Assert.Contains(app[tuner..best].TrimEnd('\n'), notebook, StringComparison.Ordinal);
        Assert.Contains("#r \"nuget: TorchTrials, ", notebook, StringComparison.Ordinal);
        foreach (var line in app.Split('\n').Where(l => l.StartsWith("using ", StringComparison.Ordinal) && !l.StartsWith("using var", StringComparison.Ordinal)))
            Assert.Contains(line + "\n", notebook, StringComparison.Ordinal);
    }
}
