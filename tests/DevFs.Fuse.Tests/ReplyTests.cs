using System.Text;
using DevFs.Fuse.Abi;
using static DevFs.Fuse.Tests.Wire;

namespace DevFs.Fuse.Tests;

/// <summary>The exact bytes of each kind of reply, laid out by hand from linux/fuse.h.</summary>
public class ReplyTests
{
    private Harness _h = null!;

    [SetUp]
    public void SetUp() => _h = new Harness();

    internal static fuse_attr SampleAttr() => new()
    {
        ino = 0x1122334455667788, size = 1000, blocks = 8, atime = 1_600_000_001, mtime = 1_600_000_002, ctime = 1_600_000_003,
        atimensec = 11, mtimensec = 22, ctimensec = 33, mode = 0x81A4, nlink = 2, uid = 1000, gid = 1001, rdev = 0x0803,
        blksize = 4096, flags = 0,
    };

    /// <summary>fuse_attr at an offset: ino 0, size 8, blocks 16, atime 24, mtime 32, ctime 40, *nsec 48/52/56,
    /// mode 60, nlink 64, uid 68, gid 72, rdev 76, blksize 80, flags 84.</summary>
    internal static Expect PutAttr(Expect e, int at) => e
        .U64(at + 0, 0x1122334455667788).U64(at + 8, 1000).U64(at + 16, 8)
        .U64(at + 24, 1_600_000_001).U64(at + 32, 1_600_000_002).U64(at + 40, 1_600_000_003)
        .U32(at + 48, 11).U32(at + 52, 22).U32(at + 56, 33)
        .U32(at + 60, 0x81A4).U32(at + 64, 2).U32(at + 68, 1000).U32(at + 72, 1001).U32(at + 76, 0x0803).U32(at + 80, 4096).U32(at + 84, 0);

    internal static fuse_entry_out SampleEntry() => new()
    {
        nodeid = 42, generation = 3, entry_valid = 5, attr_valid = 6, entry_valid_nsec = 500_000_000, attr_valid_nsec = 7, attr = SampleAttr(),
    };

    /// <summary>fuse_entry_out: nodeid 0, generation 8, entry_valid 16, attr_valid 24, entry_valid_nsec 32, attr_valid_nsec 36, attr 40.</summary>
    internal static Expect PutEntry(Expect e, int at) =>
        PutAttr(e.U64(at, 42).U64(at + 8, 3).U64(at + 16, 5).U64(at + 24, 6).U32(at + 32, 500_000_000).U32(at + 36, 7), at + 40);

    private byte[]? Lookup(Action<FuseRequest> answer)
    {
        _h.Fs.Answer = answer;
        return _h.Send(FuseOpcode.FUSE_LOOKUP, 1, Z("x"));
    }

    [Test]
    public void ReplyEntry_Bytes()
    {
        var reply = Lookup(r => r.ReplyEntry(SampleEntry()));
        Assert.That(reply, Is.EqualTo(PutEntry(new Expect(16 + 128).Header(0, _h.LastUnique), 16).Buffer));
    }

    [Test]
    public void ReplyAttr_Bytes_ValidSplitIntoSecondsAndNanoseconds()
    {
        var reply = Lookup(r => r.ReplyAttr(SampleAttr(), TimeSpan.FromSeconds(2.5) + TimeSpan.FromTicks(3)));
        // fuse_attr_out: attr_valid 0, attr_valid_nsec 8, dummy 12, attr 16.
        var expected = PutAttr(new Expect(16 + 104).Header(0, _h.LastUnique).U64(16, 2).U32(24, 500_000_300), 32);
        Assert.That(reply, Is.EqualTo(expected.Buffer));
    }

    [Test]
    public void ReplyAttr_NegativeOrZeroValidityIsZero()
    {
        var reply = Lookup(r => r.ReplyAttr(SampleAttr(), TimeSpan.FromSeconds(-3)));
        Assert.That(reply, Is.EqualTo(PutAttr(new Expect(120).Header(0, _h.LastUnique), 32).Buffer));
    }

    [Test]
    public void ReplyAttr_LargeValidity()
    {
        var reply = Lookup(r => r.ReplyAttr(SampleAttr(), TimeSpan.FromDays(365)));
        Assert.That(U64(reply!, 16), Is.EqualTo(365UL * 86400));
        Assert.That(U32(reply!, 24), Is.Zero);
    }

    [Test]
    public void ReplyOpen_Bytes()
    {
        var reply = Lookup(r => r.ReplyOpen(0xAABBCCDDEEFF0011, FuseOpenFlags.FOPEN_DIRECT_IO | FuseOpenFlags.FOPEN_NONSEEKABLE));
        Assert.That(reply, Is.EqualTo(new Expect(32).Header(0, _h.LastUnique).U64(16, 0xAABBCCDDEEFF0011).U32(24, 5).Buffer));
    }

    [Test]
    public void ReplyCreate_Bytes()
    {
        var reply = Lookup(r => r.ReplyCreate(SampleEntry(), 77, FuseOpenFlags.FOPEN_KEEP_CACHE));
        var expected = PutEntry(new Expect(16 + 128 + 16).Header(0, _h.LastUnique), 16).U64(16 + 128, 77).U32(16 + 136, 2);
        Assert.That(reply, Is.EqualTo(expected.Buffer));
    }

    [Test]
    public void ReplyData_Bytes()
    {
        var reply = Lookup(r => r.ReplyData([1, 2, 3, 4, 5]));
        Assert.That(reply, Is.EqualTo(new Expect(21).Header(0, _h.LastUnique).Bytes(16, [1, 2, 3, 4, 5]).Buffer));
    }

    [Test]
    public void ReplyData_Empty_IsBareHeader()
    {
        var reply = Lookup(r => r.ReplyData([]));
        Assert.That(reply, Is.EqualTo(new Expect(16).Header(0, _h.LastUnique).Buffer));
    }

    [Test]
    public void ReplyWrite_Bytes()
    {
        var reply = Lookup(r => r.ReplyWrite(4096));
        Assert.That(reply, Is.EqualTo(new Expect(24).Header(0, _h.LastUnique).U32(16, 4096).Buffer));
    }

    [Test]
    public void ReplyStatFs_Bytes()
    {
        var st = new fuse_kstatfs { blocks = 1, bfree = 2, bavail = 3, files = 4, ffree = 5, bsize = 6, namelen = 7, frsize = 8 };
        var reply = Lookup(r => r.ReplyStatFs(st));
        var expected = new Expect(96).Header(0, _h.LastUnique)
            .U64(16, 1).U64(24, 2).U64(32, 3).U64(40, 4).U64(48, 5).U32(56, 6).U32(60, 7).U32(64, 8);
        Assert.That(reply, Is.EqualTo(expected.Buffer));
    }

    [Test]
    public void ReplyPoll_Bytes()
    {
        var reply = Lookup(r => r.ReplyPoll(0x41));
        Assert.That(reply, Is.EqualTo(new Expect(24).Header(0, _h.LastUnique).U32(16, 0x41).Buffer));
    }

    [Test]
    public void ReplyIoctl_Bytes()
    {
        var reply = Lookup(r => r.ReplyIoctl(-3, [0xA, 0xB, 0xC]));
        // fuse_ioctl_out: result, flags, in_iovs, out_iovs; then the output bytes.
        Assert.That(reply, Is.EqualTo(new Expect(16 + 16 + 3).Header(0, _h.LastUnique).I32(16, -3).Bytes(32, [0xA, 0xB, 0xC]).Buffer));
    }

    [Test]
    public void ReplyReadLink_Utf8NoNul()
    {
        var reply = Lookup(r => r.ReplyReadLink("../zié"));
        var target = Encoding.UTF8.GetBytes("../zié");
        Assert.That(reply, Is.EqualTo(new Expect(16 + target.Length).Header(0, _h.LastUnique).Bytes(16, target).Buffer));
    }

    [Test]
    public void ReplyOk_Bytes() => _h.AssertOk(Lookup(r => r.ReplyOk()));

    [TestCase(2, -2)]
    [TestCase(-2, -2)]
    [TestCase(511, -511)]
    [TestCase(-511, -511)]
    [TestCase(0, -5)]
    [TestCase(512, -5)]
    [TestCase(-512, -5)]
    [TestCase(int.MaxValue, -5)]
    [TestCase(int.MinValue, -5)]
    public void ReplyError_IsExactly16Bytes_WithNegatedErrno(int errno, int wire)
    {
        var reply = Lookup(r => r.ReplyError(errno));
        Assert.That(reply, Is.EqualTo(new Expect(16).Header(wire, _h.LastUnique).Buffer));
    }
}
