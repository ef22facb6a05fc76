namespace TorchTrials.Runner;

/// <summary>Whether the experiment's metric is to be maximised or minimised.</summary>
public enum MetricMode
{
    Max,
    Min,
}
