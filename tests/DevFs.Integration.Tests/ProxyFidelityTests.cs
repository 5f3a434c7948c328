using System.Diagnostics;
using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>
/// Proxy entries behave like the devices behind them: ioctls forwarded by policy (and refusals
/// audited in the daemon's log), poll/select woken by NOTIFY_POLL, blocking reads that wait without a
/// worker and end on a signal, fd-carrying loop ioctls translated, revocation waking every waiter.
/// Mounts are made with nodev so that every entry is a proxy, by the daemon in the foreground so
/// that its log can be read.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class ProxyFidelityTests
{
    private const string Policy = """
        version: 1
        defaults:
          ioctls:
            deny: [RNDCLEARPOOL]
        devices:
          - match: { subsystem: mem, devname: random, kind: char, major: 1, minor: 8 }
            mode: "0666"
            global: true
          - match: { subsystem: mem, devname: urandom, kind: char, major: 1, minor: 9 }
            mode: "0666"
            global: true
            ioctls: { deny: [RNDGETENTCNT] }
          - match: { subsystem: misc, devname: net/tun, kind: char, major: 10, minor: 200 }
            mode: "0666"
            global: true
            ioctls: { allow: [TUNSETIFF] }
          - match: { subsystem: misc, devname: loop-control, kind: char, major: 10, minor: 237 }
            mode: "0660"
            global: true
            ioctls: { allow: [LOOP_CTL_GET_FREE] }
          - match: { subsystem: block, devname: "loop[0-9]*", kind: block, major: 7 }
            mode: "0660"
            global: true
            ioctls: { allow: [LOOP_CONFIGURE, LOOP_SET_FD, LOOP_SET_STATUS64, LOOP_CLR_FD] }
        """;

    /// <summary>Python helpers: open a tun proxy entry and name an interface; ioctl by number.</summary>
    private const string PythonPrelude = """
        import fcntl, os, select, signal, socket, struct, subprocess, sys, threading, time
        def tun(path, prefix):
            fd = os.open(path, os.O_RDWR)
            ifr = bytearray(struct.pack('16sH22x', prefix.encode() + b'%d', 0x0001 | 0x1000))
            fcntl.ioctl(fd, 0x400454ca, ifr, True)
            return fd, ifr[:16].rstrip(b'\0').decode()

        """;

    private string _dir = "";
    private string _policyPath = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("devfs-proxy-").FullName;
        _policyPath = Path.Combine(_dir, "policy.yaml");
        File.WriteAllText(_policyPath, Policy);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void RndGetEntCntReturnsTheEntropyCount()
    {
        using var mount = ForegroundMount.Start(_policyPath);
        var result = Python(mount, "print(struct.unpack('i', fcntl.ioctl(os.open(sys.argv[1] + '/random', os.O_RDONLY), 0x80045200, b'\\0' * 4))[0])");
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(int.Parse(result.Stdout.Trim()), Is.GreaterThanOrEqualTo(0).And.LessThanOrEqualTo(4096));
    }

    [Test]
    public void DeniedIoctlsAreRefusedAndLogged()
    {
        using var mount = ForegroundMount.Start(_policyPath);
        var result = Python(mount, """
            for name, cmd, arg in (('urandom', 0x80045200, b'\0' * 4), ('random', 0x5206, 0), ('random', 0x40045201, b'\1\0\0\0'), ('random', 0x1234, 0)):
                try:
                    fcntl.ioctl(os.open(sys.argv[1] + '/' + name, os.O_RDONLY), cmd, arg); print(name, hex(cmd), 'allowed')
                except OSError as e:
                    print(name, hex(cmd), e.errno)
            """);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[]
        {
            "urandom 0x80045200 1",  // the rule's deny: EPERM
            "random 0x5206 1",       // defaults.ioctls.deny: EPERM
            "random 0x40045201 1",   // RNDADDTOENTCNT: not a query, not allowed: EPERM
            "random 0x1234 25",      // size-less and unknown: ENOTTY
        }));
        var log = mount.WaitForLog("0x1234");
        Assert.That(log, Does.Match(@"Refused ioctl 0x80045200 \(RNDGETENTCNT\) on urandom \(urandom\) for container - pid \d+ uid 0: denied by the rule's ioctls .*\.deny; answered EPERM"));
        Assert.That(log, Does.Contain("Refused ioctl 0x5206 (RNDCLEARPOOL) on random (random)").And.Contain("denied by defaults.ioctls.deny"));
        Assert.That(log, Does.Contain("Refused ioctl 0x40045201 (RNDADDTOENTCNT)").And.Contain("not a read-only query"));
        Assert.That(log, Does.Contain("Refused ioctl 0x1234 on random").And.Contain("no _IOC size").And.Contain("answered ENOTTY"));
    }

    [Test]
    public void DdFromUrandomThroughTheProxy()
    {
        using var mount = ForegroundMount.Start(_policyPath);
        var dd = Run.Shell($"dd if={mount["urandom"]} bs=64k count=16 status=none | wc -c");
        Assert.That(dd.ExitCode, Is.EqualTo(0), dd.Output);
        Assert.That(dd.Stdout.Trim(), Is.EqualTo("1048576"));
    }

    [Test]
    public void TunSetIffPollSelectAndReadThroughTheProxy()
    {
        using var mount = ForegroundMount.Start(_policyPath);
        var result = Python(mount, """
            fd, name = tun(sys.argv[1] + '/net/tun', 'dvft')
            print('iface', name, flush=True)
            print('link', subprocess.run(['ip', 'link', 'show', name], capture_output=True).returncode, flush=True)
            subprocess.run(f'sysctl -qw net.ipv6.conf.{name}.disable_ipv6=1 && ip addr add 10.99.0.1/24 dev {name} && ip link set {name} up', shell=True, check=True)
            p = select.poll(); p.register(fd, select.POLLIN)
            print('ready before', p.poll(0), flush=True)
            def send():
                time.sleep(0.3); socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hello', ('10.99.0.2', 9999))
            threading.Thread(target=send).start()
            start = time.time(); events = p.poll(5000); waited = time.time() - start
            print('poll', events == [(fd, select.POLLIN)], waited > 0.2, waited < 4, flush=True)
            packet = os.read(fd, 2000)
            print('packet', packet[0] >> 4, packet[9], packet.endswith(b'hello'), flush=True)
            threading.Thread(target=send).start()
            r, _, _ = select.select([fd], [], [], 5)
            print('select', r == [fd], os.read(fd, 2000).endswith(b'hello'), flush=True)
            os.close(fd)
            for _ in range(100):
                if subprocess.run(['ip', 'link', 'show', name], capture_output=True).returncode != 0: break
                time.sleep(0.05)
            print('gone', subprocess.run(['ip', 'link', 'show', name], capture_output=True).returncode != 0)
            """);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(result.Stdout, Does.Match(@"iface dvft\d+\n"));
        Assert.That(result.Stdout, Does.Contain("link 0\n"), "the interface must exist after TUNSETIFF");
        Assert.That(result.Stdout, Does.Contain("ready before []\n"));
        Assert.That(result.Stdout, Does.Contain("poll True True True\n"), "poll must wait until the packet comes, then say readable");
        Assert.That(result.Stdout, Does.Contain("packet 4 17 True\n"), "an IPv4 UDP packet carrying hello");
        Assert.That(result.Stdout, Does.Contain("select True True\n"));
        Assert.That(result.Stdout, Does.Contain("gone True"));
    }

    [Test]
    public void NonBlockingReadAnswersEagain()
    {
        using var mount = ForegroundMount.Start(_policyPath);
        var result = Python(mount, """
            fd, name = tun(sys.argv[1] + '/net/tun', 'dvfn')
            os.set_blocking(fd, False)
            try:
                os.read(fd, 2000); print('data?')
            except BlockingIOError:
                print('EAGAIN')
            """);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(result.Stdout.Trim(), Is.EqualTo("EAGAIN"));
    }

    [Test]
    public void BlockedReadersHoldNoWorkerAndEndWithEintrOnASignal()
    {
        using var mount = ForegroundMount.Start(_policyPath, "workers=2");
        const int Readers = 5;
        var readers = new List<Process>();
        try
        {
            for (var i = 0; i < Readers; i++)
            {
                readers.Add(StartPython(mount, """
                    fd, name = tun(sys.argv[1] + '/net/tun', 'dvfb')
                    def interrupted(*_): raise InterruptedError()
                    signal.signal(signal.SIGUSR1, interrupted)
                    print('blocking', flush=True)
                    start = time.time()
                    try:
                        os.read(fd, 2000); print('data?', flush=True)
                    except InterruptedError:
                        print('EINTR', round(time.time() - start, 1) >= 0.5, flush=True)
                    """));
            }
            foreach (var reader in readers)
                Assert.That(reader.StandardOutput.ReadLine(), Is.EqualTo("blocking"));
            Thread.Sleep(700);
            // More readers wait than there are workers, yet the mount answers.
            var ls = Run.Command("ls", [mount.MountPoint], TimeSpan.FromSeconds(5));
            Assert.That(ls.ExitCode, Is.EqualTo(0), ls.Output);
            Assert.That(ls.Stdout, Does.Contain("urandom"));
            var stat = Run.Command("stat", ["-c", "%F", mount["net/tun"]], TimeSpan.FromSeconds(5));
            Assert.That(stat.Stdout.Trim(), Is.EqualTo("regular empty file"));
            var rnd = Run.Shell($"head -c 16 {mount["urandom"]} | wc -c", TimeSpan.FromSeconds(5));
            Assert.That(rnd.Stdout.Trim(), Is.EqualTo("16"));
            foreach (var reader in readers)
                Assert.That(reader.HasExited, Is.False, "a reader returned without data or a signal");
            foreach (var reader in readers)
                Run.Command("kill", ["-USR1", reader.Id.ToString()]);
            foreach (var reader in readers)
            {
                Assert.That(reader.WaitForExit(TimeSpan.FromSeconds(10)), Is.True, "the interrupted read did not end");
                Assert.That(reader.StandardOutput.ReadToEnd().Trim(), Is.EqualTo("EINTR True"), reader.StandardError.ReadToEnd());
            }
        }
        finally
        {
            foreach (var reader in readers)
            {
                if (!reader.HasExited)
                    reader.Kill();
                reader.Dispose();
            }
        }
    }

    [Test]
    public void RevocationWakesPollersAndFailsParkedReadsWithEnodev()
    {
        using var mount = ForegroundMount.Start(_policyPath);
        const string uevent = "/sys/class/misc/tun/uevent";
        try
        {
            var reader = StartPython(mount, """
                fd, name = tun(sys.argv[1] + '/net/tun', 'dvfr')
                def read():
                    try:
                        os.read(fd, 2000); print('read data?', flush=True)
                    except OSError as e:
                        print('read errno', e.errno, flush=True)
                threading.Thread(target=read).start()
                p = select.poll(); p.register(fd, select.POLLIN)
                print('waiting', flush=True)
                events = p.poll(10000)
                print('poll', events and events[0][1] & (select.POLLERR | select.POLLHUP) != 0, flush=True)
                time.sleep(0.5)
                print('again', p.poll(0)[0][1] & (select.POLLERR | select.POLLHUP) != 0, flush=True)
                """);
            using (reader)
            {
                Assert.That(reader.StandardOutput.ReadLine(), Is.EqualTo("waiting"));
                Thread.Sleep(500);
                // A synthetic "remove" uevent: the registry takes the device away and open handles are revoked.
                File.WriteAllText(uevent, "remove");
                Assert.That(reader.WaitForExit(TimeSpan.FromSeconds(10)), Is.True, "poll or read did not wake on revocation");
                var output = reader.StandardOutput.ReadToEnd();
                Assert.That(output, Does.Contain("poll True"), reader.StandardError.ReadToEnd());
                Assert.That(output, Does.Contain("read errno 19"), "a parked read ends with ENODEV; the reader printed: " + output);
                Assert.That(output, Does.Contain("again True"), "the next POLL says POLLERR|POLLHUP");
            }
        }
        finally
        {
            File.WriteAllText(uevent, "add");
        }
    }

    [Test]
    public void LosetupAttachesThroughProxyEntriesAndTheLoopDeviceReads()
    {
        using var mount = ForegroundMount.Start(_policyPath);
        var image = Path.Combine(_dir, "disk.img");
        using (var file = File.Create(image))
        {
            file.SetLength(4 << 20);
            file.Write("DEVFS-LOOP-TEST"u8);
        }
        string? device = null;
        try
        {
            // losetup uses /dev/loop-control and /dev/loopN: give it the mount as /dev in a mount namespace.
            var setup = Run.Command("unshare", ["-m", "sh", "-c", $"mount --bind {mount.MountPoint} /dev && losetup -f --show {image}"]);
            Assert.That(setup.ExitCode, Is.EqualTo(0), setup.Output + mount.Log);
            device = setup.Stdout.Trim();
            Assert.That(device, Does.Match(@"^/dev/loop\d+$"));
            var backing = File.ReadAllText($"/sys/block/{Path.GetFileName(device)}/loop/backing_file").Trim();
            Assert.That(backing, Is.EqualTo(image));
            var head = Run.Shell($"head -c 15 {mount[Path.GetFileName(device)]}");
            Assert.That(head.Stdout, Is.EqualTo("DEVFS-LOOP-TEST"));
            // losetup -d insists on a block device node (S_ISBLK), which a proxy file is not: detach with LOOP_CLR_FD.
            var detach = Python(mount, $"fcntl.ioctl(os.open(sys.argv[1] + '/{Path.GetFileName(device)}', os.O_RDWR), 0x4C01, 0); print('detached')");
            Assert.That(detach.Stdout.Trim(), Is.EqualTo("detached"), detach.Output);
            Assert.That(Environment.WaitUntil(() => !File.Exists($"/sys/block/{Path.GetFileName(device)}/loop/backing_file"), TimeSpan.FromSeconds(5)), Is.True);
            device = null;
        }
        finally
        {
            if (device is not null)
                Run.Command("losetup", ["-d", device]);
        }
    }

    [Test]
    public void LoopSetFdRefusesAnOPathDescriptor()
    {
        using var mount = ForegroundMount.Start(_policyPath);
        var image = Path.Combine(_dir, "path.img");
        File.WriteAllBytes(image, new byte[1 << 20]);
        var result = Python(mount, $$"""
            free = fcntl.ioctl(os.open(sys.argv[1] + '/loop-control', os.O_RDWR), 0x4C82, 0)
            loop = os.open(sys.argv[1] + f'/loop{free}', os.O_RDWR)
            backing = os.open('{{image}}', os.O_PATH)
            try:
                fcntl.ioctl(loop, 0x4C00, backing); print('attached'); fcntl.ioctl(loop, 0x4C01, 0)
            except OSError as e:
                print('errno', e.errno)
            """);
        Assert.That(result.Stdout.Trim(), Is.EqualTo("errno 9"), result.Output);
        Assert.That(mount.WaitForLog("O_PATH"), Does.Contain("Refused ioctl 0x4c00 (LOOP_SET_FD)"));
    }

    private static CommandResult Python(ForegroundMount mount, string body)
    {
        var script = Path.Combine(Path.GetDirectoryName(mount.LogPath)!, $"script-{Guid.NewGuid():N}.py");
        File.WriteAllText(script, PythonPrelude + body);
        return Run.Command("python3", [script, mount.MountPoint], TimeSpan.FromSeconds(30));
    }

    private static Process StartPython(ForegroundMount mount, string body)
    {
        var script = Path.Combine(Path.GetDirectoryName(mount.LogPath)!, $"script-{Guid.NewGuid():N}.py");
        File.WriteAllText(script, PythonPrelude + body);
        var start = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(mount.MountPoint);
        return Process.Start(start)!;
    }

    /// <summary>A nodev mount served by `devfs ... -f` with its log (stderr) going to a file the test reads.</summary>
    private sealed class ForegroundMount : IDisposable
    {
        private readonly Process _daemon;

        private ForegroundMount(string mountPoint, string logPath, Process daemon)
        {
            MountPoint = mountPoint;
            LogPath = logPath;
            _daemon = daemon;
        }

        public string MountPoint { get; }
        public string LogPath { get; }
        public string Log => File.Exists(LogPath) ? File.ReadAllText(LogPath) : "";
        public string this[string relative] => Path.Combine(MountPoint, relative);

        public static ForegroundMount Start(string policyPath, string extraOptions = "")
        {
            Environment.RequireRootAndFuse();
            var dir = Directory.CreateTempSubdirectory("devfs-pf-").FullName;
            var mountPoint = Path.Combine(dir, "dev");
            Directory.CreateDirectory(mountPoint);
            var logPath = Path.Combine(dir, "daemon.log");
            var options = $"nodev,policy={policyPath}" + (extraOptions.Length > 0 ? "," + extraOptions : "");
            var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardInput = true };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add($"exec \"$0\" devfs \"$1\" -f -o \"$2\" 2>\"$3\" >/dev/null");
            start.ArgumentList.Add(Environment.DevFsBinary);
            start.ArgumentList.Add(mountPoint);
            start.ArgumentList.Add(options);
            start.ArgumentList.Add(logPath);
            var daemon = Process.Start(start)!;
            var mount = new ForegroundMount(mountPoint, logPath, daemon);
            if (!Environment.WaitUntil(() => Environment.IsMounted(mountPoint) || daemon.HasExited, TimeSpan.FromSeconds(15)) || daemon.HasExited)
            {
                var log = mount.Log;
                mount.Dispose();
                Assert.Fail($"devfs -f did not mount {mountPoint}: {log}");
            }
            return mount;
        }

        /// <summary>The log once it holds text (log lines are written as they happen, but not at once).</summary>
        public string WaitForLog(string text)
        {
            Environment.WaitUntil(() => Log.Contains(text, StringComparison.Ordinal), TimeSpan.FromSeconds(5));
            return Log;
        }

        public void Dispose()
        {
            try
            {
                if (Environment.IsMounted(MountPoint))
                    Run.Command("umount", [MountPoint]);
                if (!_daemon.WaitForExit(TimeSpan.FromSeconds(10)))
                {
                    if (Environment.IsMounted(MountPoint))
                        Run.Command("umount", ["-l", MountPoint]);
                    _daemon.Kill();
                    _daemon.WaitForExit(TimeSpan.FromSeconds(5));
                }
            }
            finally
            {
                _daemon.Dispose();
                try
                {
                    if (!Environment.IsMounted(MountPoint))
                    Directory.Delete(Path.GetDirectoryName(MountPoint)!, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }
    }
}
