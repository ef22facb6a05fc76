using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace TorchTrials.Tests.Support;

/// <summary>
/// Keeps every line logged to its loggers, each with the milliseconds since the recorder was made and the category, so a
/// test that times out can say what the components it drove last did.
/// </summary>
public sealed class LogRecorder : ILoggerProvider, ILoggerFactory
{
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public ILogger CreateLogger(string categoryName) => new Recorder(this, categoryName);

    /// <summary>The last <paramref name="count"/> lines, one per line.</summary>
    public string Tail(int count = 60) => string.Join(Environment.NewLine, _lines.TakeLast(count));

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Recorder(LogRecorder owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            var line = $"{owner._clock.ElapsedMilliseconds,7} {logLevel,-11} {category}: {formatter(state, exception)}";
            if (exception is not null) line += $" [{exception.GetType().Name}: {exception.Message}]";
            owner._lines.Enqueue(line);
        }
    }
}
