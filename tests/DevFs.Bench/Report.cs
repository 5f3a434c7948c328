namespace DevFs.Bench;

/// <summary>One line of the results table.</summary>
internal sealed record Row(string Section, string Metric, string Baseline, string Devfs, string Ratio, string Target, string Verdict);

/// <summary>Collects rows and prints them as an aligned table.</summary>
internal sealed class Report
{
    private readonly List<Row> _rows = new();

    public int Misses { get; private set; }

    public void Add(string section, string metric, string baseline, string devfs, string ratio = "", string target = "", bool? pass = null)
    {
        string verdict = pass switch { true => "PASS", false => "MISS", null => "" };
        if (pass == false)
            Misses++;
        _rows.Add(new Row(section, metric, baseline, devfs, ratio, target, verdict));
    }

    /// <summary>A ratio row: devfs / devtmpfs with a "ratio >= min" target (no target if min is null).</summary>
    public void AddRatio(string section, string metric, double baseline, double devfs, double ratio, Func<double, string> fmt, double? min)
        => Add(section, metric, fmt(baseline), fmt(devfs), ratio.ToString("0.000"), min is { } m ? $">= {m:0.##}" : "", min is { } mm ? ratio >= mm : null);

    public void Print(TextWriter w)
    {
        string[] head = ["section", "metric", "devtmpfs", "devfs", "ratio", "target", "result"];
        var cells = _rows.Select(r => new[] { r.Section, r.Metric, r.Baseline, r.Devfs, r.Ratio, r.Target, r.Verdict }).ToList();
        var widths = head.Select((h, i) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(c => c[i].Length))).ToArray();
        string Line(string[] c) => string.Join("  ", c.Select((x, i) => i is 2 or 3 or 4 ? x.PadLeft(widths[i]) : x.PadRight(widths[i]))).TrimEnd();
        w.WriteLine(Line(head));
        w.WriteLine(new string('-', widths.Sum() + 2 * (widths.Length - 1)));
        string? last = null;
        foreach (var c in cells)
        {
            if (last != null && c[0] != last)
                w.WriteLine();
            last = c[0];
            w.WriteLine(Line(c));
        }
        int total = _rows.Count(r => r.Verdict != "");
        w.WriteLine();
        w.WriteLine($"targets: {total - Misses} PASS, {Misses} MISS (a MISS is reported, not a failure)");
    }

    public static string Bytes(double perSecond) => perSecond >= 1 << 30
        ? $"{perSecond / (1 << 30):0.00} GiB/s"
        : $"{perSecond / (1 << 20):0.0} MiB/s";

    public static string Ops(double perSecond) => perSecond >= 1e6 ? $"{perSecond / 1e6:0.00} M/s" : $"{perSecond / 1e3:0.0} k/s";
}
