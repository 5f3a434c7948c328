using DevFs.Fuse.Abi;
using static DevFs.Fuse.Tests.Wire;

namespace DevFs.Fuse.Tests;

/// <summary>Every opcode the dispatcher handles: the arguments the filesystem sees.</summary>
public class OpcodeTests
{
    private Harness _h = null!;

    [SetUp]
    public void SetUp() => _h = new Harness();

    private Call Single(string op)
    {
        Assert.That(_h.Fs.Calls, Has.Count.EqualTo(1));
        var call = _h.Fs.Calls[0];
        Assert.That(call.Op, Is.EqualTo(op));
        Assert.That(call.Request.Unique, Is.EqualTo(_h.LastUnique));
        return call;
    }

    [Test]
    public void Lookup_DecodesNameAndCaller()
    {
        var reply = _h.SendRaw(Request(FuseOpcode.FUSE_LOOKUP, 77, 1, Z("dév"), uid: 12, gid: 34, pid: 56));
        var call = Single("Lookup");
        Assert.That(call.Node, Is.EqualTo(1UL));
        Assert.That(call.Args, Is.EqualTo(new object?[] { "dév" }));
        Assert.That(call.Request.Caller, Is.EqualTo(new FuseCaller(12, 34, 56)));
        Assert.That(call.Request.Opcode, Is.EqualTo(FuseOpcode.FUSE_LOOKUP));
        Assert.That(call.Request.NodeId, Is.EqualTo(1UL));
        Assert.That(reply, Is.EqualTo(new Expect(16).Header(0, 77).Buffer));
    }

    [Test]
    public void Lookup_ExtensionsAreStripped()
    {
        var ext = new byte[16];
        ext.AsSpan().Fill(0xAB);
        _h.SendRaw(Request(FuseOpcode.FUSE_LOOKUP, 9, 1, Z("abc"), extWords: 2, ext: ext));
        Assert.That(_h.Fs.Calls.Single().Args, Is.EqualTo(new object?[] { "abc" }));
    }

    [Test]
    public void Forget_CallsFilesystem_NoReply()
    {
        Assert.That(_h.Send(FuseOpcode.FUSE_FORGET, 42, Bytes(new fuse_forget_in { nlookup = 3 })), Is.Null);
        Assert.That(_h.Fs.Forgets, Is.EqualTo(new[] { (42UL, 3UL) }));
    }

    [Test]
    public void BatchForget_CallsFilesystemForEach_NoReply()
    {
        var body = Cat(Bytes(new fuse_batch_forget_in { count = 3 }),
            Bytes(new fuse_forget_one { nodeid = 10, nlookup = 1 }),
            Bytes(new fuse_forget_one { nodeid = 11, nlookup = 2 }),
            Bytes(new fuse_forget_one { nodeid = 12, nlookup = ulong.MaxValue }));
        Assert.That(_h.Send(FuseOpcode.FUSE_BATCH_FORGET, 0, body), Is.Null);
        Assert.That(_h.Fs.Forgets, Is.EqualTo(new[] { (10UL, 1UL), (11UL, 2UL), (12UL, ulong.MaxValue) }));
    }

    [Test]
    public void BatchForget_ExtraTrailingEntriesIgnored()
    {
        var body = Cat(Bytes(new fuse_batch_forget_in { count = 1 }),
            Bytes(new fuse_forget_one { nodeid = 10, nlookup = 1 }),
            Bytes(new fuse_forget_one { nodeid = 11, nlookup = 2 }));
        Assert.That(_h.Send(FuseOpcode.FUSE_BATCH_FORGET, 0, body), Is.Null);
        Assert.That(_h.Fs.Forgets, Is.EqualTo(new[] { (10UL, 1UL) }));
    }

    [Test]
    public void GetAttr_WithoutFhFlag_PassesNull()
    {
        _h.Send(FuseOpcode.FUSE_GETATTR, 5, Bytes(new fuse_getattr_in { getattr_flags = 0, fh = 99 }));
        Assert.That(Single("GetAttr").Args, Is.EqualTo(new object?[] { null }));
    }

    [Test]
    public void GetAttr_WithFhFlag_PassesFh()
    {
        _h.Send(FuseOpcode.FUSE_GETATTR, 5, Bytes(new fuse_getattr_in { getattr_flags = FuseFlagBits.FUSE_GETATTR_FH, fh = 99 }));
        var call = Single("GetAttr");
        Assert.That(call.Node, Is.EqualTo(5UL));
        Assert.That(call.Args, Is.EqualTo(new object?[] { 99UL }));
    }

    [Test]
    public void SetAttr_PassesWholeStruct()
    {
        var attr = new fuse_setattr_in
        {
            valid = (uint)(FuseSetAttrValid.FATTR_MODE | FuseSetAttrValid.FATTR_SIZE | FuseSetAttrValid.FATTR_FH | FuseSetAttrValid.FATTR_MTIME),
            fh = 7, size = 4096, mtime = 1_700_000_000, mtimensec = 123, mode = 0x81A4, uid = 5, gid = 6,
        };
        _h.Send(FuseOpcode.FUSE_SETATTR, 8, Bytes(attr));
        var seen = (fuse_setattr_in)Single("SetAttr").Args[0]!;
        Assert.That(Bytes(seen), Is.EqualTo(Bytes(attr)));
    }

    [Test]
    public void ReadLink_NoBody()
    {
        _h.Send(FuseOpcode.FUSE_READLINK, 9, []);
        Assert.That(Single("ReadLink").Node, Is.EqualTo(9UL));
    }

    [Test]
    public void Symlink_NameThenTarget()
    {
        _h.Send(FuseOpcode.FUSE_SYMLINK, 1, Cat(Z("link"), Z("../some/where")));
        Assert.That(Single("Symlink").Args, Is.EqualTo(new object?[] { "link", "../some/where" }));
    }

    [Test]
    public void MkNod_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_MKNOD, 1, Cat(Bytes(new fuse_mknod_in { mode = 0x2190, rdev = 0x0501, umask = 0x12 }), Z("tty5")));
        Assert.That(Single("MkNod").Args, Is.EqualTo(new object?[] { "tty5", 0x2190u, 0x0501u, 0x12u }));
    }

    [Test]
    public void MkDir_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_MKDIR, 3, Cat(Bytes(new fuse_mkdir_in { mode = 0x41ED, umask = 0x22 }), Z("sub")));
        var call = Single("MkDir");
        Assert.That(call.Node, Is.EqualTo(3UL));
        Assert.That(call.Args, Is.EqualTo(new object?[] { "sub", 0x41EDu, 0x22u }));
    }

    [Test]
    public void Unlink_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_UNLINK, 3, Z("gone"));
        Assert.That(Single("Unlink").Args, Is.EqualTo(new object?[] { "gone" }));
    }

    [Test]
    public void RmDir_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_RMDIR, 3, Z("dir"));
        Assert.That(Single("RmDir").Args, Is.EqualTo(new object?[] { "dir" }));
    }

    [Test]
    public void Rename_FlagsZero()
    {
        _h.Send(FuseOpcode.FUSE_RENAME, 3, Cat(Bytes(new fuse_rename_in { newdir = 4 }), Z("old"), Z("new")));
        var call = Single("Rename");
        Assert.That(call.Node, Is.EqualTo(3UL));
        Assert.That(call.Args, Is.EqualTo(new object?[] { "old", 4UL, "new", 0u }));
    }

    [Test]
    public void Rename2_PassesFlags()
    {
        _h.Send(FuseOpcode.FUSE_RENAME2, 3,
            Cat(Bytes(new fuse_rename2_in { newdir = 4, flags = FuseFlagBits.RENAME_EXCHANGE }), Z("a"), Z("b")));
        Assert.That(Single("Rename").Args, Is.EqualTo(new object?[] { "a", 4UL, "b", FuseFlagBits.RENAME_EXCHANGE }));
    }

    [Test]
    public void Open_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_OPEN, 6, Bytes(new fuse_open_in { flags = 0x8802 }));
        Assert.That(Single("Open").Args, Is.EqualTo(new object?[] { 0x8802 }));
    }

    [Test]
    public void Create_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_CREATE, 1, Cat(Bytes(new fuse_create_in { flags = 0x241, mode = 0x81B6, umask = 0x12 }), Z("new.txt")));
        Assert.That(Single("Create").Args, Is.EqualTo(new object?[] { "new.txt", 0x81B6u, 0x12u, 0x241 }));
    }

    [Test]
    public void Read_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_READ, 6, Bytes(new fuse_read_in { fh = 11, offset = 1UL << 40, size = 4096, flags = 0x800, read_flags = 2 }));
        Assert.That(Single("Read").Args, Is.EqualTo(new object?[] { 11UL, 1UL << 40, 4096u, 0x800 }));
    }

    [Test]
    public void Read_ExactlyMaxWriteIsAccepted()
    {
        _h.Send(FuseOpcode.FUSE_READ, 6, Bytes(new fuse_read_in { fh = 1, size = Harness.MaxWrite }));
        Assert.That(Single("Read").Args[2], Is.EqualTo(Harness.MaxWrite));
    }

    [Test]
    public void Write_DecodesData()
    {
        var data = new byte[] { 1, 2, 3, 0, 5 };
        _h.Send(FuseOpcode.FUSE_WRITE, 6, Cat(Bytes(new fuse_write_in { fh = 12, offset = 100, size = 5, flags = 0x401 }), data));
        Assert.That(Single("Write").Args, Is.EqualTo(new object?[] { 12UL, 100UL, data, 0x401 }));
    }

    [Test]
    public void Write_EmptyAndMaxWriteAccepted()
    {
        _h.Send(FuseOpcode.FUSE_WRITE, 6, Bytes(new fuse_write_in { fh = 1, size = 0 }));
        _h.Send(FuseOpcode.FUSE_WRITE, 6, Cat(Bytes(new fuse_write_in { fh = 1, size = Harness.MaxWrite }), new byte[Harness.MaxWrite]));
        Assert.That(_h.Fs.Calls.Select(c => ((byte[])c.Args[2]!).Length), Is.EqualTo(new[] { 0, (int)Harness.MaxWrite }));
    }

    [Test]
    public void Flush_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_FLUSH, 6, Bytes(new fuse_flush_in { fh = 13, lock_owner = 5 }));
        Assert.That(Single("Flush").Args, Is.EqualTo(new object?[] { 13UL }));
    }

    [Test]
    public void Release_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_RELEASE, 6, Bytes(new fuse_release_in { fh = 14, flags = 0x8002, release_flags = FuseFlagBits.FUSE_RELEASE_FLUSH }));
        Assert.That(Single("Release").Args, Is.EqualTo(new object?[] { 14UL, 0x8002 }));
    }

    [TestCase(0u, false)]
    [TestCase(1u, true)]
    [TestCase(0xFFFF_FFFEu, false)]
    public void Fsync_DatasyncFlag(uint flags, bool dataOnly)
    {
        _h.Send(FuseOpcode.FUSE_FSYNC, 6, Bytes(new fuse_fsync_in { fh = 15, fsync_flags = flags }));
        Assert.That(Single("Fsync").Args, Is.EqualTo(new object?[] { 15UL, dataOnly }));
    }

    [Test]
    public void OpenDir_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_OPENDIR, 1, Bytes(new fuse_open_in { flags = 0x10000 }));
        Assert.That(Single("OpenDir").Args, Is.EqualTo(new object?[] { 0x10000 }));
    }

    [TestCase(FuseOpcode.FUSE_READDIR, false)]
    [TestCase(FuseOpcode.FUSE_READDIRPLUS, true)]
    public void ReadDir_Decodes(FuseOpcode opcode, bool plus)
    {
        _h.Send(opcode, 1, Bytes(new fuse_read_in { fh = 16, offset = 3, size = 4096 }));
        Assert.That(Single("ReadDir").Args, Is.EqualTo(new object?[] { 16UL, 3UL, 4096u, plus }));
    }

    [Test]
    public void ReleaseDir_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_RELEASEDIR, 1, Bytes(new fuse_release_in { fh = 17 }));
        Assert.That(Single("ReleaseDir").Args, Is.EqualTo(new object?[] { 17UL }));
    }

    [Test]
    public void StatFs_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_STATFS, 1, []);
        Assert.That(Single("StatFs").Node, Is.EqualTo(1UL));
    }

    [Test]
    public void Access_Decodes()
    {
        _h.Send(FuseOpcode.FUSE_ACCESS, 2, Bytes(new fuse_access_in { mask = 6 }));
        Assert.That(Single("Access").Args, Is.EqualTo(new object?[] { 6u }));
    }

    [Test]
    public void Ioctl_Decodes()
    {
        var input = new byte[] { 9, 8, 7, 6 };
        _h.Send(FuseOpcode.FUSE_IOCTL, 2, Cat(Bytes(new fuse_ioctl_in
        {
            fh = 18, flags = (uint)FuseIoctlFlags.FUSE_IOCTL_DIR, cmd = 0xC0045401, arg = 0xDEADBEEF, in_size = 4, out_size = 4,
        }), input));
        Assert.That(Single("Ioctl").Args,
            Is.EqualTo(new object?[] { 18UL, FuseIoctlFlags.FUSE_IOCTL_DIR, 0xC0045401u, 0xDEADBEEFUL, input, 4u }));
    }

    [TestCase(0u, false)]
    [TestCase(1u, true)]
    public void Poll_ScheduleNotifyFlag(uint flags, bool schedule)
    {
        _h.Send(FuseOpcode.FUSE_POLL, 2, Bytes(new fuse_poll_in { fh = 19, kh = 20, flags = flags, events = 0x5 }));
        Assert.That(Single("Poll").Args, Is.EqualTo(new object?[] { 19UL, 20UL, schedule, 0x5u }));
    }

    [Test]
    public void Interrupt_NoReply_NoFilesystemCall()
    {
        Assert.That(_h.Send(FuseOpcode.FUSE_INTERRUPT, 0, Bytes(new fuse_interrupt_in { unique = 12345 })), Is.Null);
        Assert.That(_h.Fs.Calls, Is.Empty);
    }

    [Test]
    public void Destroy_RepliesOk_AndTellsFilesystem()
    {
        var reply = _h.Send(FuseOpcode.FUSE_DESTROY, 0, []);
        _h.AssertOk(reply);
        Assert.That(_h.Fs.DestroyedCount, Is.EqualTo(1));
        Assert.That(_h.Dispatcher.Destroyed, Is.True);
    }

    [TestCase(13u)] // LINK
    [TestCase(21u)] // SETXATTR
    [TestCase(22u)] // GETXATTR
    [TestCase(30u)] // FSYNCDIR
    [TestCase(43u)] // FALLOCATE
    [TestCase(46u)] // LSEEK
    [TestCase(0u)]
    [TestCase(999u)]
    [TestCase(uint.MaxValue)]
    public void UnknownOpcode_IsEnosys(uint opcode)
    {
        _h.AssertError(_h.Send(opcode, 1, new byte[24]), Errno.ENOSYS);
        Assert.That(_h.Fs.Calls, Is.Empty);
        Assert.That(_h.Dispatcher.MalformedRequests, Is.Zero);
    }

    [Test]
    public void HandlerThrows_IsEio_AndNextRequestWorks()
    {
        _h.Fs.Throw = true;
        _h.AssertError(_h.Send(FuseOpcode.FUSE_LOOKUP, 1, Z("boom")), Errno.EIO);
        _h.Fs.Throw = false;
        _h.AssertOk(_h.Send(FuseOpcode.FUSE_LOOKUP, 1, Z("fine")));
        Assert.That(_h.Fs.Calls.Select(c => c.Args[0]), Is.EqualTo(new[] { "boom", "fine" }));
    }

    [Test]
    public void HandlerRepliesThenThrows_OnlyFirstReplySent()
    {
        _h.Fs.Answer = r => { r.ReplyOk(); throw new InvalidOperationException(); };
        _h.AssertOk(_h.Send(FuseOpcode.FUSE_LOOKUP, 1, Z("x")));
    }

    [Test]
    public void DoubleReply_OnlyFirstIsSent()
    {
        _h.Fs.Answer = r =>
        {
            Assert.That(r.IsAnswered, Is.False);
            r.ReplyError(Errno.EACCES);
            Assert.That(r.IsAnswered, Is.True);
            r.ReplyOk();
            r.ReplyData([1, 2, 3]);
        };
        _h.AssertError(_h.Send(FuseOpcode.FUSE_ACCESS, 1, Bytes(new fuse_access_in { mask = 1 })), Errno.EACCES);
    }

    [Test]
    public void LateReply_FromAnotherThread_IsSentOnce()
    {
        FuseRequest? kept = null;
        _h.Fs.Answer = r => kept = r;
        Assert.That(_h.Send(FuseOpcode.FUSE_READ, 6, Bytes(new fuse_read_in { fh = 1, size = 10 })), Is.Null);
        var unique = _h.LastUnique;
        Parallel.For(0, 16, i => kept!.ReplyData([(byte)i]));
        Assert.That(_h.Sink.Messages, Has.Count.EqualTo(1));
        Assert.That(U64(_h.Sink.Messages[0], 8), Is.EqualTo(unique));
        Assert.That(_h.Sink.Messages[0].Length, Is.EqualTo(17));
    }
}

/// <summary>A bare FuseFileSystem: its defaults.</summary>
public class DefaultFileSystemTests
{
    private Harness _h = null!;

    [SetUp]
    public void SetUp() => _h = new Harness(fs: new BareFs());

    [Test]
    public void Open_DefaultsToFhZero()
    {
        var reply = _h.Send(FuseOpcode.FUSE_OPEN, 2, Bytes(new fuse_open_in { flags = 2 }));
        Assert.That(reply, Is.EqualTo(new Expect(32).Header(0, _h.LastUnique).Buffer));
    }

    [Test]
    public void OpenDir_DefaultsToFhZero()
    {
        var reply = _h.Send(FuseOpcode.FUSE_OPENDIR, 1, Bytes(new fuse_open_in()));
        Assert.That(reply, Is.EqualTo(new Expect(32).Header(0, _h.LastUnique).Buffer));
    }

    [TestCase(0u)]
    [TestCase(1u)]
    public void Poll_DefaultsToDefaultPollMask(uint flags)
    {
        var reply = _h.Send(FuseOpcode.FUSE_POLL, 2, Bytes(new fuse_poll_in { fh = 1, kh = 2, flags = flags, events = 1 }));
        Assert.That(reply, Is.EqualTo(new Expect(24).Header(0, _h.LastUnique).U32(16, 0x145).Buffer));
        Assert.That(FuseFileSystem.FuseDefaultPollMask, Is.EqualTo(0x145u));
    }

    [Test]
    public void Ioctl_DefaultsToEnotty() =>
        _h.AssertError(_h.Send(FuseOpcode.FUSE_IOCTL, 2, Bytes(new fuse_ioctl_in { cmd = 1 })), Errno.ENOTTY);

    [TestCase(FuseOpcode.FUSE_RELEASE)]
    [TestCase(FuseOpcode.FUSE_RELEASEDIR)]
    public void CloseOperations_DefaultToOk(FuseOpcode opcode) => _h.AssertOk(_h.Send(opcode, 2, new byte[24]));

    [Test]
    public void StatFs_DefaultLayout()
    {
        var reply = _h.Send(FuseOpcode.FUSE_STATFS, 1, []);
        // fuse_kstatfs: blocks 0, bfree 8, bavail 16, files 24, ffree 32, bsize 40, namelen 44, frsize 48.
        Assert.That(reply, Is.EqualTo(new Expect(96).Header(0, _h.LastUnique).U32(16 + 40, 4096).U32(16 + 44, 255).U32(16 + 48, 4096).Buffer));
    }

    private static IEnumerable<TestCaseData> EnosysRequests()
    {
        yield return new TestCaseData(FuseOpcode.FUSE_LOOKUP, Z("a"));
        yield return new TestCaseData(FuseOpcode.FUSE_GETATTR, new byte[16]);
        yield return new TestCaseData(FuseOpcode.FUSE_SETATTR, new byte[88]);
        yield return new TestCaseData(FuseOpcode.FUSE_READLINK, Array.Empty<byte>());
        yield return new TestCaseData(FuseOpcode.FUSE_SYMLINK, Cat(Z("a"), Z("b")));
        yield return new TestCaseData(FuseOpcode.FUSE_MKNOD, Cat(new byte[16], Z("a")));
        yield return new TestCaseData(FuseOpcode.FUSE_MKDIR, Cat(new byte[8], Z("a")));
        yield return new TestCaseData(FuseOpcode.FUSE_UNLINK, Z("a"));
        yield return new TestCaseData(FuseOpcode.FUSE_RMDIR, Z("a"));
        yield return new TestCaseData(FuseOpcode.FUSE_RENAME, Cat(new byte[8], Z("a"), Z("b")));
        yield return new TestCaseData(FuseOpcode.FUSE_CREATE, Cat(new byte[16], Z("a")));
        yield return new TestCaseData(FuseOpcode.FUSE_READ, new byte[40]);
        yield return new TestCaseData(FuseOpcode.FUSE_WRITE, new byte[40]);
        yield return new TestCaseData(FuseOpcode.FUSE_FSYNC, new byte[16]);
        // ENOSYS to FLUSH makes the kernel stop sending FLUSH: close() no longer waits for the daemon.
        yield return new TestCaseData(FuseOpcode.FUSE_FLUSH, new byte[24]);
        yield return new TestCaseData(FuseOpcode.FUSE_READDIR, new byte[40]);
        yield return new TestCaseData(FuseOpcode.FUSE_ACCESS, new byte[8]);
    }

    [TestCaseSource(nameof(EnosysRequests))]
    public void Unimplemented_IsEnosys(FuseOpcode opcode, byte[] body) => _h.AssertError(_h.Send(opcode, 1, body), Errno.ENOSYS);
}
