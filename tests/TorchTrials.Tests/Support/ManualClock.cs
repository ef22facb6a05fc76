namespace TorchTrials.Tests.Support;

/// <summary>
/// A clock that moves only when told (<see cref="Advance(double)"/>): timestamps, UTC and local time (UTC, so stamps read the
/// same on every machine) all follow it. Enough for everything the controller, the Tuner and the stoppers time; no timers.
/// </summary>
public sealed class ManualClock(DateTimeOffset? start = null) : TimeProvider
{
    private readonly DateTimeOffset _start = start ?? new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
    private long _ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    public override DateTimeOffset GetUtcNow() => _start.AddTicks(GetTimestamp());

    public void Advance(double seconds) => Interlocked.Add(ref _ticks, (long)(seconds * TimeSpan.TicksPerSecond));

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
