using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using NUnit.Framework;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Integration.Tests;

/// <summary>
/// Real hotplug through real mounts: loop devices made and removed with LOOP_CTL_ADD/REMOVE on
/// /dev/loop-control, synthetic uevents written to /sys/.../uevent, and what a mount shows meanwhile.
/// Root is required; a missing /dev/loop-control fails (never skips).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class HotplugTests
{
    private static readonly TimeSpan AppearCap = TimeSpan.FromSeconds(2);

    private static string LoopPolicy => Environment.PolicyPath("examples/loop.yaml");

    [Test]
    public void AddedLoopDeviceAppearsAtOnceAndRemovedOneVanishes()
    {
        using var loops = LoopControl.OpenOrFail();
        using var mount = DevFsMount.Start("policy=" + LoopPolicy);
        int index = loops.FreeIndex(400);
        string name = $"loop{index}";

        // A lookup before the add: if the kernel kept it as a negative dentry, the add must invalidate it.
        Assert.That(Sys.Stat(mount[name], out _), Is.EqualTo(ENOENT), "not yet added");
        Assert.That(Ls(mount.MountPoint), Does.Not.Contain(name));

        loops.AddExact(index);
        var appeared = Sys.WaitFor(mount[name], exists: true, AppearCap);
        TestContext.Out.WriteLine($"{name} appeared after {appeared.TotalMilliseconds:0.000} ms");
        Assert.That(appeared, Is.LessThan(AppearCap), $"{name} did not appear in {AppearCap.TotalSeconds} s");
        Assert.That(Ls(mount.MountPoint), Does.Contain(name), "ls right after the add (stale cached listing?)");
        var st = Run.Command("stat", ["-c", "%F %t:%T", mount[name]]);
        Assert.That(st.Stdout.Trim(), Is.EqualTo($"block special file 7:{index:x}"), st.Output);

        loops.Remove(index);
        var vanished = Sys.WaitFor(mount[name], exists: false, AppearCap);
        TestContext.Out.WriteLine($"{name} vanished after {vanished.TotalMilliseconds:0.000} ms");
        Assert.That(vanished, Is.LessThan(AppearCap), $"{name} still there {AppearCap.TotalSeconds} s after LOOP_CTL_REMOVE");
        Assert.That(Sys.Stat(mount[name], out _), Is.EqualTo(ENOENT));
        Assert.That(Ls(mount.MountPoint), Does.Not.Contain(name), "ls right after the removal");
    }

    [Test]
    public void DefaultPolicyNeverShowsALoopDeviceWhileLoopPolicyMountDoes()
    {
        using var loops = LoopControl.OpenOrFail();
        using var plain = DevFsMount.Start();
        using var mount = DevFsMount.Start("policy=" + LoopPolicy);
        int index = loops.FreeIndex(400);
        string name = $"loop{index}";

        // Both looked up by exact name before the add: negative entries in either must not hide the device later.
        Assert.That(Sys.Stat(plain[name], out _), Is.EqualTo(ENOENT));
        Assert.That(Sys.Stat(mount[name], out _), Is.EqualTo(ENOENT));

        loops.AddExact(index);
        var appeared = Sys.WaitFor(mount[name], exists: true, AppearCap);
        Assert.That(appeared, Is.LessThan(AppearCap), $"{name} did not appear in the loop.yaml mount");
        Assert.That(Ls(mount.MountPoint), Does.Contain(name));

        Assert.That(Sys.Stat(plain[name], out _), Is.EqualTo(ENOENT), "the default policy must not show loop devices");
        Assert.That(Ls(plain.MountPoint), Does.Not.Contain(name));
        var cat = Run.Command("cat", [plain[name]]);
        Assert.That(cat.Stderr, Does.Contain("No such file or directory"));

        loops.Remove(index);
        Assert.That(Sys.WaitFor(mount[name], exists: false, AppearCap), Is.LessThan(AppearCap));
        Assert.That(Sys.Stat(plain[name], out _), Is.EqualTo(ENOENT));
    }

    [Test]
    public void ProxyHandleHeldAcrossRemovalGetsEnodevAndTheDeviceComesBackAsANewInode()
    {
        using var loops = LoopControl.OpenOrFail();
        using var mount = DevFsMount.Start("nodev,policy=" + LoopPolicy);
        int index = loops.FreeIndex(400);
        string name = $"loop{index}";
        string uevent = $"/sys/devices/virtual/block/{name}/uevent";

        loops.AddExact(index);
        Assert.That(Sys.WaitFor(mount[name], exists: true, AppearCap), Is.LessThan(AppearCap));
        Assert.That(Sys.Stat(mount[name], out var first), Is.EqualTo(0));
        Assert.That(first.IsRegular, Is.True, "with nodev a loop entry must be a proxy (regular file)");

        int fd = Sys.Open(mount[name], O_RDONLY);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0), $"open {mount[name]}: {Sys.Strerror(Sys.Errno)}");
        try
        {
            Assert.That(Sys.Read(fd, out int readErr), Is.GreaterThanOrEqualTo(0), $"read before removal: {Sys.Strerror(readErr)}");

            // LOOP_CTL_REMOVE would fail with EBUSY (the daemon holds the device open): a synthetic uevent makes
            // the registry see a removal while the kernel keeps the device.
            File.WriteAllText(uevent, "remove");
            Assert.That(Sys.WaitFor(mount[name], exists: false, AppearCap), Is.LessThan(AppearCap),
                "the entry must go on a remove uevent");
            long n = Sys.Read(fd, out readErr);
            Assert.That(n, Is.EqualTo(-1), "read through a revoked handle must fail");
            Assert.That(readErr, Is.EqualTo(ENODEV), $"errno {readErr} ({Sys.Strerror(readErr)}), want ENODEV (19)");
        }
        finally
        {
            Sys.Close(fd);
        }

        File.WriteAllText(uevent, "add");
        Assert.That(Sys.WaitFor(mount[name], exists: true, AppearCap), Is.LessThan(AppearCap), "the entry must return on an add uevent");
        Assert.That(Sys.Stat(mount[name], out var second), Is.EqualTo(0));
        TestContext.Out.WriteLine($"{name}: inode {first.Ino}, after remove+add uevents {second.Ino}");
        Assert.That(second.Ino, Is.Not.EqualTo(first.Ino), "a device that went and came back is a new inode");
        // The handle is usable again through the new entry.
        int fd2 = Sys.Open(mount[name], O_RDONLY);
        Assert.That(fd2, Is.GreaterThanOrEqualTo(0), $"open after re-add: {Sys.Strerror(Sys.Errno)}");
        Assert.That(Sys.Read(fd2, out int err2), Is.GreaterThanOrEqualTo(0), $"read after re-add: {Sys.Strerror(err2)}");
        Sys.Close(fd2);

        // A real removal and a new device of the same name: another new inode.
        loops.Remove(index);
        Assert.That(Sys.WaitFor(mount[name], exists: false, AppearCap), Is.LessThan(AppearCap));
        loops.AddExact(index);
        Assert.That(Sys.WaitFor(mount[name], exists: true, AppearCap), Is.LessThan(AppearCap));
        Assert.That(Sys.Stat(mount[name], out var third), Is.EqualTo(0));
        TestContext.Out.WriteLine($"{name}: inode after LOOP_CTL_REMOVE + LOOP_CTL_ADD {third.Ino}");
        Assert.That(third.Ino, Is.Not.EqualTo(second.Ino).And.Not.EqualTo(first.Ino));
    }

    [Test]
    public void DeviceUnderAFolderAppearsThereAndTheImplicitFolderGoesWithIt()
    {
        using var loops = LoopControl.OpenOrFail();
        int index = loops.FreeIndex(400);
        string name = $"loop{index}";
        // Only this one device is matched, so "disks" exists exactly while it does.
        string policy = Path.Combine(Path.GetTempPath(), $"devfs-hotplug-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(policy, $$"""
            version: 1
            devices:
              - match: { subsystem: mem, devname: "null", kind: char, major: 1, minor: 3 }
                mode: "0666"
                global: true
              - match: { subsystem: block, devname: "{{name}}", kind: block, major: 7 }
                path: "disks/{name}"
                mode: "0660"
            """);
        try
        {
            using var mount = DevFsMount.Start("policy=" + policy);
            string entry = mount[$"disks/{name}"];
            Assert.That(Ls(mount.MountPoint), Is.EqualTo(new[] { "null" }));
            Assert.That(Sys.Stat(mount["disks"], out _), Is.EqualTo(ENOENT));
            Assert.That(Sys.Stat(entry, out _), Is.EqualTo(ENOENT));

            loops.AddExact(index);
            Assert.That(Sys.WaitFor(entry, exists: true, AppearCap), Is.LessThan(AppearCap), $"disks/{name} did not appear");
            Assert.That(Sys.Stat(mount["disks"], out var dir), Is.EqualTo(0));
            Assert.That(dir.IsDirectory, Is.True);
            Assert.That(Ls(mount.MountPoint), Is.EqualTo(new[] { "disks", "null" }));
            Assert.That(Ls(mount["disks"]), Is.EqualTo(new[] { name }));
            Assert.That(Sys.Stat(mount[name], out _), Is.EqualTo(ENOENT), "the device is renamed, not also under its own name");

            loops.Remove(index);
            Assert.That(Sys.WaitFor(entry, exists: false, AppearCap), Is.LessThan(AppearCap), $"disks/{name} did not go");
            Assert.That(Sys.WaitFor(mount["disks"], exists: false, AppearCap), Is.LessThan(AppearCap),
                "the implicit folder must go with its last device");
            Assert.That(Ls(mount.MountPoint), Is.EqualTo(new[] { "null" }));

            // And it comes back with the next device.
            loops.AddExact(index);
            Assert.That(Sys.WaitFor(entry, exists: true, AppearCap), Is.LessThan(AppearCap));
            Assert.That(Ls(mount["disks"]), Is.EqualTo(new[] { name }));
        }
        finally
        {
            File.Delete(policy);
        }
    }

    [Test]
    public void StatStaysFastAndCorrectDuringAUeventStorm()
    {
        const int Writes = 5000, Stats = 2000;
        using var loops = LoopControl.OpenOrFail();
        using var mount = DevFsMount.Start("policy=" + LoopPolicy);
        var before = Ls(mount.MountPoint);
        Assert.That(before, Is.EqualTo(ExpectedLoopPolicyEntries()), "the loop.yaml mount before the storm");

        var uevents = Directory.GetDirectories("/sys/class/mem").Select(d => Path.Combine(d, "uevent")).Where(File.Exists).ToArray();
        Assert.That(uevents, Is.Not.Empty, "/sys/class/mem/*/uevent");
        var names = new[] { "null", "zero", "full", "random", "urandom", "tty", "loop-control" };

        Exception? writerError = null;
        int written = 0;
        var writer = new Thread(() =>
        {
            try
            {
                var change = "change"u8.ToArray();
                for (int i = 0; i < Writes; i++)
                {
                    using (var f = new FileStream(uevents[i % uevents.Length], FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1))
                        f.Write(change);
                    Interlocked.Increment(ref written);
                }
            }
            catch (Exception e)
            {
                writerError = e;
            }
        }) { IsBackground = true, Name = "uevent-storm" };

        var latencies = new double[Stats];
        var failures = new List<string>();
        writer.Start();
        for (int i = 0; i < Stats; i++)
        {
            // Spread the stats over the storm: stat i waits until i/Stats of the uevents are written (each change
            // uevent invalidates the entry's attributes, so these stats reach the daemon while it applies uevents).
            int due = (int)((long)i * Writes / Stats);
            while (Volatile.Read(ref written) < due && writer.IsAlive)
                Thread.SpinWait(20);
            string path = mount[names[i % names.Length]];
            long t0 = Stopwatch.GetTimestamp();
            int e = Sys.Stat(path, out _);
            latencies[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            if (e != 0)
                failures.Add($"stat {path}: {Sys.Strerror(e)}");
        }
        int writtenWhileStatting = Volatile.Read(ref written);
        writer.Join(TimeSpan.FromSeconds(120));
        Assert.That(writerError, Is.Null, $"writing change uevents: {writerError}");
        Assert.That(written, Is.EqualTo(Writes));

        Array.Sort(latencies);
        double p50 = latencies[Stats / 2], p99 = latencies[(int)Math.Ceiling(Stats * 0.99) - 1], max = latencies[^1];
        TestContext.Out.WriteLine($"{Stats} stats during {Writes} change uevents ({writtenWhileStatting} written meanwhile): " +
                                  $"p50 {p50:0.000} ms, p99 {p99:0.000} ms, max {max:0.000} ms");
        Assert.That(failures, Is.Empty);
        Assert.That(p99, Is.LessThan(100), "p99 stat latency during the storm");

        Assert.That(Environment.ProcessExists(mount.DaemonPid), Is.True, "the daemon survived the storm");
        // Once the daemon has drained the queue the mount must list exactly what the policy says.
        var expected = ExpectedLoopPolicyEntries();
        Environment.WaitUntil(() => Ls(mount.MountPoint).SequenceEqual(expected), TimeSpan.FromSeconds(5));
        Assert.That(Ls(mount.MountPoint), Is.EqualTo(expected), "the loop.yaml mount after the storm");
        foreach (var n in names)
            Assert.That(Sys.Stat(mount[n], out _), Is.EqualTo(0), n);
    }

    [Test]
    public void DevicesAddedAndRemovedWhileTheDaemonIsStoppedAreFollowedAfterwards()
    {
        // SIGSTOP the daemon, flood its uevent socket with change uevents, add one loop device and remove another
        // meanwhile, SIGCONT: the mount must show both changes (from the queue, or from the resync if the buffer
        // overflowed). The stop/continue also interrupts the monitor's poll(): it must carry on (it once died on it).
        const int Flood = 40_000;
        using var loops = LoopControl.OpenOrFail();
        using var mount = DevFsMount.Start("policy=" + LoopPolicy);
        int gone = loops.FreeIndex(400);
        loops.AddExact(gone);
        int added = loops.FreeIndex(gone + 1);
        Assert.That(Sys.WaitFor(mount[$"loop{gone}"], exists: true, AppearCap), Is.LessThan(AppearCap));
        Assert.That(Sys.Stat(mount[$"loop{added}"], out _), Is.EqualTo(ENOENT));

        var uevents = Directory.GetDirectories("/sys/class/mem").Select(d => Path.Combine(d, "uevent")).Where(File.Exists).ToArray();
        var change = "change"u8.ToArray();
        Assert.That(kill(mount.DaemonPid, SIGSTOP), Is.EqualTo(0));
        try
        {
            for (int i = 0; i < Flood; i++)
            {
                using var f = new FileStream(uevents[i % uevents.Length], FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1);
                f.Write(change);
                if (i == Flood / 2)
                {
                    loops.AddExact(added);
                    loops.Remove(gone);
                }
            }
        }
        finally
        {
            kill(mount.DaemonPid, SIGCONT);
        }

        var appeared = Sys.WaitFor(mount[$"loop{added}"], exists: true, TimeSpan.FromSeconds(10));
        var vanished = Sys.WaitFor(mount[$"loop{gone}"], exists: false, TimeSpan.FromSeconds(10));
        TestContext.Out.WriteLine($"after SIGCONT: loop{added} appeared in {appeared.TotalMilliseconds:0} ms, loop{gone} vanished in {vanished.TotalMilliseconds:0} ms");
        Assert.That(appeared, Is.LessThan(TimeSpan.FromSeconds(10)), $"loop{added} (added during the overflow) never appeared");
        Assert.That(vanished, Is.LessThan(TimeSpan.FromSeconds(10)), $"loop{gone} (removed during the overflow) never went");
        var expected = ExpectedLoopPolicyEntries();
        Environment.WaitUntil(() => Ls(mount.MountPoint).SequenceEqual(expected), TimeSpan.FromSeconds(5));
        Assert.That(Ls(mount.MountPoint), Is.EqualTo(expected));
    }

    // ---------------------------------------------------------------- helpers

    private static readonly string[] LoopPolicyFixedEntries =
        ["fd", "full", "loop-control", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"];

    /// <summary>What policies/examples/loop.yaml shows on this host: its fixed entries plus every loop block device on major 7.</summary>
    private static string[] ExpectedLoopPolicyEntries()
    {
        var loops = Directory.GetDirectories("/sys/class/block", "loop*")
            .Select(Path.GetFileName)
            .Where(n => n is not null && n.Length > 4 && char.IsAsciiDigit(n[4]))
            .Where(n => File.ReadAllText($"/sys/class/block/{n}/dev").Trim().StartsWith("7:", StringComparison.Ordinal))
            .Select(n => n!);
        return LoopPolicyFixedEntries.Concat(loops).OrderBy(n => n, StringComparer.Ordinal).ToArray();
    }

    /// <summary>`ls -A` of a directory, one name per element, in ls's (C locale) order.</summary>
    private static string[] Ls(string dir)
    {
        var ls = Run.Shell($"LC_ALL=C ls -A '{dir}'");
        Assert.That(ls.ExitCode, Is.EqualTo(0), $"ls {dir}: {ls.Output}");
        return ls.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
