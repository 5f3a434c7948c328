using DevFs.Devices;

namespace DevFs.Policy.Tests;

/// <summary>The ioctls: sections of device rules and defaults: parsing, errors, and how a command is decided.</summary>
public class IoctlPolicyTests
{
    private const uint TCGETS = 0x5401, RNDGETENTCNT = 0x80045200, RNDCLEARPOOL = 0x5206, TUNSETIFF = 0x400454CA,
        LOOP_CONFIGURE = 0x4C0A, LOOP_SET_FD = 0x4C00, BLKGETSIZE64 = 0x80081272;

    private static IoctlPolicy For(string yaml, HostDevice? device = null)
    {
        var policy = DevicePolicy.Parse("version: 1\n" + yaml, "t.yaml");
        return policy.FindRule(device ?? Dev.Random)!.Ioctls;
    }

    private const string RandomRule = "  - match: { subsystem: mem, devname: random }\n";

    [Test]
    public void BuiltInDefaultAllowsReadOnlyQueriesOnly()
    {
        var ioctls = For("devices:\n" + RandomRule);
        Assert.That(ioctls.Decide(RNDGETENTCNT).Allowed, Is.True, "an _IOR query");
        Assert.That(ioctls.Decide(BLKGETSIZE64).Allowed, Is.True);
        Assert.That(ioctls.Decide(TCGETS).Allowed, Is.True, "a size-less query from the table");
        Assert.That(ioctls.Decide(0x40045201).Allowed, Is.False, "RNDADDTOENTCNT writes");
        Assert.That(ioctls.Decide(RNDCLEARPOOL).Allowed, Is.False);
        Assert.That(ioctls.Decide(LOOP_SET_FD).Allowed, Is.False);
        Assert.That(ioctls.Decide(TUNSETIFF).Allowed, Is.False);
        Assert.That(ioctls.Decide(0xC0045401).Allowed, Is.False, "read-write is not a query");
        Assert.That(ioctls.Decide(RNDCLEARPOOL).Reason, Does.Contain("built-in default"));
    }

    [Test]
    public void NamesNumbersAndWildcards()
    {
        var ioctls = For("devices:\n" + RandomRule + "    ioctls: { allow: [TUNSETIFF, 0x4c0a, 19456], deny: [RNDGETENTCNT] }\n");
        Assert.That(ioctls.Rule.Allow, Is.EquivalentTo(new[] { TUNSETIFF, LOOP_CONFIGURE, LOOP_SET_FD }));
        Assert.That(ioctls.Decide(TUNSETIFF).Allowed, Is.True);
        Assert.That(ioctls.Decide(LOOP_SET_FD).Reason, Does.Contain("allowed by the rule's ioctls (t.yaml:3:5).allow"));
        Assert.That(ioctls.Decide(RNDGETENTCNT).Allowed, Is.False, "deny overrides the built-in query default");
        Assert.That(ioctls.Decide(RNDGETENTCNT).Reason, Does.Contain("deny"));

        var all = For("devices:\n" + RandomRule + "    ioctls: { allow: \"*\", deny: TCGETS }\n");
        Assert.That(all.Decide(RNDCLEARPOOL).Allowed, Is.True);
        Assert.That(all.Decide(TCGETS).Allowed, Is.False, "a named deny wins over allow: \"*\"");
    }

    [Test]
    public void RuleBeforeDefaultsBeforeBuiltIn()
    {
        var yaml = "defaults:\n  ioctls: { deny: [\"*\"], allow: [RNDCLEARPOOL] }\ndevices:\n" + RandomRule +
                   "    ioctls: { allow: [TUNSETIFF], deny: [RNDCLEARPOOL] }\n" +
                   "  - match: { subsystem: mem, devname: urandom }\n";
        var random = For(yaml);
        Assert.That(random.Decide(TUNSETIFF).Allowed, Is.True, "the rule's allow");
        Assert.That(random.Decide(RNDCLEARPOOL).Allowed, Is.False, "the rule's deny beats the defaults' allow");
        Assert.That(random.Decide(RNDGETENTCNT).Allowed, Is.False, "defaults deny \"*\" turns the built-in default off");
        var urandom = For(yaml, Dev.Urandom);
        Assert.That(urandom.Decide(RNDCLEARPOOL).Allowed, Is.True, "defaults apply to rules without ioctls");
        Assert.That(urandom.Decide(RNDCLEARPOOL).Reason, Does.Contain("defaults.ioctls.allow"));
        Assert.That(urandom.Decide(TUNSETIFF).Allowed, Is.False);
    }

    [Test]
    public void ContainerRulesCarryTheirOwnIoctls()
    {
        var policy = DevicePolicy.Parse("version: 1\ncontainers:\n  vpn:\n    devices:\n" +
            "      - match: { subsystem: mem, devname: random }\n        ioctls: { allow: [RNDCLEARPOOL] }\n", "t.yaml");
        var decision = policy.FindRule(Dev.Random, "vpn")!.Ioctls.Decide(RNDCLEARPOOL);
        Assert.That(decision.Allowed, Is.True);
        Assert.That(decision.Reason, Does.Contain("container vpn"));
    }

    [TestCase("    ioctls: { allow: [TUNSETIF] }\n", 4, 23, "'TUNSETIF' is not an ioctl command", "did you mean 'TUNSETIFF'")]
    [TestCase("    ioctls: { allow: [0xZZ] }\n", 4, 23, "'0xZZ' is not an ioctl command", "docs/ioctl.md")]
    [TestCase("    ioctls: { allow: [0x100000000] }\n", 4, 23, "is not an ioctl command", "0x5401")]
    [TestCase("    ioctls: { allow: [TCGETS], deny: [0x5401] }\n", 4, 13, "both allowed and denied", "0x5401 (TCGETS)")]
    [TestCase("    ioctls: { permit: [TCGETS] }\n", 4, 15, "unknown key 'permit' in ioctls", "allow, deny")]
    [TestCase("    ioctls: [TCGETS]\n", 4, 13, "ioctls must be a mapping with the keys allow and deny", "found a list")]
    [TestCase("    ioctls: { allow: [] }\n", 4, 22, "is an empty list", "ioctls.allow")]
    public void Errors(string ioctlsLine, int line, int column, string phrase, string phrase2)
    {
        var e = Assert.Throws<PolicyException>(() => DevicePolicy.Parse("version: 1\ndevices:\n" + RandomRule + ioctlsLine, "t.yaml"))!;
        Assert.That(e.Errors, Has.Count.EqualTo(1), e.Message);
        Assert.That(e.Errors[0].ToString(), Does.StartWith($"t.yaml:{line}:{column}: "), e.Message);
        Assert.That(e.Errors[0].Message, Does.Contain(phrase).And.Contain(phrase2));
    }

    [Test]
    public void ErrorInDefaults()
    {
        var e = Assert.Throws<PolicyException>(() => DevicePolicy.Parse("version: 1\ndefaults:\n  ioctls: { deny: [NOPE] }\n", "t.yaml"))!;
        Assert.That(e.Errors[0].ToString(), Does.StartWith("t.yaml:3:20: defaults.ioctls.deny: 'NOPE' is not an ioctl command"));
    }

    [Test]
    public void CommandNames()
    {
        Assert.That(IoctlCommand.Describe(RNDGETENTCNT), Is.EqualTo("0x80045200 (RNDGETENTCNT)"));
        Assert.That(IoctlCommand.Describe(0x1234), Is.EqualTo("0x1234"));
        Assert.That(IoctlCommand.TryParse("LOOP_CONFIGURE", out var cmd) && cmd == LOOP_CONFIGURE);
        Assert.That(IoctlCommand.Size(TUNSETIFF), Is.EqualTo(4u));
        Assert.That(IoctlCommand.Direction(TUNSETIFF), Is.EqualTo(IoctlCommand.DirWrite));
        Assert.That(IoctlCommand.IsSizedQuery(RNDGETENTCNT), Is.True);
    }
}
