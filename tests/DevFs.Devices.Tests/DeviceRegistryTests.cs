using System.Diagnostics;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Devices.Tests;

/// <summary>Real hotplug through /dev/loop-control and real uevents. Needs root; fails (never skips) without.</summary>
[TestFixture]
[NonParallelizable]
public class DeviceRegistryTests
{
    private static readonly TimeSpan TwoSeconds = TimeSpan.FromSeconds(2);

    /// <summary>Where this test run's loop indexes start: high, and spread by pid so parallel runs rarely meet.</summary>
    private static int LoopBase => 200 + (Environment.ProcessId % 20) * 40;

    private static string LoopPath(int i) => $"/devices/virtual/block/loop{i}";

    [Test]
    public void LoopAddAndRemoveRaiseEvents()
    {
        using var loop = LoopControl.OpenOrFail();
        using var reg = new DeviceRegistry();
        var log = new EventLog(reg);
        reg.Start();
        Assert.That(reg.IsRunning, Is.True);
        Assert.That(reg.FindByDevName("null")?.DevPath, Is.EqualTo("/devices/virtual/mem/null"));
        Assert.That(reg.FindByDevNum(DeviceKind.Char, 1, 5)?.DevName, Is.EqualTo("zero"));

        var sw = Stopwatch.StartNew();
        int n = loop.Add(LoopBase);
        var added = log.WaitForEvent("added", e => e.Device.DevName == $"loop{n}", TwoSeconds);
        Assert.That(added, Is.Not.Null, $"no DeviceAdded for loop{n} within 2 s");
        TestContext.Out.WriteLine($"add seen after {sw.ElapsedMilliseconds} ms");
        var dev = added!.Value.Args.Device;
        Assert.That(dev.Major, Is.EqualTo(7u));
        Assert.That(dev.Kind, Is.EqualTo(DeviceKind.Block));
        Assert.That(dev.DevPath, Is.EqualTo(LoopPath(n)));
        Assert.That(dev.Subsystem, Is.EqualTo("block"));
        Assert.That(added.Value.Args.Uevent?.Action, Is.EqualTo(UeventAction.Add));
        Assert.That(reg.FindByDevName($"loop{n}"), Is.Not.Null);
        Assert.That(reg.FindByDevNum(DeviceKind.Block, 7, dev.Minor)?.DevPath, Is.EqualTo(LoopPath(n)));
        Assert.That(reg.FindByDevPath(LoopPath(n))?.Attributes.Find("dev"), Is.EqualTo($"7:{dev.Minor}"));

        sw.Restart();
        loop.Remove(n);
        var removed = log.WaitForEvent("removed", e => e.Device.DevName == $"loop{n}", TwoSeconds);
        Assert.That(removed, Is.Not.Null, $"no DeviceRemoved for loop{n} within 2 s");
        TestContext.Out.WriteLine($"remove seen after {sw.ElapsedMilliseconds} ms");
        Assert.That(reg.FindByDevName($"loop{n}"), Is.Null);
        Assert.That(reg.FindByDevPath(LoopPath(n)), Is.Null);
        Assert.That(reg.FindByDevNum(DeviceKind.Block, 7, dev.Minor), Is.Null);
        Assert.That(reg.Received, Is.GreaterThanOrEqualTo(2));
        Assert.That(reg.Resyncs, Is.Zero);
    }

    [Test]
    public void MonitorThreadRunsSchedFifoAsRoot()
    {
        if (geteuid() != 0)
            Assert.Fail("This test needs root (SCHED_FIFO on the monitor thread); run the tests as root.");
        using var reg = new DeviceRegistry();
        reg.Start();
        Assert.That(SpinWait.SpinUntil(() => reg.MonitorPriority != ThreadSchedulingResult.Unchanged, TwoSeconds), Is.True,
            "the monitor thread did not raise its priority");
        Assert.That(reg.MonitorPriority, Is.EqualTo(ThreadSchedulingResult.RealTime));
        // /proc/self/task/TID/stat: field 40 is rt_priority, 41 policy (SCHED_FIFO = 1), counted after "(comm)".
        var task = Directory.GetDirectories("/proc/self/task")
            .Single(t => File.ReadAllText(Path.Combine(t, "comm")).Trim() == "devfs-uevent");
        var stat = File.ReadAllText(Path.Combine(task, "stat"));
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        Assert.That(fields[41 - 3], Is.EqualTo("1"), "policy SCHED_FIFO");
        Assert.That(fields[40 - 3], Is.EqualTo("1"), "rt_priority 1");
    }

    [Test]
    public void MonitorPriorityCanBeLeftAlone()
    {
        using var reg = new DeviceRegistry(new DeviceRegistryOptions { MonitorRealTimePriority = 0 });
        reg.Start();
        Thread.Sleep(50);
        Assert.That(reg.MonitorPriority, Is.EqualTo(ThreadSchedulingResult.Unchanged));
        var task = Directory.GetDirectories("/proc/self/task")
            .Single(t => File.ReadAllText(Path.Combine(t, "comm")).Trim() == "devfs-uevent");
        var stat = File.ReadAllText(Path.Combine(task, "stat"));
        Assert.That(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[41 - 3], Is.EqualTo("0"), "policy SCHED_OTHER");
    }

    [Test]
    public void ThrowingSubscriberDoesNotKillTheMonitor()
    {
        using var loop = LoopControl.OpenOrFail();
        using var reg = new DeviceRegistry();
        reg.DeviceAdded += (_, _) => throw new InvalidOperationException("subscriber bug");
        reg.DeviceRemoved += (_, _) => throw new InvalidOperationException("subscriber bug");
        var log = new EventLog(reg); // subscribed after the throwing one: must still be called
        reg.Start();

        int a = loop.Add(LoopBase);
        Assert.That(log.WaitForEvent("added", e => e.Device.DevName == $"loop{a}", TwoSeconds), Is.Not.Null);
        Assert.That(reg.Counters.SubscriberErrors, Is.EqualTo(1));
        loop.Remove(a);
        Assert.That(log.WaitForEvent("removed", e => e.Device.DevName == $"loop{a}", TwoSeconds), Is.Not.Null);
        int mark = log.Total;
        int b = loop.Add(LoopBase);
        Assert.That(log.WaitForEvent("added", e => e.Device.DevName == $"loop{b}", TwoSeconds, mark), Is.Not.Null,
            "the monitor stopped after a subscriber threw");
        Assert.That(reg.IsRunning, Is.True);
        Assert.That(reg.Counters.SubscriberErrors, Is.GreaterThanOrEqualTo(3));
    }

    [Test]
    public unsafe void ForgedUeventFromUserspaceIsDropped()
    {
        using var loop = LoopControl.OpenOrFail(); // root check
        using var reg = new DeviceRegistry();
        var log = new EventLog(reg);
        reg.Start();
        uint port = reg.SocketPortId;
        Assert.That(port, Is.Not.Zero);

        using var sender = UeventSocket.Open();
        var forged = UeventMessageTests.Build("add@/devices/virtual/mem/evil", "ACTION=add", "DEVPATH=/devices/virtual/mem/evil",
            "SUBSYSTEM=mem", "MAJOR=1", "MINOR=1", "DEVNAME=evil", "SEQNUM=999999999");
        var to = new sockaddr_nl { nl_family = (ushort)(int)AF_NETLINK, nl_pid = port };
        long sent;
        fixed (byte* p = forged)
            sent = sendto(sender.Fd, p, forged.Length, 0, (sockaddr*)&to, (socklen_t)sizeof(sockaddr_nl));
        Assert.That(sent, Is.EqualTo(forged.Length), $"sendto failed: errno {errno}");

        Assert.That(log.WaitFor(() => reg.Dropped >= 1, TwoSeconds), Is.True, "forged datagram not counted as dropped");
        Assert.That(reg.FindByDevName("evil"), Is.Null);
        Assert.That(log.Count(e => e.Args.Device.DevName == "evil"), Is.Zero);
    }

    [Test]
    public void DisposeStopsTheMonitorPromptly()
    {
        using var loop = LoopControl.OpenOrFail();
        var reg = new DeviceRegistry();
        reg.Start();
        Thread.Sleep(50);
        var sw = Stopwatch.StartNew();
        reg.Dispose();
        Assert.That(sw.ElapsedMilliseconds, Is.LessThan(1000));
        Assert.That(reg.IsRunning, Is.False);
        reg.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => reg.Start());
    }

    [Test]
    public void ChangeStorm()
    {
        using var loop = LoopControl.OpenOrFail();
        using var reg = new DeviceRegistry();
        var log = new EventLog(reg);
        reg.Start();
        var loops = new[] { loop.Add(LoopBase), loop.Add(LoopBase) };
        foreach (var l in loops)
            Assert.That(log.WaitForEvent("added", e => e.Device.DevName == $"loop{l}", TwoSeconds), Is.Not.Null);

        var targets = Directory.GetDirectories("/sys/class/mem").Select(d => Path.Combine(d, "uevent"))
            .Concat(loops.Select(l => $"/sys{LoopPath(l)}/uevent")).ToArray();
        var targetPaths = targets
            .Select(t => new DirectoryInfo(Path.GetDirectoryName(t)!))
            .Select(d => (d.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? d.FullName)["/sys".Length..])
            .ToHashSet();
        Assert.That(targetPaths, Does.Contain("/devices/virtual/mem/null"));

        const int Storm = 2000;
        long before = log.Count(e => e.Kind == "changed" && targetPaths.Contains(e.Args.Device.DevPath));
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < Storm; i++)
            File.WriteAllText(targets[i % targets.Length], "change");
        long writeMs = sw.ElapsedMilliseconds;
        bool done = log.WaitFor(() =>
            log.Events.Count(e => e.Kind == "changed" && targetPaths.Contains(e.Args.Device.DevPath)) - before >= Storm
            || log.ResyncCount > 0, TimeSpan.FromSeconds(10));
        long changed = log.Count(e => e.Kind == "changed" && targetPaths.Contains(e.Args.Device.DevPath)) - before;
        TestContext.Out.WriteLine($"storm: {Storm} writes in {writeMs} ms, {changed} changes delivered after {sw.ElapsedMilliseconds} ms; " +
                                  $"counters {reg.Counters}");
        Assert.That(done, Is.True, $"only {changed}/{Storm} change events and no resync");
        if (reg.Resyncs == 0)
            Assert.That(changed, Is.EqualTo(Storm));

        AssertMatchesSysfs(reg);
        foreach (var l in loops)
            Assert.That(reg.FindByDevName($"loop{l}"), Is.Not.Null);
    }

    [Test]
    public void OverflowTriggersResyncAndNothingIsMissed()
    {
        using var loop = LoopControl.OpenOrFail();
        using var reg = new DeviceRegistry(new DeviceRegistryOptions { ReceiveBufferSize = 1 });
        var mirror = new Dictionary<string, HostDevice>();
        var mirrorLock = new object();
        var log = new EventLog(reg);
        reg.DeviceAdded += (_, e) => { lock (mirrorLock) mirror[e.Device.DevPath] = e.Device; };
        reg.DeviceChanged += (_, e) => { lock (mirrorLock) mirror[e.Device.DevPath] = e.Device; };
        reg.DeviceRemoved += (_, e) => { lock (mirrorLock) mirror.Remove(e.Device.DevPath); };

        reg.PauseMonitor(); // the monitor stops before its first recv: the burst has to queue in a tiny buffer
        reg.Start();
        TestContext.Out.WriteLine($"receive buffer granted: {reg.ReceiveBufferSize} bytes");
        Assert.That(reg.ReceiveBufferSize, Is.LessThan(16 * 1024));
        lock (mirrorLock)
            foreach (var d in reg.Snapshot())
                mirror[d.DevPath] = d;

        var all = new List<int>();
        for (int i = 0; i < 20; i++)
            all.Add(loop.Add(LoopBase));
        var removed = all.Take(10).ToList();
        var kept = all.Skip(10).ToList();
        foreach (var i in removed)
            loop.Remove(i);
        var sw = Stopwatch.StartNew();
        reg.ResumeMonitor();

        bool settled = log.WaitFor(() =>
            reg.Resyncs > 0
            && kept.All(i => reg.FindByDevPath(LoopPath(i)) is not null)
            && removed.All(i => reg.FindByDevPath(LoopPath(i)) is null), TimeSpan.FromSeconds(5));
        TestContext.Out.WriteLine($"settled in {sw.ElapsedMilliseconds} ms; counters {reg.Counters}");
        Assert.That(reg.Resyncs, Is.GreaterThan(0), "the burst did not overflow the socket (no ENOBUFS)");
        Assert.That(settled, Is.True, "registry did not converge to the loop devices present");

        AssertMatchesSysfs(reg);
        // A subscriber that applied every event holds the same set: nothing was missed.
        Assert.That(log.WaitFor(() =>
        {
            lock (mirrorLock)
                return mirror.Keys.Order(StringComparer.Ordinal).SequenceEqual(reg.Snapshot().Select(d => d.DevPath));
        }, TwoSeconds), Is.True, "events raised do not add up to the registry's state");
        lock (mirrorLock)
        {
            foreach (var i in kept)
                Assert.That(mirror.ContainsKey(LoopPath(i)), Is.True, $"loop{i} never reported added");
            foreach (var i in removed)
                Assert.That(mirror.ContainsKey(LoopPath(i)), Is.False, $"loop{i} reported present");
        }
    }

    /// <summary>
    /// Registry and sysfs agree. Other processes may hotplug meanwhile, so compare a few times before failing.
    /// </summary>
    private static void AssertMatchesSysfs(DeviceRegistry reg)
    {
        string diff = "";
        for (int attempt = 0; attempt < 20; attempt++)
        {
            var scan = SysfsDeviceScanner.Scan().ToDictionary(d => d.DevPath);
            var snap = reg.Snapshot().ToDictionary(d => d.DevPath);
            var missing = scan.Keys.Except(snap.Keys).ToList();
            var extra = snap.Keys.Except(scan.Keys).ToList();
            var different = scan.Keys.Intersect(snap.Keys)
                .Where(k => !SysfsDeviceScanner.SameContent(scan[k], snap[k])).ToList();
            if (missing.Count == 0 && extra.Count == 0 && different.Count == 0)
                return;
            diff = $"missing {string.Join(",", missing)}; extra {string.Join(",", extra)}; different {string.Join(",", different)}";
            Thread.Sleep(100);
        }
        Assert.Fail("registry does not match sysfs: " + diff);
    }
}
