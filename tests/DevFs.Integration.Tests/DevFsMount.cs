using System.Diagnostics;
using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>
/// A real devfs mount made by the shipped binary (artifacts/devfs, as `make publish` leaves it), the way
/// mount.fuse3 runs it. Disposing unmounts and checks that the daemon went away.
/// </summary>
public sealed class DevFsMount : IDisposable
{
    private DevFsMount(string mountPoint, int daemonPid)
    {
        MountPoint = mountPoint;
        DaemonPid = daemonPid;
    }

    public string MountPoint { get; }
    public int DaemonPid { get; }

    public string this[string relative] => Path.Combine(MountPoint, relative);

    public static DevFsMount Start(string options = "", string? mountPoint = null)
    {
        Environment.RequireRootAndFuse();
        mountPoint ??= Directory.CreateTempSubdirectory("devfs-it-").FullName;
        var args = new List<string> { "devfs", mountPoint };
        if (options.Length > 0)
            args.AddRange(["-o", options]);
        var result = Run.Command(Environment.DevFsBinary, args);
        Assert.That(result.ExitCode, Is.EqualTo(0), $"devfs mount failed: {result.Output}");
        Assert.That(Environment.IsMounted(mountPoint), Is.True, "devfs returned but nothing is mounted");
        var pid = Environment.FindDaemon(mountPoint);
        Assert.That(pid, Is.Not.Null, "no devfs process serves the mount");
        return new DevFsMount(mountPoint, pid!.Value);
    }

    /// <summary>Unmounts with umount(8) and returns once the daemon has exited.</summary>
    public void Unmount()
    {
        if (Environment.IsMounted(MountPoint))
            Run.Command("umount", [MountPoint]);
        Environment.WaitForExit(DaemonPid, TimeSpan.FromSeconds(10));
    }

    public void Dispose()
    {
        try
        {
            Unmount();
        }
        finally
        {
            if (Environment.IsMounted(MountPoint))
                Run.Command("umount", ["-l", MountPoint]);
            if (Environment.ProcessExists(DaemonPid))
                Process.GetProcessById(DaemonPid).Kill();
            try
            {
                Directory.Delete(MountPoint);
            }
            catch (IOException)
            {
            }
        }
    }
}
