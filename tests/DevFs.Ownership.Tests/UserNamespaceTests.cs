namespace DevFs.Ownership.Tests;

public class UserNamespaceTests
{
    [Test]
    public void TheTestProcessIsInTheInitialNamespace()
    {
        // The tests run as root on the host: the maps are "0 0 4294967295".
        var ns = UserNamespace.Of(Environment.ProcessId);
        Assert.That(ns.Uids.Ranges, Is.EqualTo(new[] { new IdRange(0, 0, uint.MaxValue) }));
        Assert.That(ns.Gids.Ranges, Is.EqualTo(new[] { new IdRange(0, 0, uint.MaxValue) }));
        Assert.That(ns.Uids.ToHost(0), Is.EqualTo(0u));
        Assert.That(ns.Uids.ToHost(100000), Is.EqualTo(100000u));
        Assert.That(ns.Inode, Is.Not.EqualTo(0UL));
        // The same namespace named by its file is the same inode.
        Assert.That(UserNamespace.FromPath($"/proc/{Environment.ProcessId}/ns/user").Inode, Is.EqualTo(ns.Inode));
        Assert.That(UserNamespace.FromPath("/proc/self/ns/user").Inode, Is.EqualTo(ns.Inode));
    }

    [TestCase("/proc/1/ns/mnt")]
    [TestCase("/proc/1/ns/user/")]
    [TestCase("/proc/1/user")]
    [TestCase("/proc/1/uid_map")]
    [TestCase("user")]
    [TestCase("")]
    public void FromPathRefusesWhatIsNotAUserNamespaceFile(string path)
    {
        var e = Assert.Throws<ArgumentException>(() => UserNamespace.FromPath(path));
        Assert.That(e!.Message, Does.Contain("/proc/PID/ns/user"));
        Assert.That(e.Message, Does.StartWith($"userns={path}:"));
    }

    [Test]
    public void AProcessThatDoesNotExistIsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => UserNamespace.Of(int.MaxValue));
        Assert.That(e!.Message, Does.StartWith($"pid={int.MaxValue}:"));
        Assert.That(e.Message, Does.Contain("is the container running"));
    }
}
