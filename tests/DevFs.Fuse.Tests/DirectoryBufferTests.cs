using System.Text;
using DevFs.Fuse.Abi;
using static DevFs.Fuse.Tests.Wire;

namespace DevFs.Fuse.Tests;

public class DirectoryBufferTests
{
    [Test]
    public void Records_Are8ByteAligned_WithNamelenOffAndType()
    {
        var buffer = new FuseDirectoryBuffer(4096);
        Assert.That(buffer.TryAdd(1, ".", 4, 1), Is.True);
        Assert.That(buffer.TryAdd(7, "abcdefgh", 8, 2), Is.True);
        Assert.That(buffer.TryAdd(9, "é", 2, 3), Is.True);
        var data = buffer.Data.ToArray();
        // fuse_dirent: ino 0, off 8, namelen 16, type 20, name 24; padded to 8.
        var expected = new Expect(32 + 32 + 32)
            .U64(0, 1).U64(8, 1).U32(16, 1).U32(20, 4).Bytes(24, "."u8.ToArray())
            .U64(32, 7).U64(40, 2).U32(48, 8).U32(52, 8).Bytes(56, "abcdefgh"u8.ToArray())
            .U64(64, 9).U64(72, 3).U32(80, 2).U32(84, 2).Bytes(88, Encoding.UTF8.GetBytes("é"));
        Assert.That(data, Is.EqualTo(expected.Buffer));
    }

    [Test]
    public void StopsWhenFull_NeverExceedsSize()
    {
        var buffer = new FuseDirectoryBuffer(100);
        Assert.That(buffer.TryAdd(1, "aaaa", 8, 1), Is.True); // 32
        Assert.That(buffer.TryAdd(2, "bbbbbbbbb", 8, 2), Is.True); // 40 -> 72
        Assert.That(buffer.TryAdd(3, "c", 8, 3), Is.False, "32 more would make 104 > 100");
        Assert.That(buffer.Data.Length, Is.EqualTo(72));
        Assert.That(buffer.TryAdd(3, "", 8, 3), Is.True, "a bare 24-byte record still fits: 96");
        Assert.That(buffer.TryAdd(4, "", 8, 4), Is.False);
        Assert.That(buffer.Data.Length, Is.EqualTo(96));
    }

    [Test]
    public void ExactFit_IsAccepted()
    {
        var buffer = new FuseDirectoryBuffer(64);
        Assert.That(buffer.TryAdd(1, "12345678", 8, 1), Is.True);
        Assert.That(buffer.TryAdd(2, "1", 8, 2), Is.True);
        Assert.That(buffer.Data.Length, Is.EqualTo(64));
        Assert.That(buffer.TryAdd(3, "1", 8, 3), Is.False);
    }

    [TestCase(0u)]
    [TestCase(23u)]
    public void TinyBuffer_TakesNothing(uint size)
    {
        var buffer = new FuseDirectoryBuffer(size);
        Assert.That(buffer.TryAdd(1, "a", 8, 1), Is.False);
        Assert.That(buffer.Data.Length, Is.Zero);
    }

    [Test]
    public void Many_Random_NeverExceedSize_AllAligned()
    {
        var rng = new Random(7);
        for (var round = 0; round < 200; round++)
        {
            var size = (uint)rng.Next(0, 2000);
            var buffer = new FuseDirectoryBuffer(size);
            var added = 0;
            while (buffer.TryAdd((ulong)added, new string('n', rng.Next(1, 40)), 8, (ulong)added + 1))
                added++;
            Assert.That(buffer.Data.Length, Is.LessThanOrEqualTo((int)size));
            Assert.That(buffer.Data.Length % 8, Is.Zero);
        }
    }

    [Test]
    public void Plus_RecordsCarryEntryFirst()
    {
        var buffer = new FuseDirectoryBuffer(4096);
        Assert.That(buffer.TryAddPlus(ReplyTests.SampleEntry(), "file", 8, 5), Is.True);
        var entry0 = new fuse_entry_out();
        Assert.That(buffer.TryAddPlus(entry0, "x", 4, 6), Is.True);
        var data = buffer.Data.ToArray();
        // fuse_direntplus: fuse_entry_out (128), then fuse_dirent (24), name, padding to 8: 152 + 4 -> 160.
        var expected = ReplyTests.PutEntry(new Expect(160 + 160), 0)
            .U64(128, 0x1122334455667788).U64(136, 5).U32(144, 4).U32(148, 8).Bytes(152, "file"u8.ToArray())
            .U64(160 + 136, 6).U32(160 + 144, 1).U32(160 + 148, 4).Bytes(160 + 152, "x"u8.ToArray());
        Assert.That(data, Is.EqualTo(expected.Buffer));
    }

    [Test]
    public void Plus_StopsWhenFull()
    {
        var buffer = new FuseDirectoryBuffer(300);
        Assert.That(buffer.TryAddPlus(ReplyTests.SampleEntry(), "a", 8, 1), Is.True);
        Assert.That(buffer.TryAddPlus(ReplyTests.SampleEntry(), "b", 8, 2), Is.False, "160 + 160 > 300");
        Assert.That(buffer.Data.Length, Is.EqualTo(160));
    }

    [Test]
    public void ReadDirReply_CarriesBufferBytes()
    {
        var h = new Harness();
        h.Fs.Answer = r =>
        {
            var buffer = new FuseDirectoryBuffer(64);
            buffer.TryAdd(1, "..", 4, 1);
            r.ReplyData(buffer.Data);
        };
        var reply = h.Send(FuseOpcode.FUSE_READDIR, 1, Bytes(new fuse_read_in { fh = 1, size = 64 }));
        Assert.That(reply, Is.EqualTo(new Expect(48).Header(0, h.LastUnique).U64(16, 1).U64(24, 1).U32(32, 2).U32(36, 4)
            .Bytes(40, ".."u8.ToArray()).Buffer));
    }
}

public class NotifierTests
{
    [Test]
    public void InvalidateEntry_Layout()
    {
        var sink = new RecordingSink();
        Assert.That(new FuseNotifier(sink).InvalidateEntry(5, "név"), Is.Zero);
        var name = Encoding.UTF8.GetBytes("név");
        // out header (unique 0, error = code 3); fuse_notify_inval_entry_out: parent 0, namelen 8, flags 12; name + NUL.
        var expected = new Expect(16 + 16 + name.Length + 1).Header(3, 0).U64(16, 5).U32(24, (uint)name.Length).Bytes(32, name);
        Assert.That(sink.Messages.Single(), Is.EqualTo(expected.Buffer));
    }

    [Test]
    public void Delete_Layout()
    {
        var sink = new RecordingSink();
        new FuseNotifier(sink).Delete(5, 9, "gone");
        // fuse_notify_delete_out: parent 0, child 8, namelen 16, padding 20; name + NUL.
        var expected = new Expect(16 + 24 + 5).Header(6, 0).U64(16, 5).U64(24, 9).U32(32, 4).Bytes(40, "gone"u8.ToArray());
        Assert.That(sink.Messages.Single(), Is.EqualTo(expected.Buffer));
    }

    [Test]
    public void InvalidateInode_Layout()
    {
        var sink = new RecordingSink();
        new FuseNotifier(sink).InvalidateInode(77, 4096, -1);
        // fuse_notify_inval_inode_out: ino 0, off 8, len 16.
        var expected = new Expect(16 + 24).Header(2, 0).U64(16, 77).U64(24, 4096).U64(32, ulong.MaxValue);
        Assert.That(sink.Messages.Single(), Is.EqualTo(expected.Buffer));
    }

    [Test]
    public void InvalidateInode_DefaultsToAttributesOnly()
    {
        var sink = new RecordingSink();
        new FuseNotifier(sink).InvalidateInode(77);
        Assert.That(sink.Messages.Single(), Is.EqualTo(new Expect(40).Header(2, 0).U64(16, 77).Buffer));
    }

    [Test]
    public void PollWakeup_Layout()
    {
        var sink = new RecordingSink();
        new FuseNotifier(sink).PollWakeup(0xFEEDu);
        Assert.That(sink.Messages.Single(), Is.EqualTo(new Expect(24).Header(1, 0).U64(16, 0xFEED).Buffer));
    }

    [Test]
    public void Disconnected_IsEnotconn()
    {
        Assert.That(FuseNotifier.Disconnected.InvalidateEntry(1, "a"), Is.EqualTo(-107));
        Assert.That(FuseNotifier.Disconnected.Delete(1, 2, "a"), Is.EqualTo(-107));
        Assert.That(FuseNotifier.Disconnected.InvalidateInode(1), Is.EqualTo(-107));
    }

    [Test]
    public void SinkErrorIsReturned()
    {
        var notifier = new FuseNotifier(new FailingSink());
        Assert.That(notifier.InvalidateEntry(1, "a"), Is.EqualTo(-2));
    }

    private sealed class FailingSink : IFuseReplySink
    {
        public int Send(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body, ReadOnlySpan<byte> data) => -2;
    }
}
