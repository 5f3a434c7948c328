namespace DevFs.Devices.Tests;

[TestFixture]
public class SysfsScannerTests
{
    [Test]
    public void ScanFindsNullAndZero()
    {
        var all = SysfsDeviceScanner.Scan();
        var nul = all.SingleOrDefault(d => d.DevName == "null");
        Assert.That(nul, Is.Not.Null, "no 'null' in /sys/dev/char");
        Assert.That(nul!.Kind, Is.EqualTo(DeviceKind.Char));
        Assert.That((nul.Major, nul.Minor), Is.EqualTo((1u, 3u)));
        Assert.That(nul.Subsystem, Is.EqualTo("mem"));
        Assert.That(nul.DevPath, Is.EqualTo("/devices/virtual/mem/null"));
        Assert.That(nul.DevMode, Is.EqualTo(Convert.ToUInt32("666", 8)));
        Assert.That(nul.Properties["DEVNAME"], Is.EqualTo("null"));
        Assert.That(nul.Rdev, Is.EqualTo(HostDevice.MakeDev(1, 3)));

        var zero = all.SingleOrDefault(d => d.DevName == "zero");
        Assert.That(zero, Is.Not.Null);
        Assert.That((zero!.Kind, zero.Major, zero.Minor, zero.Subsystem), Is.EqualTo((DeviceKind.Char, 1u, 5u, "mem")));

        Assert.That(all.Select(d => d.DevPath), Is.Unique);
        Assert.That(all.All(d => d.DevPath.StartsWith("/devices/") && d.DevName.Length > 0), Is.True);
    }

    [Test]
    public void ScanFindsBlockDevicesWhenPresent()
    {
        var blocks = SysfsDeviceScanner.Scan().Where(d => d.Kind == DeviceKind.Block).ToList();
        int links = Directory.Exists("/sys/dev/block") ? Directory.GetFileSystemEntries("/sys/dev/block").Length : 0;
        if (links == 0)
        {
            Assert.That(blocks, Is.Empty);
            return;
        }
        Assert.That(blocks, Is.Not.Empty);
        Assert.That(blocks.All(b => b.Subsystem == "block"), Is.True);
        var b0 = blocks[0];
        Assert.That(File.Exists($"/sys/dev/block/{b0.Major}:{b0.Minor}/uevent"), Is.True);
        Assert.That(b0.DevType, Is.AnyOf("disk", "partition"));
    }

    [Test]
    public void ReadOneDevice()
    {
        var d = SysfsDeviceScanner.Read("/devices/virtual/mem/zero");
        Assert.That(d, Is.Not.Null);
        Assert.That((d!.DevName, d.Major, d.Minor, d.Kind), Is.EqualTo(("zero", 1u, 5u, DeviceKind.Char)));
        Assert.That(SysfsDeviceScanner.Read("/devices/virtual/mem/does-not-exist"), Is.Null);
        Assert.That(SysfsDeviceScanner.Read("/devices/../../etc"), Is.Null);
        Assert.That(SysfsDeviceScanner.Read("/devices/virtual"), Is.Null, "a directory without uevent DEVNAME is no node");
    }

    [Test]
    public void ScanAgainstFakeTree()
    {
        using var t = new FakeSys();
        t.Device("devices/virtual/mem/null", "MAJOR=1\nMINOR=3\nDEVNAME=null\nDEVMODE=0666\n", "class/mem");
        t.Device("devices/pci0000:00/0000:00:01.0/block/vda", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n", "class/block");
        t.Device("devices/virtual/nonode", "FOO=1\n", "class/misc");
        t.DevLink("char", "1:3", "devices/virtual/mem/null");
        t.DevLink("block", "254:0", "devices/pci0000:00/0000:00:01.0/block/vda");
        t.DevLink("char", "10:99", "devices/virtual/nonode");
        Directory.CreateDirectory(Path.Combine(t.Root, "elsewhere"));
        t.DevLink("char", "10:98", "elsewhere"); // outside devices/: ignored

        var all = SysfsDeviceScanner.Scan(t.Root);
        Assert.That(all.Select(d => d.DevName), Is.EqualTo(new[] { "null", "vda" }));
        Assert.That(all[1].Kind, Is.EqualTo(DeviceKind.Block));
        Assert.That(all[1].DevPath, Is.EqualTo("/devices/pci0000:00/0000:00:01.0/block/vda"));
        Assert.That(all[1].Subsystem, Is.EqualTo("block"));
        Assert.That(all[1].DevType, Is.EqualTo("disk"));
    }
}

[TestFixture]
public class SysfsAttributesTests
{
    [Test]
    public void WalksUpToNearestParentWithTheAttribute()
    {
        using var t = new FakeSys();
        t.Device("devices/a/b/c", "MAJOR=188\nMINOR=0\nDEVNAME=ttyUSB0\n", "class/tty");
        t.Attr("devices/a", "idVendor", "0403\n");
        t.Attr("devices/a/b", "idVendor", "1234\n");
        t.Attr("devices/a", "serial", "  A1B2  \n");
        t.Attr("devices/a/b/c", "dev", "188:0\n");
        t.Attr("", "outside", "secret"); // at the sysfs root: never reached
        t.Attr("devices", "toplevel", "x"); // /sys/devices itself is not a device
        Directory.CreateDirectory(Path.Combine(t.Root, "devices/a/b/c/sub"));
        File.CreateSymbolicLink(Path.Combine(t.Root, "devices/a/b/c/driver"), Path.Combine(t.Root, "devices/a"));
        File.WriteAllText(Path.Combine(t.Root, "target"), "linked");
        File.CreateSymbolicLink(Path.Combine(t.Root, "devices/a/b/link"), Path.Combine(t.Root, "target"));

        var attrs = new SysfsAttributes("/devices/a/b/c", t.Root);
        Assert.That(attrs.Find("dev"), Is.EqualTo("188:0"));
        Assert.That(attrs.Find("idVendor"), Is.EqualTo("1234"), "nearest parent wins");
        Assert.That(attrs.FindWithSource("idVendor")!.Value.DevPath, Is.EqualTo("/devices/a/b"));
        Assert.That(attrs.Find("serial"), Is.EqualTo("A1B2"), "values are trimmed");
        Assert.That(attrs.Find("nothing"), Is.Null);
        Assert.That(attrs.Find("outside"), Is.Null);
        Assert.That(attrs.Find("toplevel"), Is.Null);
        Assert.That(attrs.Find("sub"), Is.Null, "directories are not attributes");
        Assert.That(attrs.Find("driver"), Is.Null, "links are not followed");
        Assert.That(attrs.Find("link"), Is.Null, "links are not followed");
        Assert.That(attrs.Find("../../../outside"), Is.Null);
        Assert.That(attrs.Find("b/idVendor"), Is.Null);
        Assert.That(attrs.Find(""), Is.Null);
        Assert.That(new SysfsAttributes("/devices/../outside", t.Root).Find("outside"), Is.Null);

        // Read on demand: a changed value is seen at once.
        t.Attr("devices/a/b", "idVendor", "5678\n");
        Assert.That(attrs.Find("idVendor"), Is.EqualTo("5678"));
        File.Delete(Path.Combine(t.Root, "devices/a/b/idVendor"));
        Assert.That(attrs.Find("idVendor"), Is.EqualTo("0403"));

        var fromScan = SysfsDeviceScanner.Read("/devices/a/b/c", t.Root);
        Assert.That(fromScan!.Attributes.Find("serial"), Is.EqualTo("A1B2"));
    }

    [Test]
    public void RealSysfs()
    {
        var nul = SysfsDeviceScanner.Read("/devices/virtual/mem/null")!;
        Assert.That(nul.Attributes.Find("dev"), Is.EqualTo("1:3"));
        Assert.That(nul.Attributes.Find("subsystem"), Is.Null, "subsystem is a link, not an attribute");
        Assert.That(nul.Attributes.Find("no-such-attribute"), Is.Null);

        var block = SysfsDeviceScanner.Scan().FirstOrDefault(d => d.Kind == DeviceKind.Block);
        if (block is not null)
        {
            Assert.That(block.Attributes.Find("dev"), Is.EqualTo($"{block.Major}:{block.Minor}"));
            Assert.That(long.TryParse(block.Attributes.Find("size"), out _), Is.True);
        }
        // A partition or a disk on a bus finds attributes of its parents (e.g. vendor/modalias of the controller).
        var onBus = SysfsDeviceScanner.Scan().FirstOrDefault(d => !d.DevPath.StartsWith("/devices/virtual/")
            && Directory.Exists(Path.GetDirectoryName("/sys" + d.DevPath)));
        if (onBus is not null)
        {
            var uevent = ((SysfsAttributes)onBus.Attributes).FindWithSource("uevent");
            Assert.That(uevent!.Value.DevPath, Is.EqualTo(onBus.DevPath));
        }
    }
}

/// <summary>A fake sysfs tree in a temporary directory.</summary>
internal sealed class FakeSys : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("devfs-sys-").FullName;

    public void Device(string rel, string uevent, string subsystemRel)
    {
        string dir = Path.Combine(Root, rel);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "uevent"), uevent);
        string sub = Path.Combine(Root, subsystemRel);
        Directory.CreateDirectory(sub);
        File.CreateSymbolicLink(Path.Combine(dir, "subsystem"), Path.GetRelativePath(dir, sub));
    }

    public void DevLink(string kind, string majMin, string rel)
    {
        string dir = Path.Combine(Root, "dev", kind);
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, majMin), "../../" + rel);
    }

    public void Attr(string rel, string name, string value)
    {
        string dir = Path.Combine(Root, rel);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, name), value);
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}
