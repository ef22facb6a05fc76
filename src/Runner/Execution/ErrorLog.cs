namespace TorchTrials.Runner.Execution;

/// <summary>
/// Writes each failure of a trial to error.txt in its folder, numbered and stamped with local time, as Ray's
/// <c>_write_error_file</c> does, and keeps the message and the file on the trial.
/// </summary>
internal sealed class ErrorLog(TimeProvider clock)
{
    public const string FileName = "error.txt";

    /// <summary>Records <paramref name="error"/> as failure number <see cref="Trial.NumFailures"/>.</summary>
    public void Record(Trial trial, Exception error)
    {
        trial.ErrorMessage = error.Message;
        if (trial.LogDirectory is null) return;
        Directory.CreateDirectory(trial.LogDirectory);
        var path = Path.Combine(trial.LogDirectory, FileName);
        File.AppendAllText(path, $"Failure # {trial.NumFailures} (occurred at {clock.GetLocalNow():yyyy-MM-dd_HH-mm-ss}){Environment.NewLine}{error}{Environment.NewLine}{Environment.NewLine}");
        trial.ErrorFile = path;
    }
}
