using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>Type=notify: devfs says READY=1 once the mount is live and pets the watchdog, as systemd expects.</summary>
[TestFixture]
[NonParallelizable]
public sealed class SystemdTests
{
    [Test]
    public void ForegroundDaemonNotifiesReadinessAndWatchdogOnNotifySocket()
    {
        Environment.RequireRootAndFuse();
        var socketPath = Path.Combine(Path.GetTempPath(), $"devfs-notify-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.ReceiveTimeout = 10_000;
        var mountPoint = Directory.CreateTempSubdirectory("devfs-it-").FullName;
        var start = new ProcessStartInfo(Environment.DevFsBinary) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var arg in new[] { "devfs", mountPoint, "-f" })
            start.ArgumentList.Add(arg);
        start.Environment["NOTIFY_SOCKET"] = socketPath;
        start.Environment["WATCHDOG_USEC"] = "200000";
        using var daemon = Process.Start(start)!;
        _ = daemon.StandardError.ReadToEndAsync();
        try
        {
            var messages = new List<string>();
            var buffer = new byte[4096];
            while (!messages.Any(m => m.Contains("WATCHDOG=1")))
                messages.Add(Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer)));
            var ready = messages.First(m => m.Contains("READY=1"));
            Assert.That(Environment.IsMounted(mountPoint), Is.True, "READY=1 must come only once the mount is live");
            Assert.That(ready, Does.Contain($"MAINPID={daemon.Id}"));
            Run.Command("umount", [mountPoint]);
            Assert.That(Encoding.UTF8.GetString(buffer, 0, ReceiveUntil(listener, buffer, "STOPPING=1")), Does.Contain("STOPPING=1"));
            Assert.That(daemon.WaitForExit(10_000), Is.True);
        }
        finally
        {
            Environment.StopDaemonAndUnmount(daemon, mountPoint);
            File.Delete(socketPath);
        }
    }

    [Test]
    public void BackgroundDaemonWithoutAJournalLogsItsRefusalsToSyslog()
    {
        Environment.RequireRootAndFuse();
        var socketPath = Path.Combine(Path.GetTempPath(), $"devfs-syslog-{Guid.NewGuid():N}.sock");
        using var syslog = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        syslog.Bind(new UnixDomainSocketEndPoint(socketPath));
        syslog.ReceiveTimeout = 10_000;
        System.Environment.SetEnvironmentVariable("DEVFS_SYSLOG_SOCKET", socketPath);
        try
        {
            using var mount = DevFsMount.Start();
            var mknod = Run.Command("mknod", [mount["kmsg"], "c", "1", "11"]);
            Assert.That(mknod.ExitCode, Is.Not.EqualTo(0));
            var buffer = new byte[4096];
            var n = ReceiveUntil(syslog, buffer, "Refused mknod");
            var line = Encoding.UTF8.GetString(buffer, 0, n);
            Assert.That(line, Does.StartWith("<28>devfs[").And.Contain("kmsg"), "facility daemon, priority warning, tagged devfs[PID]");
        }
        finally
        {
            System.Environment.SetEnvironmentVariable("DEVFS_SYSLOG_SOCKET", null);
            File.Delete(socketPath);
        }
    }

    private static int ReceiveUntil(Socket socket, byte[] buffer, string wanted)
    {
        while (true)
        {
            var n = socket.Receive(buffer);
            if (Encoding.UTF8.GetString(buffer, 0, n).Contains(wanted))
                return n;
        }
    }
}
