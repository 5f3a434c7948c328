using System.Text;
using DevFs.Fuse.Abi;
using static DevFs.Fuse.Tests.Wire;

namespace DevFs.Fuse.Tests;

public class MalformedTests
{
    private Harness _h = null!;

    [SetUp]
    public void SetUp() => _h = new Harness();

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(16)]
    [TestCase(39)]
    public void ShorterThanHeader_NoReply_Counted(int length)
    {
        var message = Request(FuseOpcode.FUSE_GETATTR, 5, 1, new byte[16])[..length];
        Assert.That(_h.SendRaw(message), Is.Null);
        Assert.That(_h.Dispatcher.MalformedRequests, Is.EqualTo(1));
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [TestCase(-1)]
    [TestCase(1)]
    [TestCase(-56)]
    [TestCase(int.MaxValue)]
    public void LengthFieldDisagrees_IsEinval(int delta)
    {
        var message = Request(FuseOpcode.FUSE_GETATTR, 5, 1, new byte[16]);
        var len = (uint)(message.Length + delta);
        BitConverter.TryWriteBytes(message.AsSpan(0, 4), len);
        _h.AssertError(_h.SendRaw(message), Errno.EINVAL);
        Assert.That(_h.Dispatcher.MalformedRequests, Is.EqualTo(1));
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [Test]
    public void ForgetWithWrongLength_NoReply()
    {
        var message = Request(FuseOpcode.FUSE_FORGET, 5, 1, Bytes(new fuse_forget_in { nlookup = 1 }));
        BitConverter.TryWriteBytes(message.AsSpan(0, 4), 100u);
        Assert.That(_h.SendRaw(message), Is.Null);
        Assert.That(_h.Fs.Forgets, Is.Empty);
    }

    [Test]
    public void ExtensionLengthBeyondMessage_IsEinval()
    {
        var message = Request(FuseOpcode.FUSE_GETATTR, 5, 1, new byte[16], extWords: 3);
        _h.AssertError(_h.SendRaw(message), Errno.EINVAL);
        message = Request(FuseOpcode.FUSE_GETATTR, 5, 1, new byte[16], extWords: ushort.MaxValue);
        _h.AssertError(_h.SendRaw(message), Errno.EINVAL);
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [Test]
    public void ExtensionEatingTheBody_IsEinval()
    {
        // 16 bytes of body, all claimed as extensions: GETATTR then lacks its fuse_getattr_in.
        var message = Request(FuseOpcode.FUSE_GETATTR, 5, 1, new byte[16], extWords: 2);
        _h.AssertError(_h.SendRaw(message), Errno.EINVAL);
    }

    private static IEnumerable<TestCaseData> ValidBodies()
    {
        yield return new TestCaseData(FuseOpcode.FUSE_LOOKUP, Z("a"));
        yield return new TestCaseData(FuseOpcode.FUSE_GETATTR, new byte[16]);
        yield return new TestCaseData(FuseOpcode.FUSE_SETATTR, new byte[88]);
        yield return new TestCaseData(FuseOpcode.FUSE_SYMLINK, Cat(Z("a"), Z("b")));
        yield return new TestCaseData(FuseOpcode.FUSE_MKNOD, Cat(new byte[16], Z("a")));
        yield return new TestCaseData(FuseOpcode.FUSE_MKDIR, Cat(new byte[8], Z("a")));
        yield return new TestCaseData(FuseOpcode.FUSE_UNLINK, Z("a"));
        yield return new TestCaseData(FuseOpcode.FUSE_RMDIR, Z("a"));
        yield return new TestCaseData(FuseOpcode.FUSE_RENAME, Cat(new byte[8], Z("a"), Z("b")));
        yield return new TestCaseData(FuseOpcode.FUSE_RENAME2, Cat(new byte[16], Z("a"), Z("b")));
        yield return new TestCaseData(FuseOpcode.FUSE_OPEN, new byte[8]);
        yield return new TestCaseData(FuseOpcode.FUSE_CREATE, Cat(new byte[16], Z("a")));
        yield return new TestCaseData(FuseOpcode.FUSE_READ, new byte[40]);
        yield return new TestCaseData(FuseOpcode.FUSE_WRITE, new byte[40]);
        yield return new TestCaseData(FuseOpcode.FUSE_FLUSH, new byte[24]);
        yield return new TestCaseData(FuseOpcode.FUSE_RELEASE, new byte[24]);
        yield return new TestCaseData(FuseOpcode.FUSE_FSYNC, new byte[16]);
        yield return new TestCaseData(FuseOpcode.FUSE_OPENDIR, new byte[8]);
        yield return new TestCaseData(FuseOpcode.FUSE_READDIR, new byte[40]);
        yield return new TestCaseData(FuseOpcode.FUSE_READDIRPLUS, new byte[40]);
        yield return new TestCaseData(FuseOpcode.FUSE_RELEASEDIR, new byte[24]);
        yield return new TestCaseData(FuseOpcode.FUSE_ACCESS, new byte[8]);
        yield return new TestCaseData(FuseOpcode.FUSE_IOCTL, new byte[32]);
        yield return new TestCaseData(FuseOpcode.FUSE_POLL, new byte[24]);
        yield return new TestCaseData(FuseOpcode.FUSE_INTERRUPT, new byte[8]);
        yield return new TestCaseData(FuseOpcode.FUSE_FORGET, new byte[8]);
        yield return new TestCaseData(FuseOpcode.FUSE_BATCH_FORGET, new byte[8]);
    }

    [TestCaseSource(nameof(ValidBodies))]
    public void BodyOneByteShort_IsEinval(FuseOpcode opcode, byte[] body)
    {
        var noReply = opcode is FuseOpcode.FUSE_INTERRUPT or FuseOpcode.FUSE_FORGET or FuseOpcode.FUSE_BATCH_FORGET;
        var whole = _h.Send(opcode, 1, body);
        Assert.That(whole is null, Is.EqualTo(noReply), "the whole body is accepted");
        if (!noReply)
            _h.AssertOk(whole);
        var calls = _h.Fs.Calls.Count;
        var forgets = _h.Fs.Forgets.Count;

        var reply = _h.Send(opcode, 1, body[..^1]);
        if (opcode is FuseOpcode.FUSE_FORGET or FuseOpcode.FUSE_BATCH_FORGET)
            Assert.That(reply, Is.Null);
        else
            _h.AssertError(reply, Errno.EINVAL);
        Assert.That(_h.Fs.Calls, Has.Count.EqualTo(calls));
        Assert.That(_h.Fs.Forgets, Has.Count.EqualTo(forgets));
        Assert.That(_h.Dispatcher.MalformedRequests, Is.EqualTo(1));
    }

    [TestCaseSource(nameof(ValidBodies))]
    public void EveryPrefixOfTheBody_NeverThrows(FuseOpcode opcode, byte[] body)
    {
        for (var n = 0; n < body.Length; n++)
            Assert.DoesNotThrow(() => _h.Send(opcode, 1, body[..n]));
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    private static IEnumerable<TestCaseData> BadNames()
    {
        yield return new TestCaseData(Array.Empty<byte>()).SetName("Name_Missing");
        yield return new TestCaseData("abc"u8.ToArray()).SetName("Name_NoNulTerminator");
        yield return new TestCaseData(new byte[] { 0 }).SetName("Name_Empty");
        yield return new TestCaseData(Z("a/b")).SetName("Name_Slash");
        yield return new TestCaseData(Z("/")).SetName("Name_OnlySlash");
        yield return new TestCaseData(Z(".")).SetName("Name_Dot");
        yield return new TestCaseData(Z("..")).SetName("Name_DotDot");
        yield return new TestCaseData(new byte[] { 0xFF, 0xFE, 0 }).SetName("Name_InvalidUtf8");
        yield return new TestCaseData(new byte[] { (byte)'a', 0xC3, 0 }).SetName("Name_TruncatedUtf8");
        yield return new TestCaseData(new byte[] { 0xED, 0xA0, 0x80, 0 }).SetName("Name_Utf8Surrogate");
        yield return new TestCaseData(new byte[] { 0xC0, 0xAF, 0 }).SetName("Name_OverlongSlash");
        yield return new TestCaseData(Z(new string('n', 256))).SetName("Name_256Bytes");
        yield return new TestCaseData(Z(string.Concat(Enumerable.Repeat("é", 128)))).SetName("Name_256BytesOf128Chars");
    }

    /// <summary>How each name-taking opcode wraps a name; the bad name in every position a name goes.</summary>
    private static readonly (FuseOpcode Opcode, Func<byte[], byte[]> Body)[] NameCarriers =
    [
        (FuseOpcode.FUSE_LOOKUP, n => n),
        (FuseOpcode.FUSE_UNLINK, n => n),
        (FuseOpcode.FUSE_RMDIR, n => n),
        (FuseOpcode.FUSE_SYMLINK, n => Cat(n, Z("target"))),
        (FuseOpcode.FUSE_MKNOD, n => Cat(new byte[16], n)),
        (FuseOpcode.FUSE_MKDIR, n => Cat(new byte[8], n)),
        (FuseOpcode.FUSE_CREATE, n => Cat(new byte[16], n)),
        (FuseOpcode.FUSE_RENAME, n => Cat(new byte[8], n, Z("ok"))),
        (FuseOpcode.FUSE_RENAME, n => Cat(new byte[8], Z("ok"), n)),
        (FuseOpcode.FUSE_RENAME2, n => Cat(new byte[16], n, Z("ok"))),
        (FuseOpcode.FUSE_RENAME2, n => Cat(new byte[16], Z("ok"), n)),
    ];

    [TestCaseSource(nameof(BadNames))]
    public void BadName_IsEinval_ForEveryOpcodeTakingNames(byte[] name)
    {
        foreach (var (opcode, body) in NameCarriers)
        {
            _h.AssertError(_h.Send(opcode, 1, body(name)), Errno.EINVAL);
        }
        Assert.That(_h.Fs.Calls, Is.Empty);
        Assert.That(_h.Dispatcher.MalformedRequests, Is.EqualTo(NameCarriers.Length));
    }

    [Test]
    public void SymlinkTarget_InvalidUtf8OrUnterminated_IsEinval()
    {
        _h.AssertError(_h.Send(FuseOpcode.FUSE_SYMLINK, 1, Cat(Z("l"), [0xFF, 0])), Errno.EINVAL);
        _h.AssertError(_h.Send(FuseOpcode.FUSE_SYMLINK, 1, Cat(Z("l"), "abc"u8.ToArray())), Errno.EINVAL);
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [Test]
    public void LongestNames_AreAccepted()
    {
        var ascii = new string('n', 255);
        var multibyte = string.Concat(Enumerable.Repeat("é", 127)) + "x"; // 255 bytes
        _h.Send(FuseOpcode.FUSE_LOOKUP, 1, Z(ascii));
        _h.Send(FuseOpcode.FUSE_LOOKUP, 1, Z(multibyte));
        Assert.That(Encoding.UTF8.GetByteCount(multibyte), Is.EqualTo(255));
        Assert.That(_h.Fs.Calls.Select(c => c.Args[0]), Is.EqualTo(new[] { ascii, multibyte }));
    }

    [TestCase(5u, 4)]
    [TestCase(4u, 5)]
    [TestCase(0u, 1)]
    [TestCase(uint.MaxValue, 3)]
    public void WriteSizeDisagreesWithData_IsEinval(uint size, int dataLength)
    {
        _h.AssertError(_h.Send(FuseOpcode.FUSE_WRITE, 6, Cat(Bytes(new fuse_write_in { fh = 1, size = size }), new byte[dataLength])), Errno.EINVAL);
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [Test]
    public void WriteAboveMaxWrite_IsEinval()
    {
        var size = Harness.MaxWrite + 1;
        _h.AssertError(_h.Send(FuseOpcode.FUSE_WRITE, 6, Cat(Bytes(new fuse_write_in { fh = 1, size = size }), new byte[size])), Errno.EINVAL);
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [TestCase(FuseOpcode.FUSE_READ)]
    [TestCase(FuseOpcode.FUSE_READDIR)]
    [TestCase(FuseOpcode.FUSE_READDIRPLUS)]
    public void ReadAboveMaxWrite_IsEinval(FuseOpcode opcode)
    {
        _h.AssertError(_h.Send(opcode, 6, Bytes(new fuse_read_in { fh = 1, size = Harness.MaxWrite + 1 })), Errno.EINVAL);
        _h.AssertError(_h.Send(opcode, 6, Bytes(new fuse_read_in { fh = 1, size = uint.MaxValue })), Errno.EINVAL);
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [Test]
    public void IoctlOutSizeAboveMaxWrite_IsEinval()
    {
        _h.AssertError(_h.Send(FuseOpcode.FUSE_IOCTL, 6, Bytes(new fuse_ioctl_in { out_size = Harness.MaxWrite + 1 })), Errno.EINVAL);
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [Test]
    public void IoctlInSizeAboveMaxWrite_IsEinval()
    {
        var size = Harness.MaxWrite + 1;
        _h.AssertError(_h.Send(FuseOpcode.FUSE_IOCTL, 6, Cat(Bytes(new fuse_ioctl_in { in_size = size }), new byte[size])), Errno.EINVAL);
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [TestCase(4u, 3)]
    [TestCase(3u, 4)]
    [TestCase(uint.MaxValue, 0)]
    public void IoctlInSizeDisagreesWithData_IsEinval(uint inSize, int dataLength)
    {
        _h.AssertError(_h.Send(FuseOpcode.FUSE_IOCTL, 6, Cat(Bytes(new fuse_ioctl_in { in_size = inSize }), new byte[dataLength])), Errno.EINVAL);
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [TestCase(2u, 1)]
    [TestCase(1u, 0)]
    [TestCase(uint.MaxValue, 3)]
    [TestCase(0x1000_0000u, 1)]
    public void BatchForgetCountAboveEntries_NoReplyNoCalls(uint count, int entries)
    {
        var body = Bytes(new fuse_batch_forget_in { count = count });
        for (var i = 0; i < entries; i++)
            body = Cat(body, Bytes(new fuse_forget_one { nodeid = (ulong)i + 10, nlookup = 1 }));
        Assert.That(_h.Send(FuseOpcode.FUSE_BATCH_FORGET, 0, body), Is.Null);
        Assert.That(_h.Fs.Forgets, Is.Empty);
        Assert.That(_h.Dispatcher.MalformedRequests, Is.EqualTo(1));
    }

    [Test]
    public void BatchForget_PartialTrailingEntryNotCounted()
    {
        var body = Cat(Bytes(new fuse_batch_forget_in { count = 2 }), Bytes(new fuse_forget_one { nodeid = 10, nlookup = 1 }), new byte[15]);
        Assert.That(_h.Send(FuseOpcode.FUSE_BATCH_FORGET, 0, body), Is.Null);
        Assert.That(_h.Fs.Forgets, Is.Empty);
    }

    [Test]
    public void MalformedRequests_DoNotBreakTheNextOne()
    {
        _h.SendRaw([1, 2, 3]);
        _h.Send(FuseOpcode.FUSE_LOOKUP, 1, "no-nul"u8.ToArray());
        _h.AssertOk(_h.Send(FuseOpcode.FUSE_LOOKUP, 1, Z("fine")));
        Assert.That(_h.Dispatcher.MalformedRequests, Is.EqualTo(2));
    }
}

public class FuzzTests
{
    private static readonly uint[] Opcodes = Enum.GetValues<FuseOpcode>().Select(o => (uint)o).Concat([0u, 7u, 19u, 53u, 999u, uint.MaxValue]).ToArray();

    [Test]
    public void RandomRequests_NeverThrow_RepliesWellFormed()
    {
        var rng = new Random(20240607);
        var fs = new RecordingFs();
        fs.Answer = r =>
        {
            switch (rng.Next(8))
            {
                case 0: r.ReplyOk(); break;
                case 1: r.ReplyError(rng.Next(int.MinValue, int.MaxValue)); break;
                case 2: r.ReplyError(rng.Next(-600, 600)); break;
                case 3: r.ReplyData(new byte[rng.Next(0, 64)]); break;
                case 4: throw new InvalidOperationException("fuzz");
                case 5: break; // answered later, or never
                case 6: r.ReplyEntry(default); r.ReplyOk(); break;
                default: r.ReplyAttr(default, TimeSpan.FromTicks(rng.NextInt64())); break;
            }
        };
        var h = new Harness(recording: fs);
        var bare = new Harness(fs: new BareFs());
        var valid = ValidTemplates();
        for (var i = 0; i < 20_000; i++)
        {
            var target = i % 4 == 0 ? bare : h;
            var message = Mutate(rng, valid[rng.Next(valid.Length)]);
            var before = target.Sink.Messages.Count;
            Assert.DoesNotThrow(() => target.Dispatcher.Dispatch(message, target.Sink), $"message {i}");
            var replies = target.Sink.Messages.Skip(before).ToList();
            Assert.That(replies, Has.Count.LessThanOrEqualTo(1), $"message {i}");
            if (message.Length < InHeader)
            {
                Assert.That(replies, Is.Empty);
                continue;
            }
            var opcode = U32(message, 4);
            if (opcode is (uint)FuseOpcode.FUSE_FORGET or (uint)FuseOpcode.FUSE_BATCH_FORGET)
            {
                Assert.That(replies, Is.Empty, $"message {i}: FORGET answered");
                continue;
            }
            foreach (var reply in replies)
            {
                Assert.That(reply.Length, Is.GreaterThanOrEqualTo(OutHeader));
                Assert.That(U32(reply, 0), Is.EqualTo((uint)reply.Length), $"message {i}: out len");
                Assert.That(U64(reply, 8), Is.EqualTo(U64(message, 8)), $"message {i}: unique");
                Assert.That(I32(reply, 4), Is.InRange(-511, 0), $"message {i}: error");
                if (I32(reply, 4) != 0)
                    Assert.That(reply.Length, Is.EqualTo(OutHeader), "an error reply is a bare header");
            }
        }
        Assert.That(h.Dispatcher.MalformedRequests + bare.Dispatcher.MalformedRequests, Is.GreaterThan(1000));
        Assert.That(h.Fs.Calls.Count, Is.GreaterThan(1000), "the fuzz reaches the handlers too");
    }

    private static byte[][] ValidTemplates()
    {
        var list = new List<byte[]>();
        foreach (var opcode in Opcodes)
        {
            list.Add(Request(opcode, 1, 1, Z("name")));
            list.Add(Request(opcode, 1, 1, new byte[8]));
            list.Add(Request(opcode, 1, 1, Cat(new byte[16], Z("a"), Z("b"))));
            list.Add(Request(opcode, 1, 1, new byte[40]));
            list.Add(Request(opcode, 1, 1, new byte[88]));
        }
        list.Add(Request(FuseOpcode.FUSE_WRITE, 1, 1, Cat(Bytes(new fuse_write_in { size = 3 }), [1, 2, 3])));
        list.Add(Request(FuseOpcode.FUSE_IOCTL, 1, 1, Cat(Bytes(new fuse_ioctl_in { in_size = 2, out_size = 8 }), [1, 2])));
        list.Add(Request(FuseOpcode.FUSE_BATCH_FORGET, 1, 0, Cat(Bytes(new fuse_batch_forget_in { count = 1 }), new byte[16])));
        list.Add(Request(FuseOpcode.FUSE_INTERRUPT, 1, 0, Bytes(new fuse_interrupt_in { unique = 5 })));
        list.Add(Request(FuseOpcode.FUSE_INIT, 1, 0, Bytes(ModernInit())));
        list.Add(Request(FuseOpcode.FUSE_LOOKUP, 1, 1, Z("x"), extWords: 1, ext: new byte[8]));
        return list.ToArray();
    }

    private static byte[] Mutate(Random rng, byte[] template)
    {
        var m = (byte[])template.Clone();
        BitConverter.TryWriteBytes(m.AsSpan(8, 8), (ulong)rng.NextInt64());
        switch (rng.Next(7))
        {
            case 0: // flip a few random bytes of the body, keep the header consistent
                for (var k = rng.Next(1, 6); k > 0 && m.Length > InHeader; k--)
                    m[rng.Next(InHeader, m.Length)] = (byte)rng.Next(256);
                break;
            case 1: // truncate, fixing len so the body is what is short
                m = m[..rng.Next(InHeader, m.Length + 1)];
                BitConverter.TryWriteBytes(m.AsSpan(0, 4), (uint)m.Length);
                break;
            case 2: // truncate without fixing len
                m = m[..rng.Next(0, m.Length + 1)];
                break;
            case 3: // random garbage body of random size for the same header
            {
                var body = new byte[rng.Next(0, 300)];
                rng.NextBytes(body);
                m = Cat(m[..InHeader], body);
                BitConverter.TryWriteBytes(m.AsSpan(0, 4), (uint)m.Length);
                break;
            }
            case 4: // entirely random bytes
                m = new byte[rng.Next(0, 200)];
                rng.NextBytes(m);
                break;
            case 5: // random header fields (len, extlen, sizes)
                BitConverter.TryWriteBytes(m.AsSpan(36, 2), (ushort)rng.Next(0, 8));
                if (rng.Next(2) == 0)
                    BitConverter.TryWriteBytes(m.AsSpan(0, 4), (uint)rng.Next());
                break;
            default: // random 32-bit words in the body
                for (var at = InHeader; at + 4 <= m.Length; at += 4)
                    if (rng.Next(3) == 0)
                        BitConverter.TryWriteBytes(m.AsSpan(at, 4), rng.Next(2) == 0 ? uint.MaxValue : (uint)rng.Next());
                break;
        }
        return m;
    }
}
