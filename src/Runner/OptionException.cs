namespace TorchTrials.Runner;

/// <summary>
/// An option value that an algorithm rejects, in the language of the API it came through: <see cref="Message"/> names
/// options as C# spells them (<c>AshaOptions.GracePeriod must be positive, got 0</c>); a front end that spells them
/// otherwise rebuilds the message with <see cref="Describe"/> (the sweep spec: <c>grace_period must be positive, got 0</c>).
/// </summary>
public sealed class OptionException : ArgumentException
{
    private readonly Func<Func<string, string>, string> _describe;
    private readonly string _message;

    /// <param name="owner">The type whose option was rejected (<c>AshaOptions</c>).</param>
    /// <param name="option">The rejected option's C# name (a property, or a constructor parameter).</param>
    /// <param name="describe">The message, given how to name any option it mentions.</param>
    internal OptionException(string owner, string option, Func<Func<string, string>, string> describe)
        : base(null, option)
    {
        Owner = owner;
        _describe = describe;
        _message = describe(name => $"{owner}.{name}");
    }

    /// <summary>The type whose option was rejected.</summary>
    public string Owner { get; }

    /// <summary>The rejected option's C# name (also <see cref="ArgumentException.ParamName"/>).</summary>
    public string Option => ParamName!;

    public override string Message => _message;

    /// <summary>The message with every option it mentions named by <paramref name="name"/> (from its C# name).</summary>
    public string Describe(Func<string, string> name) => _describe(name);
}
