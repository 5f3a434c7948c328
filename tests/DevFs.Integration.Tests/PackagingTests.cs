using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>
/// System integration as an administrator meets it: `make install`/`uninstall`, `mount -t fuse.devfs` through
/// Debian's mount.fuse3, an /etc/fstab line, the systemd unit, and `make deb` installed with dpkg.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PackagingTests
{
    private static string Repo => Environment.RepoRoot;

    /// <summary>make TARGET with the already published binary (never rebuilt here: make test built it).</summary>
    private static CommandResult Make(params string[] args)
    {
        _ = Environment.DevFsBinary;
        var result = Run.Command("make", ["-C", Repo, "--no-print-directory", "-o", Path.Combine(Repo, "artifacts", "devfs"), .. args],
            TimeSpan.FromSeconds(90));
        Assert.That(result.ExitCode, Is.EqualTo(0), $"make {string.Join(' ', args)} failed:\n{result.Output}");
        return result;
    }

    private static void Require(string program, string package)
    {
        if (Run.Shell($"command -v {program}").ExitCode != 0)
            Assert.Fail($"{program} is missing: apt-get install {package} (make deps installs it)");
    }

    [Test]
    public void InstallPutsEverythingUnderDestdirAndUninstallTakesItBack()
    {
        Environment.RequireRootAndFuse();
        var destdir = Directory.CreateTempSubdirectory("devfs-destdir-").FullName;
        try
        {
            Make("install", $"DESTDIR={destdir}", "PREFIX=/usr");
            string[] expected =
            [
                "usr/sbin/devfs", "etc/devfs/default.yaml", "etc/devfs/examples/loop.yaml", "usr/lib/systemd/system/devfs@.service",
                "usr/share/devfs/lxc/devfs-hook", "usr/share/devfs/lxc/devfs.conf", "usr/share/devfs/oci/devfs-oci-hook",
                "usr/share/man/man8/devfs.8.gz", "usr/share/man/man5/devfs-policy.5.gz",
            ];
            foreach (var file in expected)
                Assert.That(File.Exists(Path.Combine(destdir, file)), Is.True, $"make install did not install {file}");
            var version = Run.Command(Path.Combine(destdir, "usr/sbin/devfs"), ["--version"]);
            Assert.That(version.ExitCode, Is.EqualTo(0));
            Assert.That(version.Stdout, Does.StartWith("devfs "));
            var unit = File.ReadAllText(Path.Combine(destdir, "usr/lib/systemd/system/devfs@.service"));
            Assert.That(unit, Does.Contain("ExecStart=/usr/sbin/devfs devfs /run/devfs/%i -f -o container=%i,policy=/etc/devfs/%i.yaml"));
            Assert.That(File.ReadAllText(Path.Combine(destdir, "usr/share/devfs/lxc/devfs-hook")), Does.Contain("DEVFS=/usr/sbin/devfs"));
            Assert.That(File.ReadAllText(Path.Combine(destdir, "usr/share/devfs/lxc/devfs.conf")),
                Does.Contain("lxc.hook.pre-start = /usr/share/devfs/lxc/devfs-hook"));

            // The man pages are valid troff: man renders them without warnings.
            foreach (var page in new[] { "usr/share/man/man8/devfs.8.gz", "usr/share/man/man5/devfs-policy.5.gz" })
            {
                var rendered = Run.Shell($"MANWIDTH=80 man --warnings -l {Path.Combine(destdir, page)} 2>&1 >/dev/null; MANWIDTH=80 man -l {Path.Combine(destdir, page)} | head -5");
                Assert.That(rendered.Stdout, Does.Contain("NAME").And.Not.Contain("warning"), page + ": " + rendered.Output);
            }

            // An administrator's edited policy survives both a reinstall and an uninstall.
            File.AppendAllText(Path.Combine(destdir, "etc/devfs/default.yaml"), "# edited\n");
            Make("install", $"DESTDIR={destdir}", "PREFIX=/usr");
            Assert.That(File.ReadAllText(Path.Combine(destdir, "etc/devfs/default.yaml")), Does.EndWith("# edited\n"));
            Make("uninstall", $"DESTDIR={destdir}", "PREFIX=/usr");
            var left = Directory.EnumerateFiles(destdir, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(destdir, f)).ToList();
            Assert.That(left, Is.EquivalentTo(new[] { "etc/devfs/default.yaml" }), "uninstall removes all but the edited policy");
        }
        finally
        {
            Directory.Delete(destdir, recursive: true);
        }
    }

    [Test]
    public void MountHelperFstabAndUmountWorkWithTheInstalledBinary()
    {
        Environment.RequireRootAndFuse();
        Require("mount.fuse3", "fuse3");
        // mount(8) runs helpers without PATH, so mount.fuse3's /bin/sh only finds devfs in the shell's default
        // PATH: install for real into /usr/local/sbin (policies into a scratch folder), and put things back after.
        const string installed = "/usr/local/sbin/devfs";
        var scratch = Directory.CreateTempSubdirectory("devfs-pkg-").FullName;
        var backup = Path.Combine(scratch, "devfs.orig");
        var fstabBackup = Path.Combine(scratch, "fstab.orig");
        var mountPoint = Path.Combine(scratch, "dev");
        Directory.CreateDirectory(mountPoint);
        if (File.Exists(installed))
            File.Copy(installed, backup);
        File.Copy("/etc/fstab", fstabBackup);
        string[] installArgs = ["PREFIX=/usr/local", $"SYSCONFDIR={scratch}/etc"];
        try
        {
            Make(["install", .. installArgs]);
            var policy = Environment.PolicyPath("examples/loop.yaml");

            var mounted = Run.Command("mount", ["-t", "fuse.devfs", "devfs", mountPoint, "-o", $"container=pkg,policy={policy},nofail,noatime"]);
            Assert.That(mounted.ExitCode, Is.EqualTo(0), $"mount -t fuse.devfs failed: {mounted.Output}");
            AssertServed(mountPoint, installed);
            Assert.That(File.Exists(Path.Combine(mountPoint, "loop-control")), Is.True, "the policy given with -o policy= is used");
            UmountAndExpectDaemonGone(mountPoint);

            File.AppendAllText("/etc/fstab", $"devfs {mountPoint} fuse.devfs container=pkg,policy={policy},noauto,nofail,x-test=1 0 0\n");
            var byFstab = Run.Command("mount", [mountPoint]);
            Assert.That(byFstab.ExitCode, Is.EqualTo(0), $"mount MOUNTPOINT with an fstab line failed: {byFstab.Output}");
            AssertServed(mountPoint, installed);
            Assert.That(File.Exists(Path.Combine(mountPoint, "loop-control")), Is.True);
            UmountAndExpectDaemonGone(mountPoint);
        }
        finally
        {
            File.Copy(fstabBackup, "/etc/fstab", overwrite: true);
            if (Environment.IsMounted(mountPoint))
                Run.Command("umount", ["-l", mountPoint]);
            Run.Command("make", ["-C", Repo, "--no-print-directory", "uninstall", .. installArgs]);
            if (File.Exists(backup))
                File.Copy(backup, installed, overwrite: true);
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static void AssertServed(string mountPoint, string binary)
    {
        var line = Environment.MountLine(mountPoint);
        Assert.That(line, Is.Not.Null, "nothing is mounted");
        Assert.That(line!.Split(' ')[2], Is.EqualTo("fuse.devfs"), line);
        Assert.That(File.Exists(Path.Combine(mountPoint, "null")), Is.True);
        Assert.That(File.Exists(Path.Combine(mountPoint, "kmsg")), Is.False);
        var pid = Environment.FindDaemon(mountPoint);
        Assert.That(pid, Is.Not.Null, "no devfs process serves the mount");
        Assert.That(File.ResolveLinkTarget($"/proc/{pid}/exe", false)?.FullName, Is.EqualTo(binary), "mount.fuse3 ran the installed devfs");
    }

    private static void UmountAndExpectDaemonGone(string mountPoint)
    {
        var pid = Environment.FindDaemon(mountPoint)!.Value;
        var result = Run.Command("umount", [mountPoint]);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(Environment.IsMounted(mountPoint), Is.False);
        Environment.WaitForExit(pid, TimeSpan.FromSeconds(10));
        Assert.That(Environment.ProcessExists(pid), Is.False, "the daemon outlived its mount");
    }

    [Test]
    public void SystemdTemplateUnitVerifies()
    {
        Environment.RequireRootAndFuse();
        Require("systemd-analyze", "systemd");
        var destdir = Directory.CreateTempSubdirectory("devfs-unit-").FullName;
        try
        {
            // The unit's programs must exist where it names them: install into /usr/local's layout under DESTDIR
            // and check a copy that names the binary there.
            Make("install", $"DESTDIR={destdir}", "PREFIX=/usr/local");
            var unitDir = Path.Combine(destdir, "units");
            Directory.CreateDirectory(unitDir);
            var unit = File.ReadAllText(Path.Combine(destdir, "usr/local/lib/systemd/system/devfs@.service"))
                .Replace("/usr/local/sbin/devfs", Path.Combine(destdir, "usr/local/sbin/devfs"));
            Assert.That(unit, Does.Contain("Restart=on-failure").And.Contain("RuntimeDirectory=devfs/%i").And.Contain("ExecStop=/bin/umount /run/devfs/%i"));
            Assert.That(unit, Does.Contain("Type=notify").And.Contain("WatchdogSec="), "devfs sends READY=1 and WATCHDOG=1");
            File.WriteAllText(Path.Combine(unitDir, "devfs@.service"), unit);
            File.CreateSymbolicLink(Path.Combine(unitDir, "devfs@web.service"), "devfs@.service");
            var service = File.ReadAllText(Path.Combine(destdir, "usr/local/lib/systemd/system/devfs.service"))
                .Replace("/usr/local/sbin/devfs", Path.Combine(destdir, "usr/local/sbin/devfs"));
            Assert.That(service, Does.Contain("Type=notify").And.Contain("devfs serve"));
            File.WriteAllText(Path.Combine(unitDir, "devfs.service"), service);
            foreach (var name in new[] { "devfs@web.service", "devfs.service" })
            {
                var verify = Run.Command("systemd-analyze", ["verify", "--man=no", Path.Combine(unitDir, name)]);
                Assert.That(verify.ExitCode, Is.EqualTo(0), verify.Output);
                Assert.That(verify.Output, Does.Not.Contain("devfs"), verify.Output);
            }
        }
        finally
        {
            Directory.Delete(destdir, recursive: true);
        }
    }

    [Test]
    public void DebianPackageInstallsWithDpkgAndRemovesCleanly()
    {
        Environment.RequireRootAndFuse();
        if (Run.Shell("dpkg-query -W -f='${Status}' devfs 2>/dev/null | grep -q 'ok installed'").ExitCode == 0)
            Assert.Fail("a devfs package is already installed on this machine; this test installs and purges its own: dpkg -P devfs first");
        var built = Make("deb");
        var deb = Directory.GetFiles(Path.Combine(Repo, "artifacts"), "devfs_*.deb").Single();
        Assert.That(built.Output, Does.Contain(Path.GetFileName(deb)));
        var info = Run.Command("dpkg-deb", ["-I", deb]);
        Assert.That(info.Stdout, Does.Contain("Package: devfs").And.Contain("conffiles"));
        Assert.That(Run.Command("dpkg-deb", ["-I", deb, "conffiles"]).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EquivalentTo(new[] { "/etc/devfs/default.yaml", "/etc/devfs/examples/loop.yaml" }));
        try
        {
            var install = Run.Command("dpkg", ["-i", deb], TimeSpan.FromSeconds(60));
            Assert.That(install.ExitCode, Is.EqualTo(0), install.Output);
            var version = Run.Command("/usr/sbin/devfs", ["--version"]);
            Assert.That(version.ExitCode, Is.EqualTo(0), version.Output);
            Assert.That(version.Stdout, Does.StartWith("devfs "));
            foreach (var file in new[] { "/etc/devfs/default.yaml", "/etc/devfs/examples/loop.yaml", "/lib/systemd/system/devfs@.service",
                         "/usr/share/devfs/lxc/devfs-hook", "/usr/share/devfs/lxc/devfs.conf", "/usr/share/devfs/oci/devfs-oci-hook" })
                Assert.That(File.Exists(file), Is.True, $"{file} is not installed");
            Assert.That(Run.Command("man", ["-w", "devfs"]).Stdout.Trim(), Is.EqualTo("/usr/share/man/man8/devfs.8.gz"));
            Assert.That(Run.Command("man", ["-w", "5", "devfs-policy"]).Stdout.Trim(), Is.EqualTo("/usr/share/man/man5/devfs-policy.5.gz"));
            Assert.That(Run.Command("/usr/sbin/devfs", ["check", "/etc/devfs/default.yaml", "/etc/devfs/examples/loop.yaml"]).ExitCode, Is.EqualTo(0));
            var verify = Run.Command("dpkg", ["--verify", "devfs"]);
            Assert.That(verify.ExitCode, Is.EqualTo(0), verify.Output);

            var remove = Run.Command("dpkg", ["-r", "devfs"], TimeSpan.FromSeconds(60));
            Assert.That(remove.ExitCode, Is.EqualTo(0), remove.Output);
            Assert.That(File.Exists("/usr/sbin/devfs"), Is.False, "dpkg -r leaves the binary");
            Assert.That(File.Exists("/etc/devfs/default.yaml"), Is.True, "dpkg -r keeps conffiles");
            var purge = Run.Command("dpkg", ["-P", "devfs"], TimeSpan.FromSeconds(60));
            Assert.That(purge.ExitCode, Is.EqualTo(0), purge.Output);
            Assert.That(Directory.Exists("/etc/devfs"), Is.False, "dpkg -P leaves /etc/devfs");
        }
        finally
        {
            Run.Command("dpkg", ["-P", "devfs"], TimeSpan.FromSeconds(60));
        }
    }
}
