using System.Globalization;

namespace TorchTrials.Cli.Rendering;

/// <summary>How wide the CLI's tables and progress lines may be.</summary>
internal static class OutputWidth
{
    /// <summary>Lines never wrap when output goes to a script or a log and nobody asked for a width.</summary>
    public const int Unwrapped = 4096;

    /// <summary>
    /// The width for output to a file or pipe: the exported <c>COLUMNS</c> (<paramref name="columns"/>) when it is a
    /// positive number, as <c>ls</c> and other Unix tools honour it, so <c>COLUMNS=80 torchtrials run s.yaml | tee log</c>
    /// fits a person's 80-column terminal; else <see cref="Unwrapped"/>. A terminal's own width is Spectre.Console's.
    /// </summary>
    public static int ForRedirected(string? columns) =>
        int.TryParse(columns, NumberStyles.None, CultureInfo.InvariantCulture, out int width) && width > 0 ? width : Unwrapped;
}
