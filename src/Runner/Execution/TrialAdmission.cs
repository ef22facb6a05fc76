using TorchTrials.Gpu;
using TorchTrials.Trainables;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// The checks a trial passes before the controller accepts it: its trainable is registered, the trainable's own resource
/// request applies (an error when the trial also sets other resources, as in Ray), and this machine can grant what it asks.
/// </summary>
internal static class TrialAdmission
{
    public static void Admit(Trial trial, TrainableRegistry registry, DeviceSlotAllocator allocator)
    {
        var entry = registry.TryGet(trial.TrainableName, out var e) ? e : null;
        if (entry?.DefaultResources?.Invoke(trial.Config) is { } defaults)
        {
            if (trial.ExplicitResources && trial.Resources != defaults)
                throw new ArgumentException(
                    $"Resources for trainable '{trial.TrainableName}' have been automatically set to {defaults} by its DefaultResourceRequest; clear the resources_per_trial option (it asked for {trial.Resources}).");
            trial.SetResourcesFromController(defaults);
        }
        if (entry is null)
            throw new ArgumentException($"unknown trainable '{trial.TrainableName}' (registered: {string.Join(", ", registry.Entries.Select(x => x.Name).Order(StringComparer.Ordinal))})");
        var why = allocator.WhyNeverFits(trial.Resources);
        if (why is not null) throw new ResourceRequestException($"trial {trial.Id} {why}");
    }
}
