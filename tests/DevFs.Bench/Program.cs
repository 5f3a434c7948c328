using System.Runtime.InteropServices;
using System.Text;

namespace DevFs.Bench;

/// <summary>
/// `make bench`: devfs against the host's devtmpfs /dev, in one run.
/// I/O rates (read of zero at 4 KiB/128 KiB/1 MiB, open+close, stat) for a proxy mount (-o nodev) and a
/// node mount, interleaved round by round with /dev/zero so that the ratios compare like with like;
/// the daemons' RSS; hotplug latency of loop devices (LOOP_CTL_ADD/REMOVE until the entry appears/goes);
/// the daemon's CPU for a storm of 10,000 "change" uevents. Exit 0 when everything was measured (MISSes
/// are reported, not failed), 2 when something could not be measured (mount failed, ...).
/// </summary>
internal static unsafe class Program
{
    private const int LOOP_CTL_ADD = 0x4C80;
    private const int LOOP_CTL_REMOVE = 0x4C81;
    private const int EEXIST = 17;
    private const int EBUSY = 16;
    private const int ENOENT = 2;

    private static readonly object CleanupLock = new();
    private static readonly List<DevfsMount> Mounts = new();
    private static readonly HashSet<int> AddedLoops = new();
    private static int _loopControl = -1;
    private static string _root = "";

    private static int Main(string[] args)
    {
        if (args.Length < 1)
        {
            Console.Error.WriteLine("usage: DevFs.Bench PATH/TO/devfs [POLICY-DIR]");
            return 2;
        }
        string devfs = Path.GetFullPath(args[0]);
        if (!File.Exists(devfs))
        {
            Console.Error.WriteLine($"{devfs} does not exist (run make publish)");
            return 2;
        }
        if (Environment.UserName != "root" && Tmds.Linux.LibC.geteuid() != 0)
        {
            Console.Error.WriteLine("the bench mounts filesystems and adds loop devices: run it as root");
            return 2;
        }
        string loopPolicy = FindLoopPolicy(devfs, args.Length > 1 ? args[1] : null);
        _root = $"/tmp/devfs-bench.{Environment.ProcessId}";
        Directory.CreateDirectory(_root);
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            Console.Error.WriteLine("interrupted: cleaning up");
            Cleanup();
            Environment.Exit(130);
        };

        var report = new Report();
        var started = Sys.Now();
        int status = 0;
        try
        {
            Console.WriteLine($"devfs bench: {devfs}, {Environment.ProcessorCount} CPUs, kernel {File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}");
            var proxy = Mount(devfs, "proxy", "nodev");
            var node = Mount(devfs, "node", null);
            CheckEntry(proxy.PathOf("zero"), wantChr: false);
            CheckEntry(node.PathOf("zero"), wantChr: true);

            IoBench(report, proxy, node);
            foreach (var m in new[] { proxy, node })
                Rss(report, m);
            // The I/O mounts would receive the storm's uevents too and compete for the 2 CPUs: end them first.
            Unmount(proxy);
            Unmount(node);

            var loop = Mount(devfs, "loop", "policy=" + loopPolicy);
            Hotplug(report, loop);
            Rss(report, loop, " after hotplug");
            Storm(report, loop);
            Rss(report, loop, " after storm");
            Unmount(loop);
        }
        catch (BenchException e)
        {
            Console.Error.WriteLine($"bench: cannot measure: {e.Message}");
            status = 2;
        }
        finally
        {
            Cleanup();
        }
        Console.WriteLine();
        report.Print(Console.Out);
        Console.WriteLine($"total time {Sys.Seconds(started, Sys.Now()):0.0} s{(status != 0 ? "; INCOMPLETE: see the error above" : "")}");
        return status;
    }

    private static string FindLoopPolicy(string devfs, string? dir)
    {
        string[] candidates =
        [
            Path.Combine(dir ?? ".", "policies/examples/loop.yaml"),
            Path.Combine(Path.GetDirectoryName(devfs)!, "../policies/examples/loop.yaml"),
        ];
        foreach (var c in candidates)
        {
            if (File.Exists(c))
                return Path.GetFullPath(c);
        }
        throw new BenchException("policies/examples/loop.yaml not found (run from the repository root)");
    }

    private static DevfsMount Mount(string devfs, string name, string? options)
    {
        var m = DevfsMount.Start(devfs, _root, name, options);
        lock (CleanupLock)
            Mounts.Add(m);
        Console.WriteLine($"mounted {m.MountPoint} ({(options ?? "no options")}), daemon pid {m.DaemonPid}");
        return m;
    }

    private static void Unmount(DevfsMount m)
    {
        lock (CleanupLock)
        {
            m.Dispose();
            Mounts.Remove(m);
        }
    }

    /// <summary>Removes every loop device the bench added, unmounts every mount; safe to call twice.</summary>
    private static void Cleanup()
    {
        lock (CleanupLock)
        {
            if (AddedLoops.Count > 0)
            {
                int ctl = _loopControl >= 0 ? _loopControl : Sys.Open(Sys.Z("/dev/loop-control"), Sys.RdWr);
                foreach (int i in AddedLoops.ToArray())
                {
                    int r = 0;
                    for (int attempt = 0; attempt < 100; attempt++)
                    {
                        r = Sys.Ioctl(ctl, LOOP_CTL_REMOVE, i);
                        if (r != -EBUSY)
                            break;
                        Thread.Sleep(10);
                    }
                    if (r >= 0 || r == -19 /* ENODEV: already gone */)
                        AddedLoops.Remove(i);
                    else
                        Console.Error.WriteLine($"cleanup: LOOP_CTL_REMOVE loop{i}: {Sys.Strerror(-r)}; remove it by hand");
                }
            }
            if (_loopControl >= 0)
            {
                Sys.Close(_loopControl);
                _loopControl = -1;
            }
            foreach (var m in Mounts.ToArray())
            {
                try
                {
                    m.Dispose();
                }
                catch (Exception e)
                {
                    Console.Error.WriteLine($"cleanup: unmount {m.MountPoint}: {e.Message}");
                }
            }
            Mounts.Clear();
            try
            {
                foreach (var f in Directory.EnumerateFiles(_root, "*.log"))
                    File.Delete(f);
                Directory.Delete(_root);
            }
            catch (IOException)
            {
            }
        }
    }

    private static void CheckEntry(string path, bool wantChr)
    {
        int e = Sys.Stat(Sys.Z(path), out uint mode, out _);
        if (e != 0)
            throw new BenchException($"stat {path}: {Sys.Strerror(e)}");
        if (wantChr ? !Sys.IsChr(mode) : !Sys.IsReg(mode))
            throw new BenchException($"{path} is mode {Convert.ToString(mode, 8)}, expected a {(wantChr ? "char device (node entry)" : "regular file (proxy entry)")}");
    }

    // ---------------------------------------------------------------- read / open / stat

    private const int Rounds = 5;
    private const double Slice = 0.15;   // seconds per target per round
    private const double Warmup = 0.1;

    /// <summary>Per target, the rate of every round; rounds rotate the order of the targets.</summary>
    private static double[][] Interleave(int targets, Func<int, double, double> measure)
    {
        for (int t = 0; t < targets; t++)
            measure(t, Warmup);
        var rates = new double[targets][];
        for (int t = 0; t < targets; t++)
            rates[t] = new double[Rounds];
        for (int r = 0; r < Rounds; r++)
        {
            for (int k = 0; k < targets; k++)
            {
                int t = (r + k) % targets;
                rates[t][r] = measure(t, Slice);
            }
        }
        return rates;
    }

    private static double Median(IEnumerable<double> xs)
    {
        var a = xs.OrderBy(x => x).ToArray();
        if (a.Length == 0)
            return double.NaN;
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }

    /// <summary>Median over rounds of devfs/devtmpfs of the same round (measured back to back).</summary>
    private static double Ratio(double[] devfs, double[] baseline) => Median(devfs.Select((v, i) => v / baseline[i]));

    private static void IoBench(Report report, DevfsMount proxy, DevfsMount node)
    {
        string[] paths = ["/dev/zero", proxy.PathOf("zero"), node.PathOf("zero")];
        (int block, string label, double? proxyMin)[] sizes = [(4096, "4 KiB", 0.03), (128 << 10, "128 KiB", 0.03), (1 << 20, "1 MiB", 0.05)];
        Console.WriteLine($"read/open/stat: {Rounds} interleaved rounds x {Slice} s per target after {Warmup} s warm-up");
        byte* buffer = (byte*)NativeMemory.AlignedAlloc(1 << 20, 4096);
        try
        {
            foreach (var (block, label, proxyMin) in sizes)
            {
                var fds = paths.Select(p => Sys.OpenOrThrow(p, Sys.RdOnly)).ToArray();
                try
                {
                    var rates = Interleave(3, (t, s) => Sys.ReadRate(fds[t], buffer, block, s));
                    for (int i = 0; i < block; i++)
                    {
                        if (buffer[i] != 0)
                            throw new BenchException($"read of zero returned a non-zero byte at {i}");
                    }
                    double dev = Median(rates[0]);
                    report.AddRatio("read zero", $"proxy read {label}", dev, Median(rates[1]), Ratio(rates[1], rates[0]), Report.Bytes, proxyMin);
                    report.AddRatio("read zero", $"node read {label}", dev, Median(rates[2]), Ratio(rates[2], rates[0]), Report.Bytes, null);
                }
                finally
                {
                    foreach (var fd in fds)
                        Sys.Close(fd);
                }
            }
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }

        // open and stat go through the same number of path components on both sides (a container sees
        // devfs at /dev): "zero" relative to an fd of /dev or of the mount point (openat/fstatat).
        string[] dirs = ["/dev", proxy.MountPoint, node.MountPoint];
        var dirfds = dirs.Select(d => Sys.OpenOrThrow(d, Sys.Directory_)).ToArray();
        var zero = Sys.Z("zero");
        try
        {
            var open = Interleave(3, (t, s) => Sys.OpenCloseRate(dirfds[t], zero, s));
            report.AddRatio("open+close", "proxy open+close zero", Median(open[0]), Median(open[1]), Ratio(open[1], open[0]), Report.Ops, 0.05);
            report.AddRatio("open+close", "node open+close zero", Median(open[0]), Median(open[2]), Ratio(open[2], open[0]), Report.Ops, 0.9);

            var st = Interleave(3, (t, s) => Sys.StatRate(dirfds[t], zero, s));
            report.AddRatio("stat", "proxy stat zero", Median(st[0]), Median(st[1]), Ratio(st[1], st[0]), Report.Ops, null);
            report.AddRatio("stat", "node stat zero", Median(st[0]), Median(st[2]), Ratio(st[2], st[0]), Report.Ops, 0.8);

            // For reference: stat of the absolute path (the mount point is 2 components deeper than /dev).
            var z = paths.Select(Sys.Z).ToArray();
            int atCwd = -100; // AT_FDCWD
            var abs = Interleave(3, (t, s) => Sys.StatRate(atCwd, z[t], s));
            report.AddRatio("stat", "node stat (absolute path, deeper: info)", Median(abs[0]), Median(abs[2]), Ratio(abs[2], abs[0]), Report.Ops, null);
        }
        finally
        {
            foreach (var fd in dirfds)
                Sys.Close(fd);
        }
    }

    private static void Rss(Report report, DevfsMount m, string when = "")
    {
        double rss = m.StatusKb("VmRSS") / 1024.0;
        double hwm = m.StatusKb("VmHWM") / 1024.0;
        report.Add("daemon memory", $"VmRSS {m.Name} mount{when} (peak {hwm:0.0} MB, {m.Threads()} threads)", "", $"{rss:0.0} MB", "", "< 25 MB", rss < 25);
    }

    // ---------------------------------------------------------------- hotplug

    private const int HotplugCount = 200;
    private const int HotplugWarmup = 10;
    private const double HotplugTimeout = 1.0;

    private static void Hotplug(Report report, DevfsMount loop)
    {
        _loopControl = Sys.OpenOrThrow("/dev/loop-control", Sys.RdWr);
        var add = new List<double>();
        var remove = new List<double>();
        var devAdd = new List<double>();
        var devRemove = new List<double>();
        int timeouts = 0, consecutive = 0;
        int index = 300;
        Console.WriteLine($"hotplug: {HotplugCount} x LOOP_CTL_ADD / LOOP_CTL_REMOVE, spinning on stat({loop.MountPoint}/loopN) and /dev/loopN");
        var slow = new List<(double ms, int iteration, string what)>();
        for (int i = -HotplugWarmup; i < HotplugCount; i++)
        {
            while (Directory.Exists($"/sys/devices/virtual/block/loop{index}") || File.Exists($"/dev/loop{index}"))
                index++;
            int r = Sys.Ioctl(_loopControl, LOOP_CTL_ADD, index);
            long t0 = Sys.Now();
            if (r == -EEXIST)
            {
                index++;
                i--;
                continue;
            }
            if (r < 0)
                throw new BenchException($"LOOP_CTL_ADD {index}: {Sys.Strerror(-r)}");
            lock (CleanupLock)
                AddedLoops.Add(index);
            var path = Sys.Z(loop.PathOf($"loop{index}"));
            var devPath = Sys.Z($"/dev/loop{index}");
            var (devfsT, devT) = Spin(path, devPath, t0, appear: true);
            if (i >= 0)
            {
                Record(add, devAdd, devfsT, devT, ref timeouts, ref consecutive);
                slow.Add((devfsT * 1000, i, "add"));
            }

            for (int attempt = 0; ; attempt++)
            {
                r = Sys.Ioctl(_loopControl, LOOP_CTL_REMOVE, index);
                if (r != -EBUSY || attempt > 200)
                    break;
                Thread.Sleep(5);   // something (udev, blkid) still has it open
            }
            t0 = Sys.Now();
            if (r < 0)
                throw new BenchException($"LOOP_CTL_REMOVE {index}: {Sys.Strerror(-r)}");
            lock (CleanupLock)
                AddedLoops.Remove(index);
            (devfsT, devT) = Spin(path, devPath, t0, appear: false);
            if (i >= 0)
            {
                Record(remove, devRemove, devfsT, devT, ref timeouts, ref consecutive);
                slow.Add((devfsT * 1000, i, "remove"));
            }
            index++;
            if (consecutive >= 3)
            {
                Console.Error.WriteLine($"hotplug: 3 timeouts in a row ({HotplugTimeout} s each): stopping after {i + 1} devices");
                break;
            }
        }
        Sys.Close(_loopControl);
        _loopControl = -1;
        Console.WriteLine("hotplug: slowest (devfs): " + string.Join(", ", slow.OrderByDescending(x => x.ms).Take(6).Select(x => $"{x.what} #{x.iteration} {x.ms:0.00} ms")));
        string note = timeouts > 0 ? $" ({timeouts} timed out at {HotplugTimeout * 1000:0} ms)" : "";
        foreach (var (name, list, dev) in new[] { ("add", add, devAdd), ("remove", remove, devRemove) })
        {
            double p50 = Percentile(list, 0.50), p99 = Percentile(list, 0.99);
            report.Add("hotplug", $"{name} p50 (n={list.Count}){note}", Ms(Percentile(dev, 0.50)), Ms(p50));
            report.Add("hotplug", $"{name} p99", Ms(Percentile(dev, 0.99)), Ms(p99), "", "< 2 ms", p99 < 0.002);
            report.Add("hotplug", $"{name} max", Ms(dev.DefaultIfEmpty(double.NaN).Max()), Ms(list.DefaultIfEmpty(double.NaN).Max()));
        }
    }

    private static string Ms(double seconds) => $"{seconds * 1000:0.000} ms";

    private static void Record(List<double> devfs, List<double> dev, double devfsT, double devT, ref int timeouts, ref int consecutive)
    {
        devfs.Add(devfsT);
        if (!double.IsNaN(devT))
            dev.Add(devT);
        if (devfsT >= HotplugTimeout)
        {
            timeouts++;
            consecutive++;
        }
        else
        {
            consecutive = 0;
        }
    }

    /// <summary>Spins with stat (no sleep) on both paths until each exists (appear) or gives ENOENT; seconds after t0.</summary>
    private static (double devfs, double dev) Spin(byte[] path, byte[] devPath, long t0, bool appear)
    {
        double devfsT = double.NaN, devT = double.NaN;
        long deadline = t0 + (long)(HotplugTimeout * Sys.TicksPerSecond);
        while (true)
        {
            if (double.IsNaN(devfsT) && Done(path, appear))
                devfsT = Sys.Seconds(t0, Sys.Now());
            if (double.IsNaN(devT) && Done(devPath, appear))
                devT = Sys.Seconds(t0, Sys.Now());
            if (!double.IsNaN(devfsT) && !double.IsNaN(devT))
                return (devfsT, devT);
            if (Sys.Now() > deadline)
                return (double.IsNaN(devfsT) ? HotplugTimeout : devfsT, devT);
        }
    }

    private static bool Done(byte[] path, bool appear)
    {
        int e = Sys.Stat(path, out _, out _);
        return appear ? e == 0 : e == ENOENT;
    }

    private static double Percentile(List<double> xs, double p)
    {
        if (xs.Count == 0)
            return double.NaN;
        var a = xs.OrderBy(x => x).ToArray();
        int i = (int)Math.Ceiling(p * a.Length) - 1;
        return a[Math.Clamp(i, 0, a.Length - 1)];
    }

    // ---------------------------------------------------------------- uevent storm

    private const int StormEvents = 10_000;

    private static void Storm(Report report, DevfsMount loop)
    {
        string[] devices = ["null", "zero", "full", "random", "urandom"];
        var files = devices.Select(d => Sys.Z($"/sys/class/mem/{d}/uevent")).ToArray();
        var change = Encoding.ASCII.GetBytes("change\n");
        double ticks = Sys.ClockTicks;
        Settle(loop, 0.3, 5);
        long before = loop.CpuTicks();
        long t0 = Sys.Now();
        for (int i = 0; i < StormEvents; i++)
        {
            int e = Sys.WriteFile(files[i % files.Length], change);
            if (e != 0)
                throw new BenchException($"write change to /sys/class/mem/{devices[i % files.Length]}/uevent: {Sys.Strerror(e)}");
        }
        double writeSeconds = Sys.Seconds(t0, Sys.Now());
        var (after, _) = Settle(loop, 0.3, 30);
        double settled = Sys.Seconds(t0, Sys.Now()) - 0.3;
        double cpu = (after - before) / ticks;
        Console.WriteLine($"storm: {StormEvents} change uevents over {string.Join(',', devices)} written in {writeSeconds:0.00} s; daemon settled {settled:0.00} s after the first write");
        report.Add("uevent storm", $"daemon CPU for {StormEvents} change uevents (settled after {settled:0.00} s)", "", $"{cpu:0.00} s", "", "< 1 s", cpu < 1);
        if (!Sys.ProcessAlive(loop.DaemonPid))
            throw new BenchException("the daemon died during the uevent storm");
    }

    /// <summary>Waits until the daemon's utime+stime has not risen for <paramref name="quiet"/> s; returns it and the seconds waited.</summary>
    private static (long ticks, double seconds) Settle(DevfsMount m, double quiet, double max)
    {
        long start = Sys.Now();
        long last = m.CpuTicks();
        long lastChange = start;
        while (true)
        {
            Thread.Sleep(10);
            long now = Sys.Now();
            long c = m.CpuTicks();
            if (c != last)
            {
                last = c;
                lastChange = now;
            }
            else if (Sys.Seconds(lastChange, now) >= quiet)
            {
                return (last, Sys.Seconds(start, lastChange));
            }
            if (Sys.Seconds(start, now) > max)
            {
                Console.Error.WriteLine($"daemon {m.DaemonPid} still using CPU after {max} s");
                return (c, Sys.Seconds(start, now));
            }
        }
    }
}
