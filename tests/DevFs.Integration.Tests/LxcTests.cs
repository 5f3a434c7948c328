using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>
/// Real LXC containers (Debian's lxc, busybox template, privileged and unprivileged) whose /dev is served by devfs through the shipped hooks
/// (packaging/lxc, installed with make install): filtered, hotplugged live, torn down with the container.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class LxcTests
{
    [Test]
    public void PrivilegedBusyboxContainerSeesFilteredLiveDevAndStopsCleanly()
    {
        RequireLxc();
        var name = $"devfs-it-{System.Environment.ProcessId}";
        var prefix = Directory.CreateTempSubdirectory("devfs-lxc-").FullName;
        var stateDir = Directory.CreateTempSubdirectory("devfs-state-").FullName;
        var mountPoint = $"/run/devfs/{name}";
        var log = Path.Combine(prefix, "lxc.log");
        try
        {
            InstallHooks(prefix);

            var created = Run.Command("lxc-create", ["-n", name, "-t", "busybox"], TimeSpan.FromSeconds(60));
            Assert.That(created.ExitCode, Is.EqualTo(0), created.Output);
            AddDevFsHooks(name, prefix);

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
            AssertDevIsDevfsWithLxcMountsInside(name);

            AssignAndUnassignLoop(name, env);
            StopAndCheckNothingIsLeft(name, mountPoint, daemon!.Value, log);
        }
        finally
        {
            DestroyContainer(name, mountPoint);
            Directory.Delete(prefix, recursive: true);
            Directory.Delete(stateDir, recursive: true);
        }
    }

    /// <summary>
    /// Issue 6: a root-owned unprivileged container (lxc.idmap u/g 0 100000 65536). The pre-start hook mounts devfs
    /// with idmap=0:100000:65536 from the config; the pre-mount hook runs as the container's root inside its user
    /// namespace and binds the host's devfs mount (allow_other) onto the rootfs's dev.
    /// </summary>
    [Test]
    public void UnprivilegedBusyboxContainerSeesFilteredLiveDevOwnedByItsRootAndStopsCleanly()
    {
        RequireLxc();
        if (Run.Shell("command -v newuidmap && command -v newgidmap").ExitCode != 0)
            Assert.Fail("newuidmap/newgidmap are missing: apt-get install uidmap (make deps installs it); LXC maps an unprivileged container's ids with them");
        const int hostId = 100000, count = 65536;
        var name = $"devfs-it-u{System.Environment.ProcessId}";
        var prefix = Directory.CreateTempSubdirectory("devfs-lxc-").FullName;
        var stateDir = Directory.CreateTempSubdirectory("devfs-state-").FullName;
        var mountPoint = $"/run/devfs/{name}";
        var log = Path.Combine(prefix, "lxc.log");
        // LXC maps the ids through newuidmap/newgidmap, which check /etc/subuid and /etc/subgid even for root.
        var subIds = new Dictionary<string, string?>();
        try
        {
            foreach (var file in new[] { "/etc/subuid", "/etc/subgid" })
            {
                subIds[file] = File.Exists(file) ? File.ReadAllText(file) : null;
                if (!GrantsRoot(subIds[file] ?? "", hostId, count))
                    File.WriteAllText(file, (subIds[file] is { Length: > 0 } old && !old.EndsWith('\n') ? old + "\n" : subIds[file] ?? "") + $"root:{hostId}:{count}\n");
                else
                    subIds.Remove(file);
            }
            InstallHooks(prefix);
            // The pre-mount hook runs as the container's root (host uid 100000): like /usr/share/devfs/lxc, the
            // folders above it must let others in (CreateTempSubdirectory makes them 0700).
            File.SetUnixFileMode(prefix, (UnixFileMode)0b111_101_101);

            // lxc-create -f: the template's config gets these lines, and LXC chowns the rootfs into the range.
            var baseConfig = Path.Combine(prefix, "unprivileged.conf");
            File.WriteAllLines(baseConfig, ["lxc.net.0.type = empty", "lxc.apparmor.profile = unconfined",
                $"lxc.idmap = u 0 {hostId} {count}", $"lxc.idmap = g 0 {hostId} {count}"]);
            var created = Run.Command("lxc-create", ["-n", name, "-t", "busybox", "-f", baseConfig], TimeSpan.FromSeconds(60));
            Assert.That(created.ExitCode, Is.EqualTo(0), created.Output);
            var rootfsOwner = Run.Command("stat", ["-c", "%u:%g", $"/var/lib/lxc/{name}/rootfs/bin"]).Stdout.Trim();
            Assert.That(rootfsOwner, Is.EqualTo($"{hostId}:{hostId}"), "lxc-create did not shift the rootfs into the container's range");
            AddDevFsHooks(name, prefix);

            var env = $"DEVFS_STATE_DIR={stateDir}";
            var started = Run.Shell($"{env} lxc-start -n {name} -d -l DEBUG -o {log}", TimeSpan.FromSeconds(30));
            Assert.That(started.ExitCode, Is.EqualTo(0), started.Output + ReadLog(log));
            Assert.That(Environment.WaitUntil(() => Run.Command("lxc-info", ["-n", name, "-s"]).Stdout.Contains("RUNNING"), TimeSpan.FromSeconds(10)),
                "the container did not reach RUNNING" + ReadLog(log));
            Assert.That(Environment.MountLine(mountPoint), Does.Contain(" fuse.devfs ").And.Contain("allow_other"),
                "pre-start did not mount " + mountPoint + " for other users (the container's root is not host root)");
            var daemon = Environment.FindDaemon(mountPoint);
            Assert.That(daemon, Is.Not.Null, "no devfs process serves " + mountPoint);
            Assert.That(File.ReadAllText($"/proc/{daemon}/cmdline"), Does.Contain($"idmap=0:{hostId}:{count}"),
                "the pre-start hook did not pass the container's lxc.idmap");

            // It really is unprivileged: its root is host uid 100000.
            Assert.That(Attach(name, "cat /proc/self/uid_map /proc/self/gid_map"), Does.Match($@"^\s*0\s+{hostId}\s+{count}\s*\n\s*0\s+{hostId}\s+{count}\s*$"));
            var ls = Attach(name, "ls -a /dev");
            var entries = ls.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.That(entries, Is.SupersetOf(new[] { "null", "zero", "full", "random", "urandom", "tty", "console", "pts", "shm", "mqueue",
                "ptmx", "fd", "stdin", "stdout", "stderr", "loop-control", "tty1" }), ls);
            Assert.That(entries, Has.None.AnyOf("kmsg", "vda", "mem", "port", "tty0", "ttyS0", "loop0"), ls);

            // The policy's entries belong to the container's root, not to nobody:nogroup (the overflow ids of an
            // unmapped host root). mqueue is left out: LXC mounts the IPC namespace's mqueue over it, whose root the
            // kernel made as host root when the namespace was created (nobody:nogroup with or without devfs).
            var longList = Attach(name, "ls -l /dev");
            var owners = ParseLongList(longList);
            foreach (var entry in new[] { "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "fd", "stdin", "stdout", "stderr", "loop-control" })
            {
                Assert.That(owners, Does.ContainKey(entry), longList);
                Assert.That(owners[entry], Is.EqualTo("root:root"), $"/dev/{entry} in the container\n{longList}");
            }
            Assert.That(Run.Command("stat", ["-c", "%u:%g", $"{mountPoint}/null"]).Stdout.Trim(), Is.EqualTo($"{hostId}:{hostId}"),
                "on the host the entries belong to the container's root, host uid " + hostId);

            AssertDevIsDevfsWithLxcMountsInside(name);

            AssignAndUnassignLoop(name, env, expectOwner: "root:root");
            StopAndCheckNothingIsLeft(name, mountPoint, daemon!.Value, log);
        }
        finally
        {
            DestroyContainer(name, mountPoint);
            foreach (var (file, content) in subIds)
            {
                if (content is null)
                    File.Delete(file);
                else
                    File.WriteAllText(file, content);
            }
            Directory.Delete(prefix, recursive: true);
            Directory.Delete(stateDir, recursive: true);
        }
    }

    private static void RequireLxc()
    {
        Environment.RequireRootAndFuse();
        foreach (var (program, package) in new[] { ("lxc-create", "lxc"), ("busybox", "busybox-static") })
        {
            if (Run.Shell($"command -v {program}").ExitCode != 0)
                Assert.Fail($"{program} is missing: apt-get install {package} (make deps installs it)");
        }
    }

    /// <summary>make install into PREFIX (the hooks and devfs.conf under share/devfs/lxc), with the built devfs.</summary>
    private static void InstallHooks(string prefix)
    {
        var install = Run.Command("make", ["-C", Environment.RepoRoot, "--no-print-directory", "-o", Path.Combine(Environment.RepoRoot, "artifacts", "devfs"),
            "install", $"PREFIX={prefix}"], TimeSpan.FromSeconds(60));
        Assert.That(install.ExitCode, Is.EqualTo(0), install.Output);
        File.Copy(Environment.DevFsBinary, Path.Combine(prefix, "sbin", "devfs"), overwrite: true);
    }

    /// <summary>No lxcbr0 and no AppArmor here; then the shipped lines (what lxc.include of devfs.conf gives), with the
    /// loop policy as a hook option. They come after the template's, so its lxc.autodev = 0 wins over the template's 1.</summary>
    private static void AddDevFsHooks(string name, string prefix)
    {
        var config = $"/var/lib/lxc/{name}/config";
        var lines = File.ReadAllLines(config).Where(l => !l.StartsWith("lxc.net.0.") && !l.StartsWith("lxc.apparmor.")).ToList();
        lines.AddRange(["lxc.net.0.type = empty", "lxc.apparmor.profile = unconfined"]);
        var hook = $"{prefix}/share/devfs/lxc/devfs-hook";
        var snippet = File.ReadAllLines(Path.Combine(prefix, "share/devfs/lxc/devfs.conf")).Where(l => l.StartsWith("lxc.")).ToList();
        Assert.That(snippet, Does.Contain($"lxc.hook.pre-start = {hook}").And.Contain("lxc.autodev = 0"));
        lines.AddRange(snippet.Select(l => l == $"lxc.hook.pre-start = {hook}" ? $"{l} policy={Environment.PolicyPath("examples/loop.yaml")}" : l));
        File.WriteAllLines(config, lines);
    }

    /// <summary>A new loop device is not in the container; `devfs assign` shows it live, `devfs unassign` takes it away.</summary>
    private static void AssignAndUnassignLoop(string name, string env, string? expectOwner = null)
    {
        using var loops = LoopControl.OpenOrFail();
        var index = loops.FreeIndex(600 + System.Environment.ProcessId % 50 * 10);
        loops.AddExact(index);
        var loop = $"loop{index}";
        Assert.That(Run.Command("lxc-attach", ["-n", name, "--", "test", "-e", $"/dev/{loop}"]).ExitCode, Is.Not.EqualTo(0),
            "a loop device nobody gave the container is not in it");
        var assign = Run.Shell($"{env} {Environment.DevFsBinary} assign {loop} {name}");
        Assert.That(assign.ExitCode, Is.EqualTo(0), assign.Output);
        Assert.That(Environment.WaitUntil(() => Run.Command("lxc-attach", ["-n", name, "--", "test", "-e", $"/dev/{loop}"]).ExitCode == 0,
            TimeSpan.FromSeconds(5)), $"/dev/{loop} never appeared in the running container");
        if (expectOwner is not null)
        {
            var longList = Attach(name, $"ls -l /dev/{loop}");
            Assert.That(ParseLongList(longList).GetValueOrDefault($"/dev/{loop}"), Is.EqualTo(expectOwner), longList);
        }
        var unassign = Run.Shell($"{env} {Environment.DevFsBinary} unassign {loop}");
        Assert.That(unassign.ExitCode, Is.EqualTo(0), unassign.Output);
        Assert.That(Environment.WaitUntil(() => Run.Command("lxc-attach", ["-n", name, "--", "test", "-e", $"/dev/{loop}"]).ExitCode != 0,
            TimeSpan.FromSeconds(5)), $"/dev/{loop} stayed after unassign");
    }

    /// <summary>lxc-stop: post-stop leaves no devfs mount, no devfs process and no /run/devfs/NAME.</summary>
    private static void StopAndCheckNothingIsLeft(string name, string mountPoint, int daemon, string log)
    {
        var stopped = Run.Command("lxc-stop", ["-n", name], TimeSpan.FromSeconds(30));
        Assert.That(stopped.ExitCode, Is.EqualTo(0), stopped.Output + ReadLog(log));
        Assert.That(Environment.IsMounted(mountPoint), Is.False, "post-stop left the devfs mount");
        Environment.WaitForExit(daemon, TimeSpan.FromSeconds(5));
        Assert.That(Environment.ProcessExists(daemon), Is.False, "the devfs daemon outlived the container");
        Assert.That(Environment.FindDaemon(mountPoint), Is.Null);
        Assert.That(Directory.Exists(mountPoint), Is.False, "post-stop left " + mountPoint);
    }

    /// <summary>Whether a subuid/subgid file gives root the ids HOSTID..HOSTID+COUNT-1.</summary>
    private static bool GrantsRoot(string content, long hostId, long count) =>
        content.Split('\n').Select(l => l.Trim().Split(':')).Any(f => f.Length == 3 && f[0] is "root" or "0" &&
            long.TryParse(f[1], out var start) && long.TryParse(f[2], out var n) && start <= hostId && hostId + count <= start + n);

    /// <summary>busybox `ls -l` lines as name -> "owner:group" (a symlink by its own name).</summary>
    private static Dictionary<string, string> ParseLongList(string longList)
    {
        var owners = new Dictionary<string, string>();
        foreach (var line in longList.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 5 || f[0].Length != 10)
                continue;
            var arrow = Array.IndexOf(f, "->");
            owners[arrow > 0 ? f[arrow - 1] : f[^1]] = $"{f[2]}:{f[3]}";
        }
        return owners;
    }

    private static string Attach(string name, string script)
    {
        var result = Run.Command("lxc-attach", ["-n", name, "--", "/bin/sh", "-c", script]);
        Assert.That(result.ExitCode, Is.EqualTo(0), $"lxc-attach {script}: {result.Output}");
        return result.Stdout;
    }

    private static string ReadLog(string log) => File.Exists(log) ? "\n--- lxc log ---\n" + string.Join('\n', File.ReadLines(log).TakeLast(40)) : "";

    /// <summary>Stops and destroys a test container whatever state it is in, and drops its devfs mount.</summary>
    private static void DestroyContainer(string name, string mountPoint)
    {
        Run.Command("lxc-stop", ["-n", name, "-k"], TimeSpan.FromSeconds(30));
        Run.Command("lxc-destroy", ["-n", name, "-f"], TimeSpan.FromSeconds(30));
        if (Environment.IsMounted(mountPoint))
            Run.Command("umount", ["-l", mountPoint]);
        if (Directory.Exists(mountPoint))
            Directory.Delete(mountPoint);
    }

    /// <summary>
    /// Inside the running container: /dev is devfs, LXC's devpts, shm and console sit inside it (not hidden
    /// under it), null, zero and the console work, and busybox's syslogd bound its socket at /dev/log in devfs.
    /// </summary>
    private static void AssertDevIsDevfsWithLxcMountsInside(string name)
    {
        var mounts = Attach(name, "cat /proc/self/mountinfo");
        Assert.That(mounts, Does.Match(@" / /dev [^\n]* - fuse\.devfs "), "devfs is the container's /dev");
        Assert.That(mounts, Does.Contain(" /dev/pts ").And.Contain(" /dev/shm ").And.Contain(" /dev/console "),
            "LXC's devpts, shm and console are mounted inside devfs, not hidden under it");
        Assert.That(Attach(name, "echo hi > /dev/null && head -c 4 /dev/zero | wc -c && test -c /dev/null && test -c /dev/console && echo console-ok"),
            Does.Contain("4").And.Contain("console-ok"));
        Assert.That(Environment.WaitUntil(() => Run.Command("lxc-attach", ["-n", name, "--", "test", "-S", "/dev/log"]).ExitCode == 0,
            TimeSpan.FromSeconds(5)), "no syslog socket at /dev/log (busybox syslogd, as the container's root, binds it in devfs)");
    }
}
