using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>The first working devfs: a real mount of a policy, read and written with real programs.</summary>
[TestFixture]
[NonParallelizable]
public sealed class MountTests
{
    private static readonly string[] DefaultEntries =
        ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"];

    [Test]
    public void ListingShowsExactlyThePolicysEntries()
    {
        using var mount = DevFsMount.Start();
        var ls = Run.Command("ls", ["-A", mount.MountPoint]);
        Assert.That(ls.ExitCode, Is.EqualTo(0), ls.Output);
        Assert.That(ls.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(DefaultEntries));
        Assert.That(new FileInfo(mount["ptmx"]).LinkTarget, Is.EqualTo("pts/ptmx"));
        Assert.That(new FileInfo(mount["fd"]).LinkTarget, Is.EqualTo("/proc/self/fd"));
        Assert.That(Directory.Exists(mount["pts"]) && Directory.Exists(mount["shm"]) && Directory.Exists(mount["mqueue"]));
        Assert.That(Environment.MountLine(mount.MountPoint), Does.Contain("fuse.devfs"));
    }

    [TestCase("kmsg")]
    [TestCase("loop0")]
    [TestCase("vda")]
    [TestCase("mem")]
    [TestCase("tty0")]
    [TestCase("ttyS0")]
    [TestCase("loop-control")]
    public void HostDevicesOutsideThePolicyAreAbsentEvenByExactName(string name)
    {
        using var mount = DevFsMount.Start();
        var stat = Run.Command("stat", [mount[name]]);
        Assert.That(stat.ExitCode, Is.Not.EqualTo(0));
        Assert.That(stat.Stderr, Does.Contain("No such file or directory"));
        Assert.That(Run.Command("cat", [mount[name]]).Stderr, Does.Contain("No such file or directory"));
    }

    [Test]
    public void ProxyZeroReadsZeros()
    {
        using var mount = DevFsMount.Start("nodev");
        Assert.That(Run.Command("stat", ["-c", "%F", mount["zero"]]).Stdout.Trim(), Is.EqualTo("regular empty file"),
            "with nodev, auto entries must be proxy files");
        var dd = Run.Command("/bin/sh", ["-c", $"dd if={mount["zero"]} bs=64k count=16 status=none | od -An -tx1 | sort -u"]);
        Assert.That(dd.ExitCode, Is.EqualTo(0), dd.Output);
        Assert.That(dd.Stdout.Trim().Split('\n'), Is.EqualTo(new[] { "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00", "*" }).Or.EqualTo(new[] { "*", "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00" }));
        var size = Run.Command("/bin/sh", ["-c", $"head -c 1048576 {mount["zero"]} | wc -c"]);
        Assert.That(size.Stdout.Trim(), Is.EqualTo("1048576"));
    }

    [Test]
    public void ProxyNullAcceptsWritesAndReadsEmpty()
    {
        using var mount = DevFsMount.Start("nodev");
        var write = Run.Command("dd", ["if=/dev/zero", $"of={mount["null"]}", "bs=1M", "count=8", "status=none"]);
        Assert.That(write.ExitCode, Is.EqualTo(0), write.Output);
        var read = Run.Command("/bin/sh", ["-c", $"cat {mount["null"]} | wc -c"]);
        Assert.That(read.Stdout.Trim(), Is.EqualTo("0"));
    }

    [Test]
    public void ProxyUrandomGivesRandomBytes()
    {
        using var mount = DevFsMount.Start("nodev");
        var first = ReadBytes(mount["urandom"], 4096);
        var second = ReadBytes(mount["urandom"], 4096);
        Assert.That(first, Has.Length.EqualTo(4096));
        Assert.That(first, Is.Not.EqualTo(second));
        Assert.That(first.Distinct().Count(), Is.GreaterThan(200), "4096 random bytes take most of the 256 values");
    }

    [Test]
    public void ProxyFullRefusesWritesWithEnospc()
    {
        using var mount = DevFsMount.Start("nodev");
        // dd, not the shell's echo: dash reports every write error as "I/O error".
        var write = Run.Command("dd", ["if=/dev/zero", $"of={mount["full"]}", "bs=1", "count=1", "status=none"]);
        Assert.That(write.ExitCode, Is.Not.EqualTo(0));
        Assert.That(write.Stderr, Does.Contain("No space left on device"));
    }

    [Test]
    public void NodeEntriesStatAsCharacterDevicesWithTheHostsRdev()
    {
        using var mount = DevFsMount.Start();
        foreach (var name in new[] { "null", "zero", "full", "random", "urandom", "tty" })
        {
            var host = Run.Command("stat", ["-c", "%F %t:%T", $"/dev/{name}"]).Stdout.Trim();
            var ours = Run.Command("stat", ["-c", "%F %t:%T", mount[name]]).Stdout.Trim();
            Assert.That(ours, Is.EqualTo(host), name);
            Assert.That(ours, Does.StartWith("character special file"));
        }
        var dd = Run.Command("/bin/sh", ["-c", $"head -c 4096 {mount["zero"]} | tr -d '\\000' | wc -c"]);
        Assert.That(dd.Stdout.Trim(), Is.EqualTo("0"), "the kernel opens the real zero driver through a node entry");
    }

    [Test]
    public void NonRootCallerIsRefusedWhereTheModeSaysSo()
    {
        var policy = WritePolicy("""
            version: 1
            devices:
              - match: { subsystem: mem, devname: zero }
                access: proxy
                mode: "0600"
              - match: { subsystem: mem, devname: "null" }
                access: proxy
                mode: "0666"
            """);
        using var mount = DevFsMount.Start($"policy={policy}");
        var asNobody = Run.Command("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "head", "-c", "1", mount["zero"]]);
        Assert.That(asNobody.ExitCode, Is.Not.EqualTo(0));
        Assert.That(asNobody.Stderr, Does.Contain("Permission denied"));
        var nullAsNobody = Run.Command("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c", $"echo x > {mount["null"]}"]);
        Assert.That(nullAsNobody.ExitCode, Is.EqualTo(0), nullAsNobody.Output);
        var asRoot = Run.Command("head", ["-c", "1", mount["zero"]]);
        Assert.That(asRoot.ExitCode, Is.EqualTo(0), asRoot.Output);
    }

    [Test]
    public void RootMayMakeAndRemoveDirectoriesSymlinksAndFiles()
    {
        using var mount = DevFsMount.Start();
        var script = $"""
            set -e
            cd {mount.MountPoint}
            mkdir -p net pts/sub
            ln -s /proc/kcore core
            echo hello > console
            mkfifo initctl
            test "$(cat console)" = hello
            test "$(readlink core)" = /proc/kcore
            test -p initctl
            mv console console.moved
            ls -A
            rm core console.moved initctl
            rmdir pts/sub net
            """;
        var result = Run.Shell(script);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(result.Stdout, Does.Contain("console.moved").And.Contain("core").And.Contain("net"));
        Assert.That(Run.Command("ls", ["-A", mount.MountPoint]).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(DefaultEntries));
    }

    [Test]
    public void NonRootCannotCreateEntries()
    {
        using var mount = DevFsMount.Start();
        var result = Run.Command("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "mkdir", mount["evil"]]);
        Assert.That(result.ExitCode, Is.Not.EqualTo(0));
        Assert.That(result.Stderr, Does.Contain("Permission denied"));
        Assert.That(Directory.Exists(mount["evil"]), Is.False);
    }

    [Test]
    public void MknodOfADeviceThePolicyDoesNotShowIsRefused()
    {
        using var mount = DevFsMount.Start();
        var kmsg = Run.Command("mknod", [mount["kmsg"], "c", "1", "11"]);
        Assert.That(kmsg.ExitCode, Is.Not.EqualTo(0));
        Assert.That(kmsg.Stderr, Does.Contain("Operation not permitted"));
        var nullCopy = Run.Command("mknod", [mount["null2"], "c", "1", "3"]);
        Assert.That(nullCopy.ExitCode, Is.EqualTo(0), nullCopy.Output);
        Assert.That(Run.Command("stat", ["-c", "%F %t:%T", mount["null2"]]).Stdout.Trim(), Is.EqualTo("character special file 1:3"));
    }

    [Test]
    public void UnmountLeavesNoProcessAndNoMount()
    {
        var mount = DevFsMount.Start();
        mount.Unmount();
        Assert.That(Environment.IsMounted(mount.MountPoint), Is.False);
        Assert.That(Environment.ProcessExists(mount.DaemonPid), Is.False, "the daemon must exit after umount");
        mount.Dispose();
    }

    [Test]
    public void UnprivilegedUserMountsThroughFusermount3()
    {
        Environment.RequireRootAndFuse();
        var mountPoint = Directory.CreateTempSubdirectory("devfs-user-").FullName;
        Run.Command("chown", ["65534:65534", mountPoint]);
        // Debian's udev rule makes /dev/fuse 0666 so that fusermount3 works for users; this VM has no udev.
        var fuseMode = File.GetUnixFileMode("/dev/fuse");
        File.SetUnixFileMode("/dev/fuse", fuseMode | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        string[] asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
        try
        {
            var mount = Run.Command(asNobody[0], [.. asNobody[1..], Environment.DevFsBinary, "devfs", mountPoint]);
            Assert.That(mount.ExitCode, Is.EqualTo(0), mount.Output);
            Assert.That(Environment.MountLine(mountPoint), Does.Contain("fuse.devfs").And.Contain("user_id=65534").And.Contain("nodev"));
            var daemon = Environment.FindDaemon(mountPoint);
            Assert.That(daemon, Is.Not.Null);
            var use = Run.Command(asNobody[0], [.. asNobody[1..], "/bin/sh", "-c", $"stat -c %F {mountPoint}/zero && head -c 4 {mountPoint}/zero | od -An -tx1"]);
            Assert.That(use.Stdout, Does.Contain("regular empty file").And.Contain("00 00 00 00"), "a user's mount is nodev: entries are proxies");
            var unmount = Run.Command(asNobody[0], [.. asNobody[1..], "fusermount3", "-u", mountPoint]);
            Assert.That(unmount.ExitCode, Is.EqualTo(0), unmount.Output);
            Environment.WaitForExit(daemon!.Value, TimeSpan.FromSeconds(10));
            Assert.That(Environment.ProcessExists(daemon.Value), Is.False);
        }
        finally
        {
            File.SetUnixFileMode("/dev/fuse", fuseMode);
            if (Environment.IsMounted(mountPoint))
                Run.Command("umount", ["-l", mountPoint]);
            Directory.Delete(mountPoint);
        }
    }

    [Test]
    public void ForegroundDaemonUnmountsOnSigterm()
    {
        Environment.RequireRootAndFuse();
        var mountPoint = Directory.CreateTempSubdirectory("devfs-it-").FullName;
        var start = new System.Diagnostics.ProcessStartInfo(Environment.DevFsBinary) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "devfs", mountPoint, "-f" })
            start.ArgumentList.Add(arg);
        using var daemon = System.Diagnostics.Process.Start(start)!;
        var stderr = daemon.StandardError.ReadToEndAsync();
        try
        {
            Assert.That(Environment.WaitUntil(() => Environment.IsMounted(mountPoint), TimeSpan.FromSeconds(10)), Is.True, "the mount never appeared");
            Run.Command("kill", ["-TERM", daemon.Id.ToString()]);
            Assert.That(daemon.WaitForExit(10_000), Is.True, "the daemon did not exit on SIGTERM");
            Assert.That(daemon.ExitCode, Is.EqualTo(0), stderr.Result);
            Assert.That(Environment.IsMounted(mountPoint), Is.False);
        }
        finally
        {
            Environment.StopDaemonAndUnmount(daemon, mountPoint);
        }
    }

    [Test]
    public void BrokenPolicyIsRefusedAtStartWithItsPosition()
    {
        Environment.RequireRootAndFuse();
        var policy = WritePolicy("""
            version: 1
            devices:
              - match: { devname: zero }
                access: fast
            """);
        var mountPoint = Directory.CreateTempSubdirectory("devfs-it-").FullName;
        try
        {
            var result = Run.Command(Environment.DevFsBinary, ["devfs", mountPoint, "-o", $"policy={policy}"]);
            Assert.That(result.ExitCode, Is.EqualTo(1));
            Assert.That(result.Stderr, Does.Contain($"{policy}:4:"));
            Assert.That(result.Stderr, Does.Contain("fast"));
            Assert.That(Environment.IsMounted(mountPoint), Is.False);
            var check = Run.Command(Environment.DevFsBinary, ["check", policy]);
            Assert.That(check.ExitCode, Is.EqualTo(1));
            Assert.That(check.Stderr, Does.Contain($"{policy}:4:"));
            var good = Run.Command(Environment.DevFsBinary, ["check", Environment.PolicyPath("default.yaml"), Environment.PolicyPath("examples/loop.yaml")]);
            Assert.That(good.ExitCode, Is.EqualTo(0), good.Output);
        }
        finally
        {
            Directory.Delete(mountPoint);
        }
    }

    [Test]
    public void UnknownMountOptionIsAUsageError()
    {
        Environment.RequireRootAndFuse();
        var result = Run.Command(Environment.DevFsBinary, ["devfs", "/tmp", "-o", "bogus=1"]);
        Assert.That(result.ExitCode, Is.EqualTo(2));
        Assert.That(result.Stderr, Does.Contain("unknown option 'bogus=1'"));
    }

    [Test]
    public void ListPrintsWhatAContainerWouldSeeWithoutMounting()
    {
        var result = Run.Command(Environment.DevFsBinary, ["list", "-o", "nodev"]);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(result.Stdout, Does.Match(@"(?m)^zero\s+char\s+proxy\s+0666\s+0:0\s+1:5"));
        Assert.That(result.Stdout, Does.Not.Contain("kmsg"));
    }

    internal static string WritePolicy(string yaml)
    {
        var path = Path.Combine(Path.GetTempPath(), $"devfs-policy-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private static byte[] ReadBytes(string path, int count)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
        var buffer = new byte[count];
        stream.ReadExactly(buffer);
        return buffer;
    }
}
