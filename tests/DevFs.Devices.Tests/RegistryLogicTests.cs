namespace DevFs.Devices.Tests;

/// <summary>Registry event logic against a fake sysfs tree, with uevents fed by hand (no socket, no root).</summary>
[TestFixture]
public class RegistryLogicTests
{
    private static UeventMessage Msg(string action, string devPath, string subsystem, ulong seq, params string[] extra)
    {
        var fields = new List<string> { $"ACTION={action}", $"DEVPATH={devPath}", $"SUBSYSTEM={subsystem}" };
        fields.AddRange(extra);
        fields.Add($"SEQNUM={seq}");
        Assert.That(UeventMessage.TryParse(UeventMessageTests.Build($"{action}@{devPath}", [.. fields]), out var m, out var err), Is.True, err);
        return m!;
    }

    [Test]
    public void AddChangeMoveRemoveBindAndResync()
    {
        using var t = new FakeSys();
        t.Device("devices/virtual/mem/null", "MAJOR=1\nMINOR=3\nDEVNAME=null\nDEVMODE=0666\n", "class/mem");
        t.DevLink("char", "1:3", "devices/virtual/mem/null");
        using var reg = new DeviceRegistry(new DeviceRegistryOptions { SysRoot = t.Root });
        var log = new EventLog(reg);
        reg.LoadForTests();
        Assert.That(reg.Count, Is.EqualTo(1));

        // add of a device whose sysfs directory exists: the record comes from sysfs
        t.Device("devices/virtual/tty/ttyX", "MAJOR=4\nMINOR=70\nDEVNAME=ttyX\nEXTRA=sysfs\n", "class/tty");
        t.DevLink("char", "4:70", "devices/virtual/tty/ttyX");
        reg.ApplyForTests(Msg("add", "/devices/virtual/tty/ttyX", "tty", 10, "MAJOR=4", "MINOR=70", "DEVNAME=ttyX"));
        var x = reg.FindByDevName("ttyX")!;
        Assert.That(x.Properties["EXTRA"], Is.EqualTo("sysfs"));
        Assert.That(x.Subsystem, Is.EqualTo("tty"));

        // add of a device already gone from sysfs: the record comes from the uevent
        reg.ApplyForTests(Msg("add", "/devices/virtual/misc/gone", "misc", 11, "MAJOR=10", "MINOR=200", "DEVNAME=net/gone"));
        Assert.That(reg.FindByDevNum(DeviceKind.Char, 10, 200)?.DevName, Is.EqualTo("net/gone"));

        // duplicate add: no event; bind without node: nothing
        int before = log.Total;
        reg.ApplyForTests(Msg("add", "/devices/virtual/tty/ttyX", "tty", 12, "MAJOR=4", "MINOR=70", "DEVNAME=ttyX"));
        reg.ApplyForTests(Msg("bind", "/devices/virtual/tty/ttyX", "tty", 13));
        reg.ApplyForTests(Msg("remove", "/devices/virtual/unknown", "misc", 14));
        Assert.That(log.Total, Is.EqualTo(before));

        // change always raises Changed, with the previous record
        reg.ApplyForTests(Msg("change", "/devices/virtual/tty/ttyX", "tty", 15, "MAJOR=4", "MINOR=70", "DEVNAME=ttyX"));
        var last = log.Copy()[^1];
        Assert.That(last.Kind, Is.EqualTo("changed"));
        Assert.That(last.Args.Previous, Is.SameAs(x));

        // move: old path removed, new path added
        reg.ApplyForTests(Msg("move", "/devices/virtual/misc/gone2", "misc", 16, "DEVPATH_OLD=/devices/virtual/misc/gone",
            "MAJOR=10", "MINOR=200", "DEVNAME=net/gone"));
        Assert.That(reg.FindByDevPath("/devices/virtual/misc/gone"), Is.Null);
        Assert.That(reg.FindByDevPath("/devices/virtual/misc/gone2"), Is.Not.Null);
        Assert.That(reg.FindByDevName("net/gone")!.DevPath, Is.EqualTo("/devices/virtual/misc/gone2"));
        var two = log.Copy()[^2..];
        Assert.That(two.Select(e => e.Kind), Is.EqualTo(new[] { "removed", "added" }));

        // remove
        reg.ApplyForTests(Msg("remove", "/devices/virtual/misc/gone2", "misc", 17, "MAJOR=10", "MINOR=200", "DEVNAME=net/gone"));
        Assert.That(reg.FindByDevName("net/gone"), Is.Null);
        Assert.That(reg.FindByDevNum(DeviceKind.Char, 10, 200), Is.Null);

        // resync: sysfs gained one device, lost one, changed one
        Directory.Delete(Path.Combine(t.Root, "devices/virtual/tty/ttyX"), true);
        File.Delete(Path.Combine(t.Root, "dev/char/4:70"));
        t.Device("devices/virtual/mem/zero", "MAJOR=1\nMINOR=5\nDEVNAME=zero\n", "class/mem");
        t.DevLink("char", "1:5", "devices/virtual/mem/zero");
        File.WriteAllText(Path.Combine(t.Root, "devices/virtual/mem/null/uevent"), "MAJOR=1\nMINOR=3\nDEVNAME=null\nDEVMODE=0600\n");
        before = log.Total;
        reg.ResyncForTests();
        var events = log.Copy()[before..];
        Assert.That(events.Select(e => (e.Kind, e.Args.Device.DevName, e.Args.FromResync)),
            Is.EqualTo(new[] { ("removed", "ttyX", true), ("added", "zero", true), ("changed", "null", true) }));
        Assert.That(reg.Resyncs, Is.EqualTo(1));
        Assert.That(log.ResyncCount, Is.EqualTo(1));
        Assert.That(reg.Snapshot().Select(d => d.DevName), Is.EqualTo(new[] { "null", "zero" }));
        Assert.That(reg.FindByDevName("null")!.DevMode, Is.EqualTo(Convert.ToUInt32("600", 8)));
    }

    [Test]
    public void DuplicateNodeNamesKeepIndexConsistent()
    {
        using var t = new FakeSys();
        using var reg = new DeviceRegistry(new DeviceRegistryOptions { SysRoot = t.Root });
        reg.LoadForTests();
        reg.ApplyForTests(Msg("add", "/devices/a", "misc", 1, "MAJOR=10", "MINOR=1", "DEVNAME=same"));
        reg.ApplyForTests(Msg("add", "/devices/b", "misc", 2, "MAJOR=10", "MINOR=1", "DEVNAME=same"));
        reg.ApplyForTests(Msg("remove", "/devices/b", "misc", 3, "MAJOR=10", "MINOR=1", "DEVNAME=same"));
        Assert.That(reg.FindByDevName("same")?.DevPath, Is.EqualTo("/devices/a"));
        Assert.That(reg.FindByDevNum(DeviceKind.Char, 10, 1)?.DevPath, Is.EqualTo("/devices/a"));
    }
}
