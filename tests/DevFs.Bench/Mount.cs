using System.Diagnostics;

namespace DevFs.Bench;

/// <summary>One devfs mount made by the bench: mounted with the real CLI, served by a background daemon.</summary>
internal sealed class DevfsMount : IDisposable
{
    public string Name { get; }
    public string MountPoint { get; }
    public int DaemonPid { get; }
    public string LogFile { get; }
    private bool _unmounted;

    private DevfsMount(string name, string mountPoint, int pid, string log)
    {
        Name = name;
        MountPoint = mountPoint;
        DaemonPid = pid;
        LogFile = log;
    }

    /// <summary>Runs `devfs devfs MOUNTPOINT [-o OPTIONS]` (returns once live), then finds the serving process.</summary>
    public static DevfsMount Start(string devfs, string root, string name, string? options)
    {
        string mp = Path.Combine(root, name);
        Directory.CreateDirectory(mp);
        string log = Path.Combine(root, name + ".log");
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        // The daemon keeps the launcher's stdout/stderr: send them to a file, not to a pipe we would wait on.
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$@\" >>\"$DEVFS_BENCH_LOG\" 2>&1 </dev/null");
        psi.ArgumentList.Add("sh");
        psi.ArgumentList.Add(devfs);
        psi.ArgumentList.Add("devfs");
        psi.ArgumentList.Add(mp);
        if (options != null)
        {
            psi.ArgumentList.Add("-o");
            psi.ArgumentList.Add(options);
        }
        psi.Environment["DEVFS_BENCH_LOG"] = log;
        using var launcher = Process.Start(psi) ?? throw new BenchException("cannot start " + devfs);
        if (!launcher.WaitForExit(20_000))
        {
            launcher.Kill(entireProcessTree: true);
            throw new BenchException($"mount {name}: `devfs devfs {mp}` did not return in 20 s; log:\n{ReadLog(log)}");
        }
        if (launcher.ExitCode != 0)
            throw new BenchException($"mount {name}: `devfs devfs {mp} {(options != null ? "-o " + options : "")}` exited {launcher.ExitCode}; log:\n{ReadLog(log)}");
        if (!IsMounted(mp))
            throw new BenchException($"mount {name}: devfs returned 0 but {mp} is not a fuse.devfs mount; log:\n{ReadLog(log)}");
        int pid = FindDaemon(mp);
        if (pid <= 0)
        {
            Unmount(mp);
            throw new BenchException($"mount {name}: no serving devfs process found for {mp}");
        }
        return new DevfsMount(name, mp, pid, log);
    }

    public string PathOf(string entry) => Path.Combine(MountPoint, entry);

    private static string ReadLog(string log) => File.Exists(log) ? File.ReadAllText(log) : "(no log)";

    public static bool IsMounted(string mp)
    {
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent maj:min root mountpoint opts ... - fstype source superopts
            var f = line.Split(' ');
            if (f.Length > 5 && f[4] == mp)
            {
                int dash = Array.IndexOf(f, "-");
                if (dash > 0 && dash + 1 < f.Length && f[dash + 1].StartsWith("fuse", StringComparison.Ordinal))
                    return true;
            }
        }
        return false;
    }

    /// <summary>The process whose argv is `... devfs MOUNTPOINT ...` (the background server).</summary>
    public static int FindDaemon(string mp)
    {
        int self = Environment.ProcessId;
        for (int attempt = 0; attempt < 50; attempt++)
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == self)
                    continue;
                string cmdline;
                try
                {
                    cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                }
                catch (IOException)
                {
                    continue;
                }
                catch (UnauthorizedAccessException)
                {
                    continue;
                }
                var argv = cmdline.Split('\0', StringSplitOptions.RemoveEmptyEntries);
                int i = Array.IndexOf(argv, mp);
                if (i >= 2 && argv[i - 1] == "devfs" && Path.GetFileName(argv[0]).StartsWith("devfs", StringComparison.Ordinal))
                    return pid;
            }
            Thread.Sleep(20);
        }
        return -1;
    }

    /// <summary>Fields from /proc/PID/status (kB values), e.g. VmRSS.</summary>
    public long StatusKb(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{DaemonPid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0]);
        }
        throw new BenchException($"{field} missing from /proc/{DaemonPid}/status");
    }

    /// <summary>utime+stime in clock ticks (fields 14 and 15 of /proc/PID/stat).</summary>
    public long CpuTicks()
    {
        string s = File.ReadAllText($"/proc/{DaemonPid}/stat");
        var rest = s[(s.LastIndexOf(')') + 2)..].Split(' ');
        // rest[0] is field 3 (state); utime is field 14, stime 15.
        return long.Parse(rest[11]) + long.Parse(rest[12]);
    }

    public int Threads() => (int)StatusKb("Threads");

    private static void Unmount(string mp)
    {
        if (!IsMounted(mp))
            return;
        if (Run("umount", mp) != 0)
            Run("umount", "-l", mp);
    }

    private static int Run(params string[] args)
    {
        var psi = new ProcessStartInfo(args[0]) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args.Skip(1))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            Console.Error.WriteLine($"{string.Join(' ', args)}: exit {p.ExitCode} {err.Trim()}");
        return p.ExitCode;
    }

    /// <summary>Unmounts and waits for the daemon to exit (it exits when its mount is gone); kills it if it lingers.</summary>
    public void Dispose()
    {
        if (_unmounted)
            return;
        _unmounted = true;
        Unmount(MountPoint);
        var deadline = Sys.Now() + (long)(3 * Sys.TicksPerSecond);
        while (Sys.ProcessAlive(DaemonPid) && Sys.Now() < deadline)
            Thread.Sleep(10);
        if (Sys.ProcessAlive(DaemonPid))
        {
            Console.Error.WriteLine($"devfs {DaemonPid} ({Name}) still running 3 s after umount; sending SIGTERM");
            Sys.Signal(DaemonPid, Sys.SigTerm);
            Thread.Sleep(500);
            if (Sys.ProcessAlive(DaemonPid))
                Sys.Signal(DaemonPid, Sys.SigKill);
        }
        try
        {
            Directory.Delete(MountPoint);
        }
        catch (IOException)
        {
        }
    }
}
