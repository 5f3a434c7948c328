using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using DevFs.Fuse.Abi;

using static Tmds.Linux.LibC;

namespace DevFs.Fuse;

/// <summary>
/// One request from the kernel and the token to answer it. Exactly one Reply* call answers it;
/// it may come later, from any thread (a blocking read answers when data arrives). Further replies
/// are ignored, so a late reply after an interrupt cannot corrupt the channel.
/// </summary>
public sealed class FuseRequest
{
    private readonly IFuseReplySink _sink;
    private readonly FuseInterruptTable? _interrupts;
    private int _replied;
    private Action? _onInterrupt;

    internal FuseRequest(IFuseReplySink sink, in fuse_in_header header, FuseInterruptTable? interrupts)
    {
        _sink = sink;
        _interrupts = interrupts;
        Unique = header.unique;
        NodeId = header.nodeid;
        Opcode = (FuseOpcode)header.opcode;
        Caller = new FuseCaller(header.uid, header.gid, header.pid);
    }

    public ulong Unique { get; }
    public ulong NodeId { get; }
    public FuseOpcode Opcode { get; }

    /// <summary>The calling process's ids as the kernel gives them (in the mount's user namespace).</summary>
    public FuseCaller Caller { get; }

    public bool IsAnswered => Volatile.Read(ref _replied) != 0;

    /// <summary>True once the kernel sent INTERRUPT for this request.</summary>
    public bool IsInterrupted { get; private set; }

    /// <summary>
    /// Asks to be told when the caller is interrupted (a signal while it waits). The callback runs on
    /// a worker thread and should answer the request, usually with EINTR. If the interrupt came
    /// already, the callback runs at once.
    /// </summary>
    public void OnInterrupt(Action callback)
    {
        _onInterrupt = callback;
        if (_interrupts is not null && _interrupts.Register(this))
            Interrupt();
    }

    internal void Interrupt()
    {
        IsInterrupted = true;
        var callback = Interlocked.Exchange(ref _onInterrupt, null);
        callback?.Invoke();
    }

    public void ReplyError(int errno)
    {
        if (errno < 0)
            errno = -errno;
        // -int.MinValue overflows and stays negative: treat it like any other out-of-range value.
        if (errno <= 0 || errno > FuseProtocol.MaxErrno)
            errno = EIO;
        SendReply(-errno, default, default);
    }

    public void ReplyOk() => SendReply(0, default, default);

    public void ReplyEntry(in fuse_entry_out entry) => SendStruct(entry);

    public void ReplyAttr(in fuse_attr attr, TimeSpan validFor)
    {
        var (sec, nsec) = FuseTime.Split(validFor);
        var reply = new fuse_attr_out { attr_valid = sec, attr_valid_nsec = nsec, attr = attr };
        SendStruct(reply);
    }

    public void ReplyOpen(ulong fh, FuseOpenFlags flags) =>
        SendStruct(new fuse_open_out { fh = fh, open_flags = (uint)flags });

    public void ReplyCreate(in fuse_entry_out entry, ulong fh, FuseOpenFlags flags)
    {
        Span<byte> body = stackalloc byte[Unsafe.SizeOf<fuse_entry_out>() + Unsafe.SizeOf<fuse_open_out>()];
        MemoryMarshal.Write(body, in entry);
        var open = new fuse_open_out { fh = fh, open_flags = (uint)flags };
        MemoryMarshal.Write(body[Unsafe.SizeOf<fuse_entry_out>()..], in open);
        SendReply(0, body, default);
    }

    public void ReplyData(ReadOnlySpan<byte> data) => SendReply(0, default, data);

    public void ReplyWrite(uint size) => SendStruct(new fuse_write_out { size = size });

    public void ReplyReadLink(string target) => ReplyData(Encoding.UTF8.GetBytes(target));

    public void ReplyStatFs(in fuse_kstatfs st) => SendStruct(new fuse_statfs_out { st = st });

    public void ReplyPoll(uint revents) => SendStruct(new fuse_poll_out { revents = revents });

    /// <summary>Answers a restricted ioctl: the result, and the bytes the kernel copies back to arg.</summary>
    public void ReplyIoctl(int result, ReadOnlySpan<byte> output)
    {
        var reply = new fuse_ioctl_out { result = result };
        SendReply(0, MemoryMarshal.AsBytes(new ReadOnlySpan<fuse_ioctl_out>(in reply)), output);
    }

    internal void ReplyInit(in fuse_init_out init) => SendStruct(init);

    private void SendStruct<T>(in T body) where T : unmanaged =>
        SendReply(0, MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in body)), default);

    private void SendReply(int error, ReadOnlySpan<byte> body, ReadOnlySpan<byte> data)
    {
        if (Interlocked.Exchange(ref _replied, 1) != 0)
            return;
        _interrupts?.Unregister(this);
        var header = new fuse_out_header
        {
            len = (uint)(Unsafe.SizeOf<fuse_out_header>() + body.Length + data.Length),
            error = error,
            unique = Unique,
        };
        // ENOENT here means the kernel gave up on the request (interrupted, or the mount went away):
        // nothing waits for the answer, so there is nothing to do about it.
        _sink.Send(MemoryMarshal.AsBytes(new ReadOnlySpan<fuse_out_header>(in header)), body, data);
    }
}

/// <summary>Who sent a request: the kernel's view of the calling task's ids.</summary>
public readonly record struct FuseCaller(uint Uid, uint Gid, uint Pid);

/// <summary>FUSE gives timeouts as whole seconds plus nanoseconds (entry_valid, attr_valid and their _nsec).</summary>
public static class FuseTime
{
    public static (ulong Seconds, uint Nanoseconds) Split(TimeSpan span)
    {
        if (span <= TimeSpan.Zero)
            return (0, 0);
        var ticks = span.Ticks;
        return ((ulong)(ticks / TimeSpan.TicksPerSecond), (uint)(ticks % TimeSpan.TicksPerSecond * 100));
    }
}
