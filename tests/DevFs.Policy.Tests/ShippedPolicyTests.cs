using DevFs.Devices;

namespace DevFs.Policy.Tests;

public class ShippedPolicyTests
{
    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DevFs.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("DevFs.sln not found above " + TestContext.CurrentContext.TestDirectory);
    }

    private static DevicePolicy LoadShipped(string relative) => DevicePolicy.Load(Path.Combine(RepoRoot(), relative));

    private static IEnumerable<HostDevice> Standard =>
        [Dev.Null, Dev.Zero, Dev.Full, Dev.Random, Dev.Urandom, Dev.Tty];

    private static IEnumerable<HostDevice> NeverShownByDefault =>
        [Dev.Tty0, Dev.Tty63, Dev.TtyS0, Dev.Console, Dev.Ptmx, Dev.Kmsg, Dev.Mem, Dev.Port, Dev.Loop0, Dev.Vda, Dev.Vda1,
         Dev.LoopControl, Dev.Fuse, Dev.Tun, Dev.Event3];

    [Test]
    public void DefaultFileAndEmbeddedDefaultAreTheSamePolicy()
    {
        var file = LoadShipped("policies/default.yaml");
        var embedded = DevicePolicy.Default;
        Assert.That(embedded.Source, Is.EqualTo("<built-in default.yaml>"));
        Assert.That(embedded.Devices, Has.Count.EqualTo(file.Devices.Count));
        Assert.That(embedded.Directories, Is.EqualTo(file.Directories));
        Assert.That(embedded.Symlinks, Is.EqualTo(file.Symlinks));
        Assert.That(DevicePolicy.Default, Is.SameAs(embedded), "parsed once");
    }

    [TestCase("policies/default.yaml")]
    [TestCase("policies/examples/loop.yaml")]
    public void StandardDevicesAreGlobalAutoAndWorldWritable(string file)
    {
        var policy = LoadShipped(file);
        foreach (var d in Standard)
        {
            var e = policy.Match(d);
            Assert.That(e, Is.Not.Null, d.DevName);
            Assert.That(e!.Path, Is.EqualTo(d.DevName));
            Assert.That(e.Access, Is.EqualTo(AccessMode.Auto));
            Assert.That(e.Mode, Is.EqualTo(0x1B6u), $"{d.DevName} mode 0666");
            Assert.That(e.Global, Is.True, d.DevName);
            Assert.That((e.Uid, e.Gid), Is.EqualTo((0u, 0u)));
        }
    }

    [Test]
    public void DefaultShowsNothingElse()
    {
        var policy = LoadShipped("policies/default.yaml");
        foreach (var d in NeverShownByDefault)
            Assert.That(policy.Match(d), Is.Null, d.DevName);
    }

    [Test]
    public void DefaultHasDirectoriesAndSymlinksContainersExpect()
    {
        var policy = DevicePolicy.Default;
        Assert.That(policy.Directories, Is.EqualTo(new[]
        {
            new DirectoryRule("pts", 0x1ED, 0, 0),
            new DirectoryRule("shm", 0x3FF, 0, 0),   // 01777
            new DirectoryRule("mqueue", 0x3FF, 0, 0),
        }));
        Assert.That(policy.Symlinks, Is.EqualTo(new[]
        {
            new SymlinkRule("fd", "/proc/self/fd"),
            new SymlinkRule("stdin", "/proc/self/fd/0"),
            new SymlinkRule("stdout", "/proc/self/fd/1"),
            new SymlinkRule("stderr", "/proc/self/fd/2"),
            new SymlinkRule("ptmx", "pts/ptmx"),
        }));
        Assert.That(policy.Containers, Is.Empty);
    }

    [Test]
    public void DefaultCommentedOptInsWorkWhenUncommented()
    {
        // The commented-out rules for fuse and net/tun must be valid policy once uncommented.
        var text = File.ReadAllText(Path.Combine(RepoRoot(), "policies/default.yaml"))
            .Replace("  # - match:", "  - match:").Replace("  #   mode:", "    mode:");
        var policy = DevicePolicy.Parse(text, "uncommented");
        Assert.That(policy.Match(Dev.Fuse)?.Mode, Is.EqualTo(0x1B6u));
        Assert.That(policy.Match(Dev.Tun)?.Path, Is.EqualTo("net/tun"));
        Assert.That(policy.Match(Dev.Tun)!.Global, Is.False);
        Assert.That(policy.Match(Dev.Tty0), Is.Null);
    }

    [Test]
    public void LoopExampleAddsLoopDevicesAndLoopControl()
    {
        var policy = LoadShipped("policies/examples/loop.yaml");
        foreach (var d in new[] { Dev.Loop0, Dev.Loop7, Dev.Loop12 })
        {
            var e = policy.Match(d);
            Assert.That(e, Is.Not.Null, d.DevName);
            Assert.That(e!.Access, Is.EqualTo(AccessMode.Auto));
            Assert.That(e.Mode, Is.EqualTo(0x1B0u), "0660");
            Assert.That(e.Global, Is.False);
        }
        var lc = policy.Match(Dev.LoopControl);
        Assert.That(lc, Is.Not.Null);
        Assert.That(lc!.Path, Is.EqualTo("loop-control"));
        Assert.That(lc.Access, Is.EqualTo(AccessMode.Proxy), "devfs must see loop-control's ioctls to know who made a loop device");
        Assert.That(lc.Global, Is.True);
        Assert.That(lc.Rule.Ioctls.Decide(0x4C80).Allowed, Is.True, "LOOP_CTL_ADD");
        Assert.That(lc.Rule.Ioctls.Decide(0x4C82).Allowed, Is.True, "LOOP_CTL_GET_FREE");

        foreach (var d in new[] { Dev.Vda, Dev.Vda1, Dev.Tty0, Dev.TtyS0, Dev.Kmsg, Dev.Mem, Dev.Port, Dev.Fuse, Dev.Tun })
            Assert.That(policy.Match(d), Is.Null, d.DevName);
        // Same name, wrong numbers or subsystem: not a loop device.
        Assert.That(policy.Match(Dev.Block("loop0", 8, 0)), Is.Null);
        Assert.That(policy.Match(Dev.Char("loop0", 7, 0, "block")), Is.Null);
        Assert.That(policy.Match(Dev.Char("loop-control", 10, 238, "misc")), Is.Null);
        Assert.That(policy.Match(Dev.Block("loopback", 7, 99)), Is.Null);
    }
}
