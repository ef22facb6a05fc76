using System.CommandLine;
using Spectre.Console;
using TorchTrials.Gpu;
using TorchTrials.Gpu.Native;

namespace TorchTrials.Cli.Commands;

/// <summary><c>torchtrials devices</c>: the machine's CPUs, GPUs (NVML and CUDA) and the native runtime in use.</summary>
internal sealed class DevicesCommand(IAnsiConsole console) : ICliCommand
{
    public Command Build()
    {
        var inventory = new Option<string?>("--inventory") { Description = "Describe a simulated machine instead, e.g. \"cpus=4,gpus=2x16GiB,a=2\"." };
        var command = new Command("devices", "Print the devices TorchTrials can place trials on.") { inventory };
        command.SetAction(parse =>
        {
            DeviceInventory devices;
            try
            {
                devices = parse.GetValue(inventory) is { } text ? DeviceInventory.Parse(text) : DeviceInventory.Detect();
            }
            catch (FormatException e)
            {
                throw new CliInputException($"--inventory: {e.Message}");
            }
            var runtime = NativeRuntime.EnsureLoaded();
            console.WriteLine(devices.Describe());
            console.WriteLine($"LibTorch backend: {(runtime.CudaAvailable ? $"CUDA ({runtime.CudaDeviceCount} devices)" : "CPU")} (TorchSharp {runtime.LibTorchVersion})");
            return ExitCodes.Success;
        });
        return command;
    }
}
