using Microsoft.Extensions.Logging;

namespace TorchTrials.Cluster;

/// <summary>
/// Orleans' own log for a worker or a controller, to standard error, when <c>TORCHTRIALS_CLUSTER_LOG</c> names a level
/// (<c>Information</c>, <c>Debug</c>, ...): what membership, gateways and probes did. Off when the variable is unset.
/// </summary>
internal static class ClusterLogging
{
    public const string Variable = "TORCHTRIALS_CLUSTER_LOG";

    /// <summary>The level the variable names, or null when it is unset or names none.</summary>
    public static LogLevel? Level() =>
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } text && Enum.TryParse<LogLevel>(text, ignoreCase: true, out var level)
            ? level
            : null;

    /// <summary>Adds the standard-error console at the variable's level; returns false (and adds nothing) when it is off.</summary>
    public static bool Apply(ILoggingBuilder logging)
    {
        if (Level() is not { } level) return false;
        logging.SetMinimumLevel(level);
        logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        return true;
    }
}
