using System.Text;

namespace DevFs.Devices.Tests;

[TestFixture]
public class UeventMessageTests
{
    internal static byte[] Build(string header, params string[] fields)
    {
        var sb = new StringBuilder(header).Append('\0');
        foreach (var f in fields)
            sb.Append(f).Append('\0');
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    internal static byte[] LoopEvent(string action, int index, ulong seq = 1234) => Build(
        $"{action}@/devices/virtual/block/loop{index}",
        $"ACTION={action}", $"DEVPATH=/devices/virtual/block/loop{index}", "SUBSYSTEM=block",
        "MAJOR=7", $"MINOR={index}", $"DEVNAME=loop{index}", "DEVTYPE=disk", "DISKSEQ=42", $"SEQNUM={seq}");

    [Test]
    public void ParsesAdd()
    {
        Assert.That(UeventMessage.TryParse(LoopEvent("add", 9), out var m, out var err), Is.True, err);
        Assert.That(err, Is.Null);
        Assert.That(m!.Action, Is.EqualTo(UeventAction.Add));
        Assert.That(m.DevPath, Is.EqualTo("/devices/virtual/block/loop9"));
        Assert.That(m.Subsystem, Is.EqualTo("block"));
        Assert.That(m.SeqNum, Is.EqualTo(1234UL));
        Assert.That(m.Major, Is.EqualTo(7u));
        Assert.That(m.Minor, Is.EqualTo(9u));
        Assert.That(m.DevName, Is.EqualTo("loop9"));
        Assert.That(m.DevType, Is.EqualTo("disk"));
        Assert.That(m.HasNode, Is.True);
        Assert.That(m.Kind, Is.EqualTo(DeviceKind.Block));
        Assert.That(m.Properties["DISKSEQ"], Is.EqualTo("42"));

        var d = m.ToHostDevice()!;
        Assert.That(d.DevName, Is.EqualTo("loop9"));
        Assert.That(d.Kind, Is.EqualTo(DeviceKind.Block));
        Assert.That((d.Major, d.Minor), Is.EqualTo((7u, 9u)));
        Assert.That(d.Subsystem, Is.EqualTo("block"));
        Assert.That(d.Properties.ContainsKey("SEQNUM"), Is.False, "transport keys are not device properties");
        Assert.That(d.Properties["DEVNAME"], Is.EqualTo("loop9"));
    }

    [Test]
    public void ParsesRemoveAndChangeAndCharDevice()
    {
        Assert.That(UeventMessage.TryParse(LoopEvent("remove", 3), out var r, out _), Is.True);
        Assert.That(r!.Action, Is.EqualTo(UeventAction.Remove));

        var change = Build("change@/devices/virtual/mem/null", "ACTION=change", "DEVPATH=/devices/virtual/mem/null",
            "SUBSYSTEM=mem", "SYNTH_UUID=0", "MAJOR=1", "MINOR=3", "DEVNAME=null", "DEVMODE=0666", "SEQNUM=99");
        Assert.That(UeventMessage.TryParse(change, out var c, out var err), Is.True, err);
        Assert.That(c!.Action, Is.EqualTo(UeventAction.Change));
        Assert.That(c.Kind, Is.EqualTo(DeviceKind.Char));
        Assert.That(c.DevMode, Is.EqualTo(0x1B6u)); // 0666
        var d = c.ToHostDevice()!;
        Assert.That(d.Kind, Is.EqualTo(DeviceKind.Char));
        Assert.That(d.DevMode, Is.EqualTo(Convert.ToUInt32("666", 8)));
        Assert.That(d.Properties.ContainsKey("SYNTH_UUID"), Is.False);
    }

    [Test]
    public void AllActionsAccepted()
    {
        foreach (var a in new[] { "add", "remove", "change", "move", "online", "offline", "bind", "unbind" })
        {
            var dg = Build($"{a}@/devices/x", $"ACTION={a}", "DEVPATH=/devices/x", "SUBSYSTEM=s", "SEQNUM=1");
            Assert.That(UeventMessage.TryParse(dg, out var m, out var err), Is.True, $"{a}: {err}");
            Assert.That(UeventMessage.ActionName(m!.Action), Is.EqualTo(a));
            Assert.That(m.HasNode, Is.False);
            Assert.That(m.ToHostDevice(), Is.Null);
        }
    }

    [Test]
    public void MoveCarriesOldPath()
    {
        var dg = Build("move@/devices/b", "ACTION=move", "DEVPATH=/devices/b", "SUBSYSTEM=s", "DEVPATH_OLD=/devices/a", "SEQNUM=5");
        Assert.That(UeventMessage.TryParse(dg, out var m, out var err), Is.True, err);
        Assert.That(m!.DevPathOld, Is.EqualTo("/devices/a"));
    }

    [Test]
    public void WithoutTrailingNulStillParses()
    {
        var dg = LoopEvent("add", 1);
        Assert.That(UeventMessage.TryParse(dg.AsSpan(0, dg.Length - 1), out _, out var err), Is.True, err);
    }

    private static IEnumerable<TestCaseData> Malformed()
    {
        const string H = "add@/devices/x";
        string[] ok = ["ACTION=add", "DEVPATH=/devices/x", "SUBSYSTEM=s", "SEQNUM=1"];
        TestCaseData C(string name, byte[] data, string expect) => new TestCaseData(data, expect).SetName("Malformed_" + name);

        yield return C("Empty", [], "empty");
        yield return C("OnlyNuls", [0, 0, 0], "empty");
        yield return C("Libudev", [.. "libudev\0"u8, .. Build(H, ok)], "libudev");
        yield return C("NoAt", Build("add/devices/x", ok), "'@'");
        yield return C("HeaderActionMismatch", Build("remove@/devices/x", ok), "does not match ACTION");
        yield return C("HeaderPathMismatch", Build("add@/devices/y", ok), "does not match DEVPATH");
        yield return C("MissingAction", Build(H, "DEVPATH=/devices/x", "SUBSYSTEM=s", "SEQNUM=1"), "missing ACTION");
        yield return C("MissingDevpath", Build(H, "ACTION=add", "SUBSYSTEM=s", "SEQNUM=1"), "missing DEVPATH");
        yield return C("UnknownAction", Build("explode@/devices/x", "ACTION=explode", "DEVPATH=/devices/x", "SUBSYSTEM=s", "SEQNUM=1"), "unknown action");
        yield return C("MissingSubsystem", Build(H, "ACTION=add", "DEVPATH=/devices/x", "SEQNUM=1"), "SUBSYSTEM");
        yield return C("MissingSeqnum", Build(H, "ACTION=add", "DEVPATH=/devices/x", "SUBSYSTEM=s"), "SEQNUM");
        yield return C("BadSeqnum", Build(H, "ACTION=add", "DEVPATH=/devices/x", "SUBSYSTEM=s", "SEQNUM=12a"), "SEQNUM");
        yield return C("NonNumericMajor", Build(H, [.. ok, "MAJOR=x7", "MINOR=1", "DEVNAME=a"]), "MAJOR");
        yield return C("NonNumericMinor", Build(H, [.. ok, "MAJOR=7", "MINOR=-1", "DEVNAME=a"]), "MINOR");
        yield return C("HugeMajor", Build(H, [.. ok, "MAJOR=99999999999999999999999", "MINOR=1", "DEVNAME=a"]), "MAJOR");
        yield return C("MajorWithoutMinor", Build(H, [.. ok, "MAJOR=7", "DEVNAME=a"]), "MAJOR without MINOR");
        yield return C("MinorWithoutMajor", Build(H, [.. ok, "MINOR=7", "DEVNAME=a"]), "MINOR without MAJOR");
        yield return C("DevnameDotDot", Build(H, [.. ok, "MAJOR=7", "MINOR=1", "DEVNAME=../etc/passwd"]), "DEVNAME");
        yield return C("DevnameInnerDotDot", Build(H, [.. ok, "MAJOR=7", "MINOR=1", "DEVNAME=bus/../../x"]), "DEVNAME");
        yield return C("DevnameAbsolute", Build(H, [.. ok, "MAJOR=7", "MINOR=1", "DEVNAME=/etc/shadow"]), "DEVNAME");
        yield return C("DevnameEmpty", Build(H, [.. ok, "MAJOR=7", "MINOR=1", "DEVNAME="]), "DEVNAME");
        yield return C("DevnameDoubleSlash", Build(H, [.. ok, "MAJOR=7", "MINOR=1", "DEVNAME=a//b"]), "DEVNAME");
        yield return C("DevpathDotDot", Build("add@/devices/../../etc", "ACTION=add", "DEVPATH=/devices/../../etc", "SUBSYSTEM=s", "SEQNUM=1"), "DEVPATH");
        yield return C("DevpathRelative", Build("add@devices/x", "ACTION=add", "DEVPATH=devices/x", "SUBSYSTEM=s", "SEQNUM=1"), "DEVPATH");
        yield return C("BadDevmode", Build(H, [.. ok, "DEVMODE=0689"]), "DEVMODE");
        yield return C("NonUtf8", [.. Build(H, ok), .. new byte[] { (byte)'K', (byte)'=', 0xC3, 0x28, 0 }], "UTF-8");
        yield return C("Oversize", [.. Build(H, ok), .. Encoding.ASCII.GetBytes("X=" + new string('a', 9000)), 0], "oversize");
        yield return C("FieldWithoutEquals", Build(H, [.. ok, "JUSTAKEY"]), "KEY=VALUE");
        yield return C("EmptyMiddleField", Encoding.UTF8.GetBytes(H + "\0ACTION=add\0\0DEVPATH=/devices/x\0SUBSYSTEM=s\0SEQNUM=1\0"), "empty field");
        yield return C("DuplicateKey", Build(H, [.. ok, "ACTION=add"]), "duplicate");
    }

    [TestCaseSource(nameof(Malformed))]
    public void RejectsMalformed(byte[] data, string expect)
    {
        bool ok = true;
        UeventMessage? m = null;
        string? err = null;
        Assert.DoesNotThrow(() => ok = UeventMessage.TryParse(data, out m, out err));
        Assert.That(ok, Is.False);
        Assert.That(m, Is.Null);
        Assert.That(err, Does.Contain(expect).IgnoreCase);
    }

    [Test]
    public void FuzzNeverThrows()
    {
        var rng = new Random(12345);
        var seeds = new[] { LoopEvent("add", 7), LoopEvent("remove", 200), UeventMessageTests.Build("change@/devices/virtual/mem/null",
            "ACTION=change", "DEVPATH=/devices/virtual/mem/null", "SUBSYSTEM=mem", "MAJOR=1", "MINOR=3", "DEVNAME=null", "DEVMODE=0666", "SEQNUM=1") };
        int accepted = 0, rejected = 0;
        for (int i = 0; i < 20000; i++)
        {
            byte[] data;
            var seed = seeds[rng.Next(seeds.Length)];
            switch (rng.Next(4))
            {
                case 0: // random bytes
                    data = new byte[rng.Next(0, 300)];
                    rng.NextBytes(data);
                    break;
                case 1: // truncation
                    data = seed[..rng.Next(0, seed.Length + 1)];
                    break;
                case 2: // bit flips
                    data = (byte[])seed.Clone();
                    for (int k = rng.Next(1, 5); k > 0; k--)
                        data[rng.Next(data.Length)] ^= (byte)(1 << rng.Next(8));
                    break;
                default: // random printable/NUL/'='/'@'/'/' soup
                    data = new byte[rng.Next(0, 200)];
                    var alphabet = "a@=/\0.0123456789ACTIONDEVPATHMAJOR"u8.ToArray();
                    for (int k = 0; k < data.Length; k++)
                        data[k] = alphabet[rng.Next(alphabet.Length)];
                    break;
            }
            bool ok = false;
            UeventMessage? m = null;
            string? err = null;
            Assert.DoesNotThrow(() => ok = UeventMessage.TryParse(data, out m, out err), $"input #{i}: {Convert.ToHexString(data)}");
            if (ok)
            {
                accepted++;
                Assert.That(m, Is.Not.Null);
                Assert.That(err, Is.Null);
                Assert.DoesNotThrow(() => m!.ToHostDevice());
                if (m!.DevName is not null)
                    Assert.That(m.DevName.Split('/'), Has.None.EqualTo("..").And.None.Empty, m.DevName);
            }
            else
            {
                rejected++;
                Assert.That(err, Is.Not.Null.And.Not.Empty);
            }
        }
        Assert.That(rejected, Is.GreaterThan(0));
        TestContext.Out.WriteLine($"fuzz: {accepted} accepted, {rejected} rejected");
    }
}
