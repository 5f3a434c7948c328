using DevFs.Devices;

namespace DevFs.Policy.Tests;

public class MatchTests
{
    private static DevicePolicy P(string yaml) => DevicePolicy.Parse("version: 1\n" + yaml, "test.yaml");

    [TestCase("7", 7u, true)]
    [TestCase("7", 8u, false)]
    [TestCase("\"0-255\"", 0u, true)]
    [TestCase("\"0-255\"", 255u, true)]
    [TestCase("\"0-255\"", 256u, false)]
    [TestCase("0-255", 128u, true)]          // plain scalar range
    [TestCase("\"7-7\"", 7u, true)]
    [TestCase("[1, 4, 10-12]", 11u, true)]
    [TestCase("[1, 4, 10-12]", 4u, true)]
    [TestCase("[1, 4, 10-12]", 5u, false)]
    [TestCase("[1, 4, 10-12]", 13u, false)]
    [TestCase("4095", 4095u, true)]
    public void MajorRanges(string major, uint value, bool expected)
    {
        var policy = P($"devices:\n  - match: {{ major: {major} }}\n");
        Assert.That(policy.Match(Dev.Char("x", value, 0, "misc")) is not null, Is.EqualTo(expected));
    }

    [TestCase("\"64-255\"", 64u, true)]
    [TestCase("\"64-255\"", 63u, false)]
    [TestCase("1048575", 1048575u, true)]
    [TestCase("[0, 1048000-1048575]", 1048100u, true)]
    [TestCase("[0, 1048000-1048575]", 1u, false)]
    public void MinorRanges(string minor, uint value, bool expected)
    {
        var policy = P($"devices:\n  - match: {{ kind: char, minor: {minor} }}\n");
        Assert.That(policy.Match(Dev.Char("x", 4, value, "tty")) is not null, Is.EqualTo(expected));
    }

    [Test]
    public void RuleExposesItsCriteria()
    {
        var rule = P("""
            devices:
              - match: { devname: "tty[0-9]*", subsystem: [tty, vc], kind: char, major: 4, minor: "1-63", devtype: x, attributes: { a: b } }
            """).Devices.Single();
        Assert.That(rule.DevName!.Pattern, Is.EqualTo("tty[0-9]*"));
        Assert.That(rule.Subsystems, Is.EqualTo(new[] { "tty", "vc" }));
        Assert.That(rule.Kind, Is.EqualTo(DeviceKind.Char));
        Assert.That(rule.Majors, Is.EqualTo(new[] { new NumberRange(4, 4) }));
        Assert.That(rule.Minors, Is.EqualTo(new[] { new NumberRange(1, 63) }));
        Assert.That(rule.DevType, Is.EqualTo("x"));
        Assert.That(rule.Attributes.Single().Key, Is.EqualTo("a"));
        Assert.That((rule.Source, rule.Line, rule.Column, rule.Container), Is.EqualTo(("test.yaml", 3, 5, (string?)null)));
        Assert.That(rule.ToString(), Is.EqualTo("test.yaml:3:5"));
    }

    [Test]
    public void AllCriteriaMustHold()
    {
        var policy = P("""
            devices:
              - match: { subsystem: block, devname: "loop[0-9]*", major: 7, kind: block, devtype: disk }
            """);
        Assert.That(policy.Match(Dev.Loop0), Is.Not.Null);
        Assert.That(policy.Match(Dev.Block("loop0", 7, 0, "partition")), Is.Null, "devtype");
        Assert.That(policy.Match(Dev.Block("loop0", 8, 0)), Is.Null, "major");
        Assert.That(policy.Match(Dev.Block("sda", 7, 0)), Is.Null, "devname");
        Assert.That(policy.Match(Dev.Char("loop0", 7, 0, "block", "disk")), Is.Null, "kind");
        Assert.That(policy.Match(Dev.Char("loop0", 7, 0, "misc", "disk") with { Kind = DeviceKind.Block }), Is.Null, "subsystem");
    }

    [Test]
    public void SubsystemListMatchesAnyOfThem()
    {
        var policy = P("devices:\n  - match: { subsystem: [mem, misc] }\n");
        Assert.That(policy.Match(Dev.Null), Is.Not.Null);
        Assert.That(policy.Match(Dev.Fuse), Is.Not.Null);
        Assert.That(policy.Match(Dev.Tty), Is.Null);
    }

    [Test]
    public void AttributesMatchOnDeviceOrParentValue()
    {
        var policy = P("""
            devices:
              - match: { subsystem: usb, devtype: usb_device, attributes: { idVendor: "046d", idProduct: "c5*" } }
                access: proxy
            """);
        HostDevice Usb(IReadOnlyDictionary<string, string> attrs) =>
            Dev.Char("bus/usb/001/002", 189, 1, "usb", "usb_device", attrs);

        var logitech = Usb(new Dictionary<string, string> { ["idVendor"] = "046d", ["idProduct"] = "c52b" });
        Assert.That(policy.Match(logitech)?.Access, Is.EqualTo(AccessMode.Proxy));
        Assert.That(policy.Match(logitech)?.Path, Is.EqualTo("bus/usb/001/002"));
        Assert.That(policy.Match(Usb(new Dictionary<string, string> { ["idVendor"] = "046d", ["idProduct"] = "0825" })), Is.Null);
        Assert.That(policy.Match(Usb(new Dictionary<string, string> { ["idVendor"] = "8087", ["idProduct"] = "c52b" })), Is.Null);
        Assert.That(policy.Match(Usb(new Dictionary<string, string> { ["idVendor"] = "046d" })), Is.Null, "missing attribute");
        Assert.That(policy.Match(Usb(new Dictionary<string, string>())), Is.Null);
    }

    [Test]
    public void FirstMatchingRuleWins()
    {
        var policy = P("""
            devices:
              - match: { devname: "tty" }
                mode: "0666"
              - match: { subsystem: tty }
                mode: "0620"
            """);
        Assert.That(policy.Match(Dev.Tty)!.Mode, Is.EqualTo(0x1B6u));
        Assert.That(policy.Match(Dev.Tty)!.Rule, Is.SameAs(policy.Devices[0]));
        Assert.That(policy.Match(Dev.Tty0)!.Mode, Is.EqualTo(0x190u));
        Assert.That(policy.Match(Dev.Tty0)!.Rule.Line, Is.EqualTo(5));
    }

    [Test]
    public void ContainerRulesComeFirstAndOnlyForThatContainer()
    {
        var policy = P("""
            devices:
              - match: { subsystem: misc, devname: fuse }
                mode: "0600"
              - match: { subsystem: mem, devname: "null" }
                mode: "0666"
                global: true
            containers:
              web:
                devices:
                  - match: { devname: net/tun }
                    access: proxy
                  - match: { devname: fuse }
                    mode: "0666"
                    uid: 1000
              db:
              build:
                devices: []
            """);
        Assert.That(policy.Containers, Is.EqualTo(new[] { "web", "db", "build" }));
        Assert.That(policy.DevicesFor("web"), Has.Count.EqualTo(2));
        Assert.That(policy.DevicesFor("web")[0].Container, Is.EqualTo("web"));
        Assert.That(policy.DevicesFor("db"), Is.Empty);
        Assert.That(policy.DevicesFor("nope"), Is.Empty);

        Assert.That(policy.Match(Dev.Tun, "web")?.Access, Is.EqualTo(AccessMode.Proxy));
        Assert.That(policy.Match(Dev.Tun, "db"), Is.Null);
        Assert.That(policy.Match(Dev.Tun), Is.Null);
        Assert.That(policy.Match(Dev.Tun, "unknown"), Is.Null);

        var webFuse = policy.Match(Dev.Fuse, "web")!;
        Assert.That((webFuse.Mode, webFuse.Uid), Is.EqualTo((0x1B6u, 1000u)));
        Assert.That(webFuse.Rule.ToString(), Does.EndWith("(container web)"));
        Assert.That(policy.Match(Dev.Fuse, "db")!.Mode, Is.EqualTo(0x180u));
        Assert.That(policy.Match(Dev.Fuse)!.Mode, Is.EqualTo(0x180u));
        Assert.That(policy.Match(Dev.Null, "web")!.Global, Is.True, "top-level rules still apply to a container");
    }

    [Test]
    public void DefaultsApplyUnlessTheRuleSaysOtherwise()
    {
        var policy = P("""
            defaults: { access: proxy, mode: "0640", uid: 10, gid: 20 }
            devices:
              - match: { devname: "null" }
              - match: { devname: zero }
                access: node
                mode: "0666"
                uid: 0
                gid: 0
                global: true
            containers:
              c:
                devices:
                  - match: { devname: full }
            """);
        Assert.That(policy.Match(Dev.Null), Is.EqualTo(new DeviceEntrySpec("null", AccessMode.Proxy, 0x1A0, 10, 20, false, policy.Devices[0])));
        Assert.That(policy.Match(Dev.Zero), Is.EqualTo(new DeviceEntrySpec("zero", AccessMode.Node, 0x1B6, 0, 0, true, policy.Devices[1])));
        Assert.That(policy.Match(Dev.Full, "c")!.Access, Is.EqualTo(AccessMode.Proxy));
        Assert.That(policy.Match(Dev.Full, "c")!.Mode, Is.EqualTo(0x1A0u));
    }

    [Test]
    public void DefaultsMayComeAfterTheRules()
    {
        var policy = P("""
            devices:
              - match: { devname: "null" }
            defaults: { access: node }
            """);
        Assert.That(policy.Match(Dev.Null)!.Access, Is.EqualTo(AccessMode.Node));
    }

    [Test]
    public void WithoutAnyModeTheKernelsDevModeIsUsedElse0600()
    {
        var policy = P("devices:\n  - match: { devname: \"**\" }\n");
        Assert.That(policy.Devices[0].Mode, Is.Null);
        Assert.That(policy.Match(Dev.Null)!.Mode, Is.EqualTo(0x1B6u), "DEVMODE 0666");
        Assert.That(policy.Match(Dev.LoopControl)!.Mode, Is.EqualTo(0x1B0u), "DEVMODE 0660");
        Assert.That(policy.Match(Dev.Vda)!.Mode, Is.EqualTo(0x180u), "no DEVMODE: 0600");
        Assert.That(policy.Match(Dev.Tun)!.Access, Is.EqualTo(AccessMode.Auto));
        Assert.That(policy.Match(Dev.Event3)!.Path, Is.EqualTo("input/event3"), "** matches across '/'");
    }

    [TestCase("0600")]
    [TestCase("\"0600\"")]
    [TestCase("'0600'")]
    [TestCase("600")]
    [TestCase("0o600")]
    public void ModeIsAlwaysOctalQuotedOrNot(string mode)
    {
        var policy = P($"""
            defaults:
              mode: {mode}
            directories:
              - path: d
                mode: {mode}
            devices:
              - match: {"{"} devname: "null" {"}"}
                mode: {mode}
              - match: {"{"} devname: zero {"}"}
            """);
        Assert.That(policy.Match(Dev.Null)!.Mode, Is.EqualTo(0x180u));
        Assert.That(policy.Match(Dev.Zero)!.Mode, Is.EqualTo(0x180u));
        Assert.That(policy.Directories[0].Mode, Is.EqualTo(0x180u));
    }

    [Test]
    public void SpecialBitsAndDirectoryDefaults()
    {
        var policy = P("""
            directories:
              - { path: shm, mode: 1777, uid: 5, gid: 6 }
              - { path: net }
            devices:
              - match: { devname: "null" }
                mode: "2755"
            """);
        Assert.That(policy.Directories, Is.EqualTo(new[] { new DirectoryRule("shm", 0x3FF, 5, 6), new DirectoryRule("net", 0x1ED, 0, 0) }));
        Assert.That(policy.Match(Dev.Null)!.Mode, Is.EqualTo(0x5EDu));
    }

    [Test]
    public void PathRenamesAndTemplates()
    {
        var policy = P("""
            devices:
              - match: { devname: "null" }
                path: my/null
              - match: { subsystem: block }
                path: "disks/{name}-{major}:{minor}"
              - match: { subsystem: input }
                path: "in/{devname}"
            """);
        Assert.That(policy.Match(Dev.Null)!.Path, Is.EqualTo("my/null"));
        Assert.That(policy.Match(Dev.Loop7)!.Path, Is.EqualTo("disks/loop7-7:7"));
        Assert.That(policy.Match(Dev.Event3)!.Path, Is.EqualTo("in/input/event3"));
        Assert.That(policy.Match(Dev.Char("event3", 13, 67, "input"))!.Path, Is.EqualTo("in/event3"));
    }

    [Test]
    public void EmptySectionsAreAllowed()
    {
        var policy = P("defaults:\ndirectories:\nsymlinks: []\ndevices:\ncontainers: {}\n");
        Assert.That(policy.Devices, Is.Empty);
        Assert.That(policy.Directories, Is.Empty);
        Assert.That(policy.Symlinks, Is.Empty);
        Assert.That(policy.Containers, Is.Empty);
        Assert.That(policy.Match(Dev.Null), Is.Null);
    }

    [Test]
    public void AnchorsAndAliasesWork()
    {
        var policy = P("""
            devices:
              - match: &mem { subsystem: mem, devname: "null" }
                mode: "0666"
            containers:
              c:
                devices:
                  - match: *mem
                    access: proxy
            """);
        Assert.That(policy.Match(Dev.Null, "c")!.Access, Is.EqualTo(AccessMode.Proxy));
    }

    [Test]
    public void LoadReadsAFileAndNamesItInErrors()
    {
        var dir = Path.Combine(Path.GetTempPath(), "devfs-policy-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var good = Path.Combine(dir, "good.yaml");
            File.WriteAllText(good, "version: 1\ndevices:\n  - match: { devname: \"null\" }\n");
            Assert.That(DevicePolicy.Load(good).Source, Is.EqualTo(good));
            Assert.That(DevicePolicy.Load(good).Devices[0].Source, Is.EqualTo(good));

            var bad = Path.Combine(dir, "bad.yaml");
            File.WriteAllText(bad, "version: 2\n");
            var e = Assert.Throws<PolicyException>(() => DevicePolicy.Load(bad))!;
            Assert.That(e.Errors.Single().ToString(), Does.StartWith($"{bad}:1:10: version must be 1"));

            var missing = Path.Combine(dir, "missing.yaml");
            e = Assert.Throws<PolicyException>(() => DevicePolicy.Load(missing))!;
            Assert.That(e.Errors.Single().ToString(), Does.StartWith($"{missing}:1:1: cannot read the policy file"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
