using System.Diagnostics;
using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>
/// A test container: a process in its own user namespace, with container root mapped to a host id
/// range (as LXC and Incus do). Commands run inside a fresh mount namespace owned by that user
/// namespace, with the container's devfs mount bound onto /dev, as an autodev hook would.
/// </summary>
public sealed class TestContainer : IDisposable
{
    private readonly Process _holder;

    public TestContainer(uint hostIdBase)
    {
        Environment.RequireRootAndFuse();
        HostIdBase = hostIdBase;
        var start = new ProcessStartInfo("unshare", ["--user", "sleep", "600"]) { UseShellExecute = false };
        _holder = Process.Start(start)!;
        Assert.That(Environment.WaitUntil(() => File.Exists($"/proc/{Pid}/ns/user") &&
            File.ResolveLinkTarget($"/proc/{Pid}/ns/user", false)?.Name != File.ResolveLinkTarget("/proc/self/ns/user", false)?.Name,
            TimeSpan.FromSeconds(5)), "the container's user namespace did not appear");
        File.WriteAllText($"/proc/{Pid}/uid_map", $"0 {hostIdBase} 65536");
        File.WriteAllText($"/proc/{Pid}/gid_map", $"0 {hostIdBase} 65536");
    }

    public int Pid => _holder.Id;
    public uint HostIdBase { get; }

    /// <summary>Runs a shell script as the container's root with devfsMount bound on /dev.</summary>
    public CommandResult Run(string devfsMount, string script) =>
        Tests.Run.Command("nsenter", ["-t", Pid.ToString(), "-U", "--", "unshare", "--mount", "/bin/sh", "-c",
            $"mount --bind {devfsMount} /dev || exit 99\n{script}"]);

    public void Dispose()
    {
        if (!_holder.HasExited)
            _holder.Kill();
        _holder.WaitForExit();
        _holder.Dispose();
    }
}
