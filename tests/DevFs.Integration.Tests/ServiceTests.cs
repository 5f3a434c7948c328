using System.Diagnostics;
using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>One devfs service process serving many containers' /dev, driven through its control socket.</summary>
[TestFixture]
[NonParallelizable]
public sealed class ServiceTests
{
    [Test]
    public void OneServiceServesManyMountsControlledThroughItsSocket()
    {
        Environment.RequireRootAndFuse();
        var stateDir = Directory.CreateTempSubdirectory("devfs-service-").FullName;
        System.Environment.SetEnvironmentVariable("DEVFS_STATE_DIR", stateDir);
        var start = new ProcessStartInfo(Environment.DevFsBinary, ["serve"]) { UseShellExecute = false, RedirectStandardError = true };
        using var service = Process.Start(start)!;
        var log = service.StandardError.ReadToEndAsync();
        using var loops = LoopControl.OpenOrFail();
        try
        {
            Assert.That(Environment.WaitUntil(() => File.Exists(Path.Combine(stateDir, "control.sock")), TimeSpan.FromSeconds(10)), "no control socket");
            var policy = Environment.PolicyPath("examples/loop.yaml");
            Assert.That(Ctl("mount", "a", "-o", $"policy={policy}").ExitCode, Is.EqualTo(0));
            Assert.That(Ctl("mount", "b", "-o", "nodev").ExitCode, Is.EqualTo(0));
            var again = Ctl("mount", "a");
            Assert.That(again.ExitCode, Is.EqualTo(1));
            Assert.That(again.Stderr, Does.Contain("mounted already"));
            var a = Path.Combine(stateDir, "a");
            var b = Path.Combine(stateDir, "b");
            Assert.That(Environment.IsMounted(a) && Environment.IsMounted(b), Is.True);
            Assert.That(Environment.FindDaemon(a), Is.Null, "the mounts belong to the service, not to a devfs per mount");
            Assert.That(Directory.GetFiles($"/proc/{service.Id}/fd").Count(fd => File.ResolveLinkTarget(fd, false)?.ToString() == "/dev/fuse"),
                Is.GreaterThanOrEqualTo(2), "one process holds both connections");

            var list = Ctl("list");
            Assert.That(list.Stdout, Does.Match($@"(?m)^a {a} container=a devices=\d+").And.Match($@"(?m)^b {b} container=b"));
            Assert.That(Ctl("devices", "a").Stdout, Does.Contain("loop-control char 10:237 proxy"));
            Assert.That(Ctl("status").Stdout, Does.Contain("mounts=2"));

            var events = Process.Start(new ProcessStartInfo(Environment.DevFsBinary, ["ctl", "events"]) { UseShellExecute = false, RedirectStandardOutput = true })!;
            var index = loops.FreeIndex(700 + System.Environment.ProcessId % 50 * 10);
            try
            {
                Thread.Sleep(300); // the events client connects
                loops.AddExact(index);
                var line = events.StandardOutput.ReadLineAsync();
                Assert.That(line.Wait(TimeSpan.FromSeconds(5)), Is.True, "no event arrived");
                Assert.That(line.Result, Does.StartWith($"device added loop{index} 7:{index} block"));
            }
            finally
            {
                events.Kill();
                events.Dispose();
            }

            Assert.That(Ctl("assign", $"loop{index}", "a").ExitCode, Is.EqualTo(0));
            Assert.That(Environment.WaitUntil(() => File.Exists(Path.Combine(a, $"loop{index}")), TimeSpan.FromSeconds(5)), "assigned device never appeared");
            Assert.That(File.Exists(Path.Combine(b, $"loop{index}")), Is.False);
            Assert.That(Ctl("assign", $"loop{index}", "b").Stderr, Does.Contain("belongs to container a"));
            Assert.That(Ctl("unassign", $"loop{index}").ExitCode, Is.EqualTo(0));
            Assert.That(Environment.WaitUntil(() => !File.Exists(Path.Combine(a, $"loop{index}")), TimeSpan.FromSeconds(5)), "taken-back device stayed");

            var nonRoot = Run.Command("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", $"DEVFS_STATE_DIR={stateDir}", Environment.DevFsBinary, "ctl", "list"]);
            Assert.That(nonRoot.ExitCode, Is.EqualTo(1));
            Assert.That(nonRoot.Stderr, Does.Contain("cannot reach the devfs service"));

            Assert.That(Ctl("unmount", "b").ExitCode, Is.EqualTo(0));
            Assert.That(Environment.IsMounted(b), Is.False);
            Assert.That(Ctl("list").Stdout, Does.Not.Contain(" container=b"));

            Run.Command("kill", ["-TERM", service.Id.ToString()]);
            Assert.That(service.WaitForExit(15_000), Is.True, "the service did not stop on SIGTERM");
            Assert.That(service.ExitCode, Is.EqualTo(0), log.Result);
            Assert.That(Environment.IsMounted(a), Is.False, "stopping the service unmounts every mount");
        }
        finally
        {
            if (!service.HasExited)
                service.Kill();
            foreach (var dir in new[] { "a", "b" }.Select(n => Path.Combine(stateDir, n)).Where(Environment.IsMounted))
                Run.Command("umount", ["-l", dir]);
            System.Environment.SetEnvironmentVariable("DEVFS_STATE_DIR", null);
            Directory.Delete(stateDir, recursive: true);
        }
    }

    private static CommandResult Ctl(params string[] args) => Run.Command(Environment.DevFsBinary, ["ctl", .. args]);
}
