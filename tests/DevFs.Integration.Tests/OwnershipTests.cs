using NUnit.Framework;

namespace DevFs.Integration.Tests;

/// <summary>Each container sees its own devices: real user namespaces, real loop devices, run-time assignment.</summary>
[TestFixture]
[NonParallelizable]
public sealed class OwnershipTests
{
    private string _stateDir = "";

    [SetUp]
    public void UseOwnStateDirectory()
    {
        // The daemons and the assign commands started by this test share this directory, not /run/devfs.
        _stateDir = Directory.CreateTempSubdirectory("devfs-state-").FullName;
        System.Environment.SetEnvironmentVariable("DEVFS_STATE_DIR", _stateDir);
    }

    [TearDown]
    public void DropStateDirectory()
    {
        System.Environment.SetEnvironmentVariable("DEVFS_STATE_DIR", null);
        Directory.Delete(_stateDir, recursive: true);
    }

    [Test]
    public void UnprivilegedContainerRootSeesRootOwnedEntries()
    {
        using var container = new TestContainer(100000);
        using var mount = DevFsMount.Start($"container=a,pid={container.Pid}");
        Assert.That(Run.Command("stat", ["-c", "%u:%g", mount["null"]]).Stdout.Trim(), Is.EqualTo("100000:100000"),
            "on the host, entries belong to the id container root maps to");
        var inside = container.Run(mount.MountPoint, "stat -c '%U:%G %F' /dev/null /dev/pts; id -u; echo x > /dev/null && head -c 3 /dev/zero | od -An -tx1");
        Assert.That(inside.ExitCode, Is.EqualTo(0), inside.Output);
        Assert.That(inside.Stdout, Does.Contain("root:root character special file").And.Contain("root:root directory"));
        Assert.That(inside.Stdout, Does.Contain(" 00 00 00"));
        var made = container.Run(mount.MountPoint, "mkdir /dev/net && ln -s /proc/self/fd /dev/fd2 && stat -c %U /dev/net");
        Assert.That(made.ExitCode, Is.EqualTo(0), made.Output);
        Assert.That(made.Stdout.Trim(), Is.EqualTo("root"));
        Assert.That(Run.Command("stat", ["-c", "%u", mount["net"]]).Stdout.Trim(), Is.EqualTo("100000"));
    }

    [Test]
    public void TwoContainersEachSeeTheirOwnDevicesAndAssignmentMovesOneLive()
    {
        using var loops = LoopControl.OpenOrFail();
        var name = AddLoop(loops);
        using var a = new TestContainer(100000);
        using var b = new TestContainer(200000);
        var policy = Environment.PolicyPath("examples/loop.yaml");
        using var mountA = DevFsMount.Start($"container=a,pid={a.Pid},policy={policy}");
        using var mountB = DevFsMount.Start($"container=b,pid={b.Pid},policy={policy}");
        Assert.That(File.Exists(mountA[name]) || Directory.Exists(mountA[name]), Is.False, "a loop device nobody owns is in no container");
        Assert.That(Run.Command("stat", [mountA[name]]).ExitCode, Is.Not.EqualTo(0));
        Assert.That(Run.Command("stat", [mountA["loop-control"]]).ExitCode, Is.EqualTo(0), "loop-control is global in loop.yaml");

        Assert.That(Run.Command(Environment.DevFsBinary, ["assign", name, "a"]).ExitCode, Is.EqualTo(0));
        Assert.That(Environment.WaitUntil(() => Run.Command("stat", [mountA[name]]).ExitCode == 0, TimeSpan.FromSeconds(5)), "assigned device never appeared in a");
        Assert.That(Run.Command("stat", [mountB[name]]).ExitCode, Is.Not.EqualTo(0), "b must not see a's device");
        var insideA = a.Run(mountA.MountPoint, $"stat -c '%U:%G %F %t:%T' /dev/{name}");
        Assert.That(insideA.Stdout.Trim(), Is.EqualTo("root:root block special file 7:" + int.Parse(name[4..]).ToString("x")), insideA.Output);
        Assert.That(b.Run(mountB.MountPoint, $"ls /dev/{name}").ExitCode, Is.Not.EqualTo(0));

        var taken = Run.Command(Environment.DevFsBinary, ["assign", name, "b"]);
        Assert.That(taken.ExitCode, Is.EqualTo(1), "assignment is exclusive");
        Assert.That(taken.Stderr, Does.Contain("belongs to container a"));
        Assert.That(Run.Command(Environment.DevFsBinary, ["assign", name, "b", "--move"]).ExitCode, Is.EqualTo(0));
        Assert.That(Environment.WaitUntil(() => Run.Command("stat", [mountB[name]]).ExitCode == 0, TimeSpan.FromSeconds(5)), "moved device never appeared in b");
        Assert.That(Environment.WaitUntil(() => Run.Command("stat", [mountA[name]]).ExitCode != 0, TimeSpan.FromSeconds(5)), "moved device stayed in a");
        Assert.That(Run.Command(Environment.DevFsBinary, ["assignments"]).Stdout, Does.Match($@"(?m)^{name}\s+b\s+assigned"));

        Assert.That(Run.Command(Environment.DevFsBinary, ["unassign", name]).ExitCode, Is.EqualTo(0));
        Assert.That(Environment.WaitUntil(() => Run.Command("stat", [mountB[name]]).ExitCode != 0, TimeSpan.FromSeconds(5)), "taken-back device stayed in b");
    }

    [Test]
    public void AssignmentsSurviveARestartOfDevfs()
    {
        using var loops = LoopControl.OpenOrFail();
        var name = AddLoop(loops);
        Assert.That(Run.Command(Environment.DevFsBinary, ["assign", name, "a"]).ExitCode, Is.EqualTo(0));
        using var container = new TestContainer(100000);
        var options = $"container=a,pid={container.Pid},policy={Environment.PolicyPath("examples/loop.yaml")}";
        var first = DevFsMount.Start(options);
        Assert.That(Run.Command("stat", [first[name]]).ExitCode, Is.EqualTo(0));
        first.Dispose();
        using var second = DevFsMount.Start(options);
        Assert.That(Run.Command("stat", [second[name]]).ExitCode, Is.EqualTo(0), "a new devfs process must find the assignment");
    }

    [Test]
    public void ALoopDeviceMadeInsideAContainerIsOnlyItsOwn()
    {
        using var loops = LoopControl.OpenOrFail(); // only to pick a free index and clean up on failure
        var index = loops.FreeIndex(600 + System.Environment.ProcessId % 50 * 10);
        using var a = new TestContainer(100000);
        using var b = new TestContainer(200000);
        var policy = Environment.PolicyPath("examples/loop.yaml");
        using var mountA = DevFsMount.Start($"container=a,pid={a.Pid},policy={policy}");
        using var mountB = DevFsMount.Start($"container=b,pid={b.Pid},policy={policy}");
        try
        {
            var made = a.Run(mountA.MountPoint, $"python3 -c \"import fcntl,os; fd=os.open('/dev/loop-control', os.O_RDWR); print(fcntl.ioctl(fd, 0x4C80, {index}))\"");
            Assert.That(made.ExitCode, Is.EqualTo(0), made.Output);
            Assert.That(made.Stdout.Trim(), Is.EqualTo(index.ToString()));
            var name = $"loop{index}";
            Assert.That(Environment.WaitUntil(() => Run.Command("stat", [mountA[name]]).ExitCode == 0, TimeSpan.FromSeconds(5)), "a's own loop device never appeared in a");
            Assert.That(a.Run(mountA.MountPoint, $"stat -c %U /dev/{name}").Stdout.Trim(), Is.EqualTo("root"));
            Assert.That(Run.Command("stat", [mountB[name]]).ExitCode, Is.Not.EqualTo(0), "b must not see a's loop device");
            Assert.That(Run.Command(Environment.DevFsBinary, ["assignments"]).Stdout, Does.Match($@"(?m)^{name}\s+a\s+created"));

            var stolen = b.Run(mountB.MountPoint, $"python3 -c \"import fcntl,os; fd=os.open('/dev/loop-control', os.O_RDWR); fcntl.ioctl(fd, 0x4C81, {index})\"");
            Assert.That(stolen.ExitCode, Is.Not.EqualTo(0), "b removed a's loop device");
            Assert.That(stolen.Stderr, Does.Contain("Operation not permitted"));
            Assert.That(Directory.Exists($"/sys/block/{name}"), Is.True);

            var removed = a.Run(mountA.MountPoint, $"python3 -c \"import fcntl,os; fd=os.open('/dev/loop-control', os.O_RDWR); fcntl.ioctl(fd, 0x4C81, {index})\"");
            Assert.That(removed.ExitCode, Is.EqualTo(0), removed.Output);
            Assert.That(Environment.WaitUntil(() => Run.Command("stat", [mountA[name]]).ExitCode != 0, TimeSpan.FromSeconds(5)), "removed loop device stayed in a");
            Assert.That(Run.Command(Environment.DevFsBinary, ["assignments"]).Stdout, Does.Not.Contain(name));
        }
        finally
        {
            if (Directory.Exists($"/sys/block/loop{index}"))
                loops.Adopt(index);
        }
    }

    /// <summary>A new loop device at a free index, for this test only; returns its name.</summary>
    private static string AddLoop(LoopControl loops)
    {
        var index = loops.FreeIndex(500 + System.Environment.ProcessId % 50 * 10);
        loops.AddExact(index);
        return $"loop{index}";
    }

    [Test]
    public void MknodFollowsThePolicyInAPrivilegedContainerAndTheKernelRefusesItInAUserNamespace()
    {
        using var mount = DevFsMount.Start("container=a");
        // A privileged container: its own mount namespace, the host's root.
        var privileged = Run.Command("unshare", ["--mount", "/bin/sh", "-c",
            $"mount --bind {mount.MountPoint} /dev && mknod /dev/zero2 c 1 5 && stat -c '%F %t:%T' /dev/zero2 && mknod /dev/kmsg c 1 11"]);
        Assert.That(privileged.Stdout, Does.Contain("character special file 1:5"), privileged.Output);
        Assert.That(privileged.Stderr, Does.Contain("kmsg").And.Contain("Operation not permitted"));
        // Unprivileged: vfs_mknod wants CAP_MKNOD in the initial namespace, so the kernel refuses before
        // asking the filesystem, for allowed and forbidden devices alike (the device guard never merged).
        using var container = new TestContainer(100000);
        using var containerMount = DevFsMount.Start($"container=a,pid={container.Pid}");
        Assert.That(container.Run(containerMount.MountPoint, "mkdir /dev/mine").ExitCode, Is.EqualTo(0), "container root owns its /dev");
        var inside = container.Run(containerMount.MountPoint, "mknod /dev/zero3 c 1 5");
        Assert.That(inside.ExitCode, Is.Not.EqualTo(0));
        Assert.That(inside.Stderr, Does.Contain("Operation not permitted"));
    }
}
