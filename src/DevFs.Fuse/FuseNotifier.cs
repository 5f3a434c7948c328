using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using DevFs.Fuse.Abi;

using static Tmds.Linux.LibC;

namespace DevFs.Fuse;

/// <summary>
/// Sends unsolicited messages to the kernel: cache invalidations and poll wake-ups. Call it from a
/// thread that is not inside a request handler: an invalidation waits for the directory's lock, which
/// a handler of that directory may hold. ENOENT answers mean the kernel had nothing cached: not an error.
/// </summary>
public sealed class FuseNotifier
{
    public static readonly FuseNotifier Disconnected = new(null);
    private readonly IFuseReplySink? _sink;

    public FuseNotifier(IFuseReplySink? sink) => _sink = sink;

    /// <summary>A name in a directory appeared, went, or points elsewhere: drop the kernel's cached entry.</summary>
    public int InvalidateEntry(ulong parent, string name)
    {
        var nameBytes = NameWithNul(name);
        var body = new fuse_notify_inval_entry_out { parent = parent, namelen = (uint)(nameBytes.Length - 1) };
        return Send(FuseNotifyCode.FUSE_NOTIFY_INVAL_ENTRY, body, nameBytes);
    }

    /// <summary>A name went: drop the entry and, if child is the inode cached there, let its dentry go too.</summary>
    public int Delete(ulong parent, ulong child, string name)
    {
        var nameBytes = NameWithNul(name);
        var body = new fuse_notify_delete_out { parent = parent, child = child, namelen = (uint)(nameBytes.Length - 1) };
        return Send(FuseNotifyCode.FUSE_NOTIFY_DELETE, body, nameBytes);
    }

    /// <summary>A node's attributes (and, for len != 0, its cached data) changed.</summary>
    public int InvalidateInode(ulong nodeId, long offset = 0, long length = 0) =>
        Send(FuseNotifyCode.FUSE_NOTIFY_INVAL_INODE, new fuse_notify_inval_inode_out { ino = nodeId, off = offset, len = length }, default);

    /// <summary>Wakes the pollers that POLL registered under kh.</summary>
    public int PollWakeup(ulong kh) =>
        Send(FuseNotifyCode.FUSE_NOTIFY_POLL, new fuse_notify_poll_wakeup_out { kh = kh }, default);

    private int Send<T>(FuseNotifyCode code, in T body, ReadOnlySpan<byte> data) where T : unmanaged
    {
        if (_sink is null)
            return -ENOTCONN;
        var header = new fuse_out_header
        {
            len = (uint)(Unsafe.SizeOf<fuse_out_header>() + Unsafe.SizeOf<T>() + data.Length),
            error = (int)code,
            unique = 0,
        };
        return _sink.Send(MemoryMarshal.AsBytes(new ReadOnlySpan<fuse_out_header>(in header)),
            MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in body)), data);
    }

    private static byte[] NameWithNul(string name)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(name) + 1];
        Encoding.UTF8.GetBytes(name, bytes);
        return bytes;
    }
}
