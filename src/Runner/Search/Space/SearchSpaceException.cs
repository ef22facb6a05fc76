namespace TorchTrials.Runner.Search;

/// <summary>One thing wrong with a search space: the key and what is wrong with it.</summary>
public sealed record SearchSpaceProblem(string Key, string Message)
{
    public override string ToString() => $"{Key}: {Message}";
}

/// <summary>A search space that cannot be used; lists every problem found, each naming its key.</summary>
public sealed class SearchSpaceException : ArgumentException
{
    public SearchSpaceException(IReadOnlyList<SearchSpaceProblem> problems)
        : base(Describe(problems))
    {
        Problems = problems;
    }

    public IReadOnlyList<SearchSpaceProblem> Problems { get; }

    private static string Describe(IReadOnlyList<SearchSpaceProblem> problems) => problems.Count == 1
        ? $"search space: {problems[0]}"
        : $"search space has {problems.Count} problems: {string.Join("; ", problems)}";
}
