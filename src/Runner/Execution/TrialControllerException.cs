namespace TorchTrials.Runner.Execution;

/// <summary>Raised by <see cref="TrialController.Step"/> when the experiment cannot go on (Ray's TuneError).</summary>
public sealed class TrialControllerException(string message, Exception? inner = null) : Exception(message, inner);
