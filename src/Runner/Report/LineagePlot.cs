using ScottPlot;

namespace TorchTrials.Runner.Report;

/// <summary>
/// Picture 7 of issue 13, the lineage of a PBT or PB2 sweep: one row per trial (labelled by its id) with a thick line over
/// the training iterations it ran, and an arrow for each exploit from the donor's row to the recipient's row at the
/// exploit's iteration. <see cref="SweepExploit.Iteration"/> is the iteration of the donor's checkpoint, and the recipient's
/// history is rolled back (or moved on) to it (<c>ExploitHandler</c>), so it is also the recipient's iteration from which
/// it trains on with the donor's state and its new config. Each stretch of a row is coloured by the trial whose initial
/// weights it carries (a row starts in its own trial's colour), so a donor's descendants share its colour.
/// </summary>
public static class LineagePlot
{
    /// <summary>The lineage; null when the store holds no exploit.</summary>
    public static Plot? Draw(SweepData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var exploits = data.Exploits.Where(x => data.Trials.Any(t => t.Id == x.TrialId) && data.Trials.Any(t => t.Id == x.DonorId)).ToList();
        if (exploits.Count == 0 || data.Trials.Count == 0) return null;

        var row = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < data.Trials.Count; i++) row[data.Trials[i].Id] = data.Trials.Count - 1 - i;
        var ancestry = Ancestry(data);
        var plot = ReportStyle.NewPlot(
            $"{SchedulerName(data)} lineage: {exploits.Count} exploits among {data.Trials.Count} trials",
            "training_iteration (iterations)", "trial (first created on top)");

        bool labelled = false;
        for (int i = 0; i < data.Trials.Count; i++)
        {
            var trial = data.Trials[i];
            if (trial.Results.Count == 0) continue;
            long last = trial.Results.Max(r => r.TrainingIteration);
            var stretches = ancestry[trial.Id];
            for (int s = 0; s < stretches.Count; s++)
            {
                long from = stretches[s].From, to = s + 1 < stretches.Count ? stretches[s + 1].From : last;
                if (to <= from) continue;
                var line = plot.Add.ScatterLine(new double[] { from, to }, new double[] { row[trial.Id], row[trial.Id] }, ReportStyle.Series(stretches[s].Root));
                line.LineWidth = 6;
                line.MarkerSize = 0;
                if (!labelled)
                {
                    line.LegendText = "iterations a trial ran, coloured by the trial whose initial weights they carry";
                    labelled = true;
                }
            }
        }

        double xMax = Math.Max(1, data.Trials.SelectMany(t => t.Results).Select(r => (double)r.TrainingIteration).DefaultIfEmpty(0).Max());
        // Exploits of one iteration are spread a little apart so that arrows sharing a donor do not hide each other.
        foreach (var group in exploits.GroupBy(x => x.Iteration))
        {
            var list = group.ToList();
            for (int j = 0; j < list.Count; j++)
            {
                var x = list[j];
                double at = x.Iteration + (j - (list.Count - 1) / 2.0) * xMax * 0.006;
                double from = row[x.DonorId], to = row[x.TrialId];
                // The arrow stops short of the recipient's line so that its head is seen on top of it.
                double tip = to + Math.Sign(from - to) * 0.05;
                var arrow = plot.Add.Arrow(new Coordinates(at, from), new Coordinates(at, tip));
                arrow.ArrowFillColor = ReportStyle.Exploit.WithAlpha(0.85);
                arrow.ArrowLineColor = ReportStyle.Exploit;
                arrow.ArrowLineWidth = 0;
                arrow.ArrowWidth = 2.5f;
                arrow.ArrowheadWidth = 12;
                arrow.ArrowheadLength = 12;
                arrow.ArrowheadAxisLength = 12;
                if (x == exploits[0]) arrow.LegendText = $"exploit: from the donor (dot) to the trial that took its state and a new config ({exploits.Count})";
                // The dot tells the donor apart from the rows the arrow only crosses.
                plot.Add.Marker(at, from, MarkerShape.FilledCircle, 9, ReportStyle.Exploit);
            }
        }

        var positions = data.Trials.Select(t => (double)row[t.Id]).ToArray();
        plot.Axes.Left.SetTicks(positions, data.Trials.Select(t => t.Id).ToArray());
        plot.Axes.Left.MajorTickStyle.Length = 0;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.Axes.SetLimitsY(-0.6, data.Trials.Count - 0.4);
        plot.Axes.SetLimitsX(-xMax * 0.02, xMax * 1.02);
        plot.ShowLegend(Edge.Bottom);
        return plot;
    }

    /// <summary>
    /// Each trial's stretches, in the exploits' order: from iteration 0 its own weights, then from each exploit's iteration
    /// those of the donor's stretch there; an exploit drops the stretches its rollback removed (from its iteration on).
    /// </summary>
    internal static Dictionary<string, List<(long From, int Root)>> Ancestry(SweepData data)
    {
        var stretches = new Dictionary<string, List<(long From, int Root)>>(StringComparer.Ordinal);
        for (int i = 0; i < data.Trials.Count; i++) stretches[data.Trials[i].Id] = [(0, i)];
        foreach (var x in data.Exploits)
        {
            if (x.TrialId == x.DonorId || !stretches.TryGetValue(x.TrialId, out var recipient) || !stretches.TryGetValue(x.DonorId, out var donor)) continue;
            // Every list holds a stretch from 0, so one always starts at or before the exploit's iteration.
            int root = donor.FindLast(s => s.From <= x.Iteration).Root;
            recipient.RemoveAll(s => s.From >= x.Iteration);
            recipient.Add((x.Iteration, root));
        }
        return stretches;
    }

    /// <summary>PBT or PB2 as the store's PAUSE decisions name the scheduler; "PBT/PB2" when none says.</summary>
    internal static string SchedulerName(SweepData data)
    {
        var sources = data.Decisions.Select(d => d.Source).ToHashSet(StringComparer.Ordinal);
        return sources.Contains("Pb2") ? "PB2" : sources.Contains("PopulationBasedTraining") ? "PBT" : "PBT/PB2";
    }
}
