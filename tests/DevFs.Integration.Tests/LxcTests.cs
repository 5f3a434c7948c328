using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>
/// A real LXC container (Debian's lxc, busybox template) whose /dev is served by devfs through the shipped hooks
/// (packaging/lxc, installed with make install): filtered, hotplugged live, torn down with the container.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class LxcTests
{
    [Test]
    public void PrivilegedBusyboxContainerSeesFilteredLiveDevAndStopsCleanly()
    {
        Environment.RequireRootAndFuse();
        foreach (var (program, package) in new[] { ("lxc-create", "lxc"), ("busybox", "busybox-static") })
        {
            if (Run.Shell($"command -v {program}").ExitCode != 0)
                Assert.Fail($"{program} is missing: apt-get install {package} (make deps installs it)");
        }
        var name = $"devfs-it-{System.Environment.ProcessId}";
        var prefix = Directory.CreateTempSubdirectory("devfs-lxc-").FullName;
        var stateDir = Directory.CreateTempSubdirectory("devfs-state-").FullName;
        var mountPoint = $"/run/devfs/{name}";
        var log = Path.Combine(prefix, "lxc.log");
        try
        {
            var install = Run.Command("make", ["-C", Environment.RepoRoot, "--no-print-directory", "-o", Path.Combine(Environment.RepoRoot, "artifacts", "devfs"),
                "install", $"PREFIX={prefix}"], TimeSpan.FromSeconds(60));
            Assert.That(install.ExitCode, Is.EqualTo(0), install.Output);
            File.Copy(Environment.DevFsBinary, Path.Combine(prefix, "sbin", "devfs"), overwrite: true);

            var created = Run.Command("lxc-create", ["-n", name, "-t", "busybox"], TimeSpan.FromSeconds(60));
            Assert.That(created.ExitCode, Is.EqualTo(0), created.Output);
            var config = $"/var/lib/lxc/{name}/config";
            // No lxcbr0 and no AppArmor here; the shipped snippet takes over /dev (lxc.autodev = 0 after the template's 1).
            var lines = File.ReadAllLines(config).Where(l => !l.StartsWith("lxc.net.0.") && !l.StartsWith("lxc.apparmor.")).ToList();
            lines.AddRange(["lxc.net.0.type = empty", "lxc.apparmor.profile = unconfined"]);
            // The shipped lines (what lxc.include of devfs.conf gives), with the loop policy as a hook option.
            var hook = $"{prefix}/share/devfs/lxc/devfs-hook";
            var snippet = File.ReadAllLines(Path.Combine(prefix, "share/devfs/lxc/devfs.conf")).Where(l => l.StartsWith("lxc.")).ToList();
            Assert.That(snippet, Does.Contain($"lxc.hook.pre-start = {hook}").And.Contain("lxc.autodev = 0"));
            lines.AddRange(snippet.Select(l => l == $"lxc.hook.pre-start = {hook}" ? $"{l} policy={Environment.PolicyPath("examples/loop.yaml")}" : l));
            File.WriteAllLines(config, lines);

            var env = $"DEVFS_STATE_DIR={stateDir}";
            var started = Run.Shell($"{env} lxc-start -n {name} -d -l DEBUG -o {log}", TimeSpan.FromSeconds(30));
            Assert.That(started.ExitCode, Is.EqualTo(0), started.Output + ReadLog(log));
            Assert.That(Environment.WaitUntil(() => Run.Command("lxc-info", ["-n", name, "-s"]).Stdout.Contains("RUNNING"), TimeSpan.FromSeconds(10)),
                "the container did not reach RUNNING" + ReadLog(log));
            Assert.That(Environment.MountLine(mountPoint), Does.Contain(" fuse.devfs "), "pre-start did not mount " + mountPoint);
            var daemon = Environment.FindDaemon(mountPoint);
            Assert.That(daemon, Is.Not.Null, "no devfs process serves " + mountPoint);

            var ls = Attach(name, "ls -a /dev");
            var entries = ls.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.That(entries, Is.SupersetOf(new[] { "null", "zero", "full", "random", "urandom", "tty", "console", "pts", "shm", "mqueue",
                "ptmx", "fd", "stdin", "stdout", "stderr", "loop-control", "tty1" }), ls);
            Assert.That(entries, Has.None.AnyOf("kmsg", "vda", "mem", "port", "tty0", "ttyS0", "loop0"), ls);
            var mounts = Attach(name, "cat /proc/self/mountinfo");
            Assert.That(mounts, Does.Match(@" / /dev [^\n]* - fuse\.devfs "), "devfs is the container's /dev");
            Assert.That(mounts, Does.Contain(" /dev/pts ").And.Contain(" /dev/shm ").And.Contain(" /dev/console "),
                "LXC's devpts, shm and console are mounted inside devfs, not hidden under it");
            Assert.That(Attach(name, "echo hi > /dev/null && head -c 4 /dev/zero | wc -c && test -c /dev/console && echo console-ok"),
                Does.Contain("4").And.Contain("console-ok"));
            // busybox's syslogd (started by the template's init) made its socket at /dev/log inside devfs.
            Assert.That(Environment.WaitUntil(() => Run.Command("lxc-attach", ["-n", name, "--", "test", "-S", "/dev/log"]).ExitCode == 0,
                TimeSpan.FromSeconds(5)), "no syslog socket at /dev/log");

            using (var loops = LoopControl.OpenOrFail())
            {
                var index = loops.FreeIndex(600 + System.Environment.ProcessId % 50 * 10);
                loops.AddExact(index);
                var loop = (Name: $"loop{index}", Index: index);
                Assert.That(Run.Command("lxc-attach", ["-n", name, "--", "test", "-e", $"/dev/{loop.Name}"]).ExitCode, Is.Not.EqualTo(0),
                    "a loop device nobody gave the container is not in it");
                var assign = Run.Shell($"{env} {Environment.DevFsBinary} assign {loop.Name} {name}");
                Assert.That(assign.ExitCode, Is.EqualTo(0), assign.Output);
                Assert.That(Environment.WaitUntil(() => Run.Command("lxc-attach", ["-n", name, "--", "test", "-e", $"/dev/{loop.Name}"]).ExitCode == 0,
                    TimeSpan.FromSeconds(5)), $"/dev/{loop.Name} never appeared in the running container");
                Assert.That(Run.Shell($"{env} {Environment.DevFsBinary} unassign {loop.Name}").ExitCode, Is.EqualTo(0));
                Assert.That(Environment.WaitUntil(() => Run.Command("lxc-attach", ["-n", name, "--", "test", "-e", $"/dev/{loop.Name}"]).ExitCode != 0,
                    TimeSpan.FromSeconds(5)), $"/dev/{loop.Name} stayed after unassign");
            }

            var stopped = Run.Command("lxc-stop", ["-n", name], TimeSpan.FromSeconds(30));
            Assert.That(stopped.ExitCode, Is.EqualTo(0), stopped.Output + ReadLog(log));
            Assert.That(Environment.IsMounted(mountPoint), Is.False, "post-stop left the devfs mount");
            Environment.WaitForExit(daemon!.Value, TimeSpan.FromSeconds(5));
            Assert.That(Environment.ProcessExists(daemon.Value), Is.False, "the devfs daemon outlived the container");
            Assert.That(Environment.FindDaemon(mountPoint), Is.Null);
            Assert.That(Directory.Exists(mountPoint), Is.False, "post-stop left " + mountPoint);
        }
        finally
        {
            Run.Command("lxc-stop", ["-n", name, "-k"], TimeSpan.FromSeconds(30));
            Run.Command("lxc-destroy", ["-n", name, "-f"], TimeSpan.FromSeconds(30));
            if (Environment.IsMounted(mountPoint))
                Run.Command("umount", ["-l", mountPoint]);
            if (Directory.Exists(mountPoint))
                Directory.Delete(mountPoint);
            Directory.Delete(prefix, recursive: true);
            Directory.Delete(stateDir, recursive: true);
        }
    }

    private static string Attach(string name, string script)
    {
        var result = Run.Command("lxc-attach", ["-n", name, "--", "/bin/sh", "-c", script]);
        Assert.That(result.ExitCode, Is.EqualTo(0), $"lxc-attach {script}: {result.Output}");
        return result.Stdout;
    }

    private static string ReadLog(string log) => File.Exists(log) ? "\n--- lxc log ---\n" + string.Join('\n', File.ReadLines(log).TakeLast(40)) : "";
}
