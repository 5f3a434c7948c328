using NUnit.Framework;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace DevFs.Integration.Tests;

/// <summary>Where things are, and what the machine must have. Missing prerequisites fail, never skip.</summary>
public static class Environment
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string DevFsBinary
    {
        get
        {
            var path = System.Environment.GetEnvironmentVariable("DEVFS_BIN") ?? Path.Combine(RepoRoot, "artifacts", "devfs");
            if (!File.Exists(path))
                Assert.Fail($"{path} is missing: run 'make publish' (make test does) or set DEVFS_BIN");
            return path;
        }
    }

    public static string PolicyPath(string relative) => Path.Combine(RepoRoot, "policies", relative);

    public static void RequireRootAndFuse()
    {
        if (Tmds.Linux.LibC.geteuid() != 0)
            Assert.Fail("integration tests mount real filesystems and need root: run 'sudo make test'");
        if (!File.Exists("/dev/fuse"))
            Assert.Fail("/dev/fuse is missing: load the fuse module (modprobe fuse); these tests cannot run without it");
    }

    public static bool IsMounted(string mountPoint) =>
        File.ReadAllLines("/proc/self/mounts").Any(line => line.Split(' ') is [_, var target, ..] && target == mountPoint);

    public static string? MountLine(string mountPoint) =>
        File.ReadAllLines("/proc/self/mounts").FirstOrDefault(line => line.Split(' ') is [_, var target, ..] && target == mountPoint);

    /// <summary>The devfs process whose command line names the mount point.</summary>
    public static int? FindDaemon(string mountPoint)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
                continue;
            try
            {
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (args.Length > 2 && Path.GetFileName(args[0]) == "devfs" && args.Contains(mountPoint))
                    return pid;
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return null;
    }

    public static bool ProcessExists(int pid)
    {
        try
        {
            // A zombie has exited; only its entry remains until its parent reaps it.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return !stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static void WaitForExit(int pid, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (ProcessExists(pid) && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
    }

    /// <summary>Polls until condition holds or timeout passes; returns whether it held.</summary>
    public static bool WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                return false;
            Thread.Sleep(1);
        }
        return true;
    }

    /// <summary>Teardown of a test that ran devfs itself: kill it if still alive, drop its mount and mount point.</summary>
    public static void StopDaemonAndUnmount(System.Diagnostics.Process daemon, string mountPoint)
    {
        if (!daemon.HasExited)
            daemon.Kill();
        if (IsMounted(mountPoint))
            Run.Command("umount", ["-l", mountPoint]);
        Directory.Delete(mountPoint);
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "DevFs.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (DevFs.sln) above the test directory");
    }
}
