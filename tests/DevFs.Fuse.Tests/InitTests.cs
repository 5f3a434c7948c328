using System.Runtime.CompilerServices;
using DevFs.Fuse.Abi;
using Microsoft.Extensions.Logging.Abstractions;
using static DevFs.Fuse.Tests.Wire;

namespace DevFs.Fuse.Tests;

public class InitTests
{
    [Test]
    public void Init_NegotiatesVersionSizesAndFlagSubset()
    {
        var h = new Harness(init: false);
        var reply = h.Send(FuseOpcode.FUSE_INIT, 0, Bytes(ModernInit(minor: 40)));

        Assert.That(reply, Is.Not.Null);
        Assert.That(reply!.Length, Is.EqualTo(16 + 64));
        Assert.That(U32(reply, 0), Is.EqualTo(80u), "out header len");
        Assert.That(I32(reply, 4), Is.Zero, "error");
        Assert.That(U64(reply, 8), Is.EqualTo(h.LastUnique), "unique");
        // fuse_init_out: major 0, minor 4, max_readahead 8, flags 12, max_background 16, congestion 18,
        // max_write 20, time_gran 24, max_pages 28, map_alignment 30, flags2 32.
        Assert.That(U32(reply, 16 + 0), Is.EqualTo(7u), "major");
        Assert.That(U32(reply, 16 + 4), Is.EqualTo(38u), "minor = min(kernel 40, ours 38)");
        Assert.That(U32(reply, 16 + 8), Is.EqualTo(131072u), "max_readahead echoes the kernel's");
        var flags = (FuseInitFlags)(U32(reply, 16 + 12) | ((ulong)U32(reply, 16 + 32) << 32));
        Assert.That(flags.HasFlag(FuseInitFlags.FUSE_WRITEBACK_CACHE), Is.False, "never WRITEBACK_CACHE");
        Assert.That(flags & ~DefaultKernelFlags, Is.EqualTo(FuseInitFlags.None), "only flags the kernel offered");
        Assert.That(flags.HasFlag(FuseInitFlags.FUSE_MAX_PAGES));
        Assert.That(flags.HasFlag(FuseInitFlags.FUSE_BIG_WRITES));
        Assert.That(flags.HasFlag(FuseInitFlags.FUSE_DO_READDIRPLUS));
        Assert.That(flags.HasFlag(FuseInitFlags.FUSE_POSIX_LOCKS), Is.False, "not implemented, not asked for");
        Assert.That(flags.HasFlag(FuseInitFlags.FUSE_SECURITY_CTX), Is.False);
        Assert.That(U32(reply, 16 + 20), Is.EqualTo(Harness.MaxPages * 4096), "max_write = max_pages * 4096");
        Assert.That(U16(reply, 16 + 28), Is.EqualTo((ushort)Harness.MaxPages), "max_pages");
        Assert.That(reply.AsSpan(16 + 36).ToArray(), Is.All.EqualTo((byte)0), "unused is zero");

        Assert.That(h.Dispatcher.Connection, Is.Not.Null);
        Assert.That(h.Dispatcher.Connection!.MaxWrite, Is.EqualTo(Harness.MaxWrite));
        Assert.That(h.Fs.Connection, Is.EqualTo(h.Dispatcher.Connection), "Initialized was called with the settled connection");
        Assert.That(h.Fs.Notifier, Is.Not.Null);
    }

    [Test]
    public void Init_OlderKernelMinorIsKept()
    {
        var h = new Harness(init: false);
        var reply = h.Send(FuseOpcode.FUSE_INIT, 0, Bytes(ModernInit(minor: 36)));
        Assert.That(U32(reply!, 16 + 4), Is.EqualTo(36u));
    }

    [Test]
    public void Init_WithoutMaxPagesFallsBackTo32Pages()
    {
        var h = new Harness(init: false);
        var reply = h.Send(FuseOpcode.FUSE_INIT, 0,
            Bytes(ModernInit(flags: FuseInitFlags.FUSE_BIG_WRITES | FuseInitFlags.FUSE_ASYNC_READ)));
        Assert.That((FuseInitFlags)U32(reply!, 16 + 12), Is.EqualTo(FuseInitFlags.FUSE_BIG_WRITES | FuseInitFlags.FUSE_ASYNC_READ));
        Assert.That(U32(reply!, 16 + 20), Is.EqualTo(32u * 4096));
    }

    [Test]
    public void Init_Flags2IgnoredWithoutInitExt()
    {
        var h = new Harness(init: false);
        var init = ModernInit(flags: FuseInitFlags.FUSE_MAX_PAGES);
        init.flags2 = 0xFFFF_FFFF;
        var reply = h.Send(FuseOpcode.FUSE_INIT, 0, Bytes(init));
        Assert.That(U32(reply!, 16 + 12), Is.EqualTo((uint)FuseInitFlags.FUSE_MAX_PAGES));
        Assert.That(U32(reply!, 16 + 32), Is.Zero);
    }

    [Test]
    public void Init_Legacy16ByteBodyWorks()
    {
        var h = new Harness(init: false);
        var legacy = Bytes(ModernInit(minor: 31, flags: FuseInitFlags.FUSE_MAX_PAGES | FuseInitFlags.FUSE_BIG_WRITES))[..16];
        var reply = h.Send(FuseOpcode.FUSE_INIT, 0, legacy);
        Assert.That(reply!.Length, Is.EqualTo(80));
        Assert.That(I32(reply, 4), Is.Zero);
        Assert.That(U32(reply, 16 + 4), Is.EqualTo(31u));
        Assert.That(U32(reply, 16 + 20), Is.EqualTo(Harness.MaxWrite));
        Assert.That(h.Dispatcher.Connection, Is.Not.Null);
    }

    [TestCase(0)]
    [TestCase(8)]
    [TestCase(15)]
    public void Init_BodyShorterThan16_IsEinval(int length)
    {
        var h = new Harness(init: false);
        var reply = h.Send(FuseOpcode.FUSE_INIT, 0, Bytes(ModernInit())[..length]);
        h.AssertError(reply, Errno.EINVAL);
        Assert.That(h.Dispatcher.Connection, Is.Null);
        Assert.That(h.Dispatcher.MalformedRequests, Is.EqualTo(1));
    }

    [Test]
    public void Init_SecondInitIsEio_AndConnectionUnchanged()
    {
        var h = new Harness();
        var first = h.Dispatcher.Connection;
        var reply = h.Send(FuseOpcode.FUSE_INIT, 0, Bytes(ModernInit(minor: 30)));
        h.AssertError(reply, Errno.EIO);
        Assert.That(h.Dispatcher.Connection, Is.SameAs(first));
    }

    [TestCase(FuseOpcode.FUSE_LOOKUP)]
    [TestCase(FuseOpcode.FUSE_GETATTR)]
    [TestCase(FuseOpcode.FUSE_STATFS)]
    [TestCase(FuseOpcode.FUSE_DESTROY)]
    [TestCase(FuseOpcode.FUSE_INTERRUPT)]
    [TestCase(FuseOpcode.FUSE_LINK)]
    public void RequestBeforeInit_IsEio(FuseOpcode opcode)
    {
        var h = new Harness(init: false);
        var body = opcode == FuseOpcode.FUSE_LOOKUP ? Z("x") : new byte[16];
        var reply = h.Send(opcode, 1, body);
        h.AssertError(reply, Errno.EIO);
        Assert.That(h.Fs.Calls, Is.Empty);
        Assert.That(h.Fs.DestroyedCount, Is.Zero);
    }

    [Test]
    public void ForgetBeforeInit_GetsNoReply()
    {
        var h = new Harness(init: false);
        Assert.That(h.Send(FuseOpcode.FUSE_FORGET, 5, Bytes(new fuse_forget_in { nlookup = 1 })), Is.Null);
        Assert.That(h.Send(FuseOpcode.FUSE_BATCH_FORGET, 0,
            Cat(Bytes(new fuse_batch_forget_in { count = 1 }), Bytes(new fuse_forget_one { nodeid = 5, nlookup = 1 }))), Is.Null);
        Assert.That(h.Fs.Forgets, Is.Empty);
        Assert.That(h.Sink.Messages, Is.Empty);
    }

    [Test]
    public void Init_OtherMajorAnswersOurVersion_WithoutConnecting()
    {
        var h = new Harness(init: false);
        var init = ModernInit();
        init.major = 8;
        var reply = h.Send(FuseOpcode.FUSE_INIT, 0, Bytes(init));
        Assert.That(I32(reply!, 4), Is.Zero);
        Assert.That(U32(reply!, 16), Is.EqualTo(7u));
        Assert.That(U32(reply!, 20), Is.EqualTo(38u));
        Assert.That(h.Dispatcher.Connection, Is.Null);
    }
}

public class LayoutTests
{
    private static IEnumerable<TestCaseData> Sizes()
    {
        // Sizes printed by sizeof() over /usr/include/linux/fuse.h (7.38) with gcc on x86-64.
        yield return Case<fuse_in_header>(40);
        yield return Case<fuse_out_header>(16);
        yield return Case<fuse_attr>(88);
        yield return Case<fuse_entry_out>(128);
        yield return Case<fuse_attr_out>(104);
        yield return Case<fuse_setattr_in>(88);
        yield return Case<fuse_init_in>(64);
        yield return Case<fuse_init_out>(64);
        yield return Case<fuse_read_in>(40);
        yield return Case<fuse_write_in>(40);
        yield return Case<fuse_write_out>(8);
        yield return Case<fuse_open_in>(8);
        yield return Case<fuse_open_out>(16);
        yield return Case<fuse_ioctl_in>(32);
        yield return Case<fuse_ioctl_out>(16);
        yield return Case<fuse_poll_in>(24);
        yield return Case<fuse_poll_out>(8);
        yield return Case<fuse_kstatfs>(80);
        yield return Case<fuse_statfs_out>(80);
        yield return Case<fuse_dirent>(24);
        yield return Case<fuse_direntplus>(152);
        yield return Case<fuse_mknod_in>(16);
        yield return Case<fuse_mkdir_in>(8);
        yield return Case<fuse_create_in>(16);
        yield return Case<fuse_release_in>(24);
        yield return Case<fuse_flush_in>(24);
        yield return Case<fuse_fsync_in>(16);
        yield return Case<fuse_access_in>(8);
        yield return Case<fuse_getattr_in>(16);
        yield return Case<fuse_rename_in>(8);
        yield return Case<fuse_rename2_in>(16);
        yield return Case<fuse_interrupt_in>(8);
        yield return Case<fuse_forget_in>(8);
        yield return Case<fuse_notify_inval_entry_out>(16);
        yield return Case<fuse_notify_delete_out>(24);
        yield return Case<fuse_notify_inval_inode_out>(24);
        yield return Case<fuse_notify_poll_wakeup_out>(8);
        yield return Case<fuse_batch_forget_in>(8);
        yield return Case<fuse_forget_one>(16);
    }

    private static TestCaseData Case<T>(int size) where T : unmanaged =>
        new TestCaseData(Unsafe.SizeOf<T>(), size).SetName("SizeOf_" + typeof(T).Name);

    [TestCaseSource(nameof(Sizes))]
    public void StructSizeMatchesKernel(int actual, int expected) => Assert.That(actual, Is.EqualTo(expected));

    [Test]
    public unsafe void FieldOffsetsMatchKernel()
    {
        var attr = new fuse_attr();
        Assert.That((byte*)&attr.blksize - (byte*)&attr, Is.EqualTo(80));
        Assert.That((byte*)&attr.mode - (byte*)&attr, Is.EqualTo(60));
        var entry = new fuse_entry_out();
        Assert.That((byte*)&entry.attr - (byte*)&entry, Is.EqualTo(40));
        var init = new fuse_init_out();
        Assert.That((byte*)&init.max_pages - (byte*)&init, Is.EqualTo(28));
        Assert.That((byte*)&init.flags2 - (byte*)&init, Is.EqualTo(32));
        var header = new fuse_in_header();
        Assert.That((byte*)&header.total_extlen - (byte*)&header, Is.EqualTo(36));
        var setattr = new fuse_setattr_in();
        Assert.That((byte*)&setattr.mode - (byte*)&setattr, Is.EqualTo(68));
        Assert.That((byte*)&setattr.uid - (byte*)&setattr, Is.EqualTo(76));
    }

    [Test]
    public void DispatcherCanBeBuiltWithoutNotifier()
    {
        var fs = new RecordingFs();
        var d = new FuseDispatcher(fs, new FuseSessionOptions { MaxPages = 16 }, NullLogger.Instance, null);
        var sink = new RecordingSink();
        d.Dispatch(Request(FuseOpcode.FUSE_INIT, 2, 0, Bytes(ModernInit())), sink);
        Assert.That(fs.Notifier, Is.SameAs(FuseNotifier.Disconnected));
        Assert.That(fs.Notifier!.PollWakeup(1), Is.EqualTo(-107), "ENOTCONN");
    }
}
