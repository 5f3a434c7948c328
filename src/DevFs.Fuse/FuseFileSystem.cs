using DevFs.Fuse.Abi;

using static Tmds.Linux.LibC;

namespace DevFs.Fuse;

/// <summary>
/// A filesystem served over FUSE. Each operation gets the request token and its decoded arguments
/// and must answer through the token, now or later. Operations not overridden answer ENOSYS, except
/// OPEN and POLL: ENOSYS to OPEN would mean "no open needed" and to POLL disables poll for the whole
/// connection, so those default to success and "always ready".
/// Spans passed in are valid only during the call; copy what is kept for a later answer.
/// </summary>
public abstract class FuseFileSystem
{
    /// <summary>Called once INIT is negotiated, before any other request.</summary>
    public virtual void Initialized(FuseConnectionInfo connection, FuseNotifier notifier) { }

    public virtual void Lookup(FuseRequest request, ulong parent, string name) => request.ReplyError(ENOSYS);

    /// <summary>The kernel dropped nlookup references to a node; no answer is sent.</summary>
    public virtual void Forget(ulong nodeId, ulong nlookup) { }

    public virtual void GetAttr(FuseRequest request, ulong nodeId, ulong? fh) => request.ReplyError(ENOSYS);

    public virtual void SetAttr(FuseRequest request, ulong nodeId, in fuse_setattr_in attr) => request.ReplyError(ENOSYS);

    public virtual void ReadLink(FuseRequest request, ulong nodeId) => request.ReplyError(ENOSYS);

    public virtual void Symlink(FuseRequest request, ulong parent, string name, string target) => request.ReplyError(ENOSYS);

    public virtual void MkNod(FuseRequest request, ulong parent, string name, uint mode, uint rdev, uint umask) => request.ReplyError(ENOSYS);

    public virtual void MkDir(FuseRequest request, ulong parent, string name, uint mode, uint umask) => request.ReplyError(ENOSYS);

    public virtual void Unlink(FuseRequest request, ulong parent, string name) => request.ReplyError(ENOSYS);

    public virtual void RmDir(FuseRequest request, ulong parent, string name) => request.ReplyError(ENOSYS);

    /// <summary>RENAME and RENAME2; flags are RENAME_NOREPLACE / RENAME_EXCHANGE (0 for plain RENAME).</summary>
    public virtual void Rename(FuseRequest request, ulong parent, string name, ulong newParent, string newName, uint flags) => request.ReplyError(ENOSYS);

    public virtual void Open(FuseRequest request, ulong nodeId, int flags) => request.ReplyOpen(0, FuseOpenFlags.None);

    public virtual void Create(FuseRequest request, ulong parent, string name, uint mode, uint umask, int flags) => request.ReplyError(ENOSYS);

    /// <summary>flags: the open flags of the file (fuse_read_in.flags), O_NONBLOCK among them.</summary>
    public virtual void Read(FuseRequest request, ulong nodeId, ulong fh, ulong offset, uint size, int flags) => request.ReplyError(ENOSYS);

    public virtual void Write(FuseRequest request, ulong nodeId, ulong fh, ulong offset, ReadOnlySpan<byte> data, int flags) => request.ReplyError(ENOSYS);

    /// <summary>
    /// FLUSH (every close() of a descriptor). The default answers ENOSYS: the kernel then records no_flush for
    /// the connection, stops sending FLUSH and treats close() as successful, so close() no longer waits for a
    /// round trip to the daemon. Override only to do real work at close() (the override then sees every FLUSH).
    /// </summary>
    public virtual void Flush(FuseRequest request, ulong nodeId, ulong fh) => request.ReplyError(ENOSYS);

    public virtual void Release(FuseRequest request, ulong nodeId, ulong fh, int flags) => request.ReplyOk();

    public virtual void Fsync(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly) => request.ReplyError(ENOSYS);

    public virtual void OpenDir(FuseRequest request, ulong nodeId, int flags) => request.ReplyOpen(0, FuseOpenFlags.None);

    /// <summary>READDIR (plus = false) and READDIRPLUS (plus = true); fill a FuseDirectoryBuffer of size bytes.</summary>
    public virtual void ReadDir(FuseRequest request, ulong nodeId, ulong fh, ulong offset, uint size, bool plus) => request.ReplyError(ENOSYS);

    public virtual void ReleaseDir(FuseRequest request, ulong nodeId, ulong fh) => request.ReplyOk();

    public virtual void StatFs(FuseRequest request, ulong nodeId) => request.ReplyStatFs(new fuse_kstatfs { bsize = 4096, frsize = 4096, namelen = 255 });

    public virtual void Access(FuseRequest request, ulong nodeId, uint mask) => request.ReplyError(ENOSYS);

    /// <summary>A restricted ioctl: input holds _IOC_SIZE(cmd) bytes when the command writes, outputSize is what may come back.</summary>
    public virtual void Ioctl(FuseRequest request, ulong nodeId, ulong fh, FuseIoctlFlags flags, uint cmd, ulong arg, ReadOnlySpan<byte> input, uint outputSize) => request.ReplyError(ENOTTY);

    /// <summary>POLL: answer the ready events now; if scheduleNotify, wake kh through FuseNotifier.PollWakeup later.</summary>
    public virtual void Poll(FuseRequest request, ulong nodeId, ulong fh, ulong kh, bool scheduleNotify, uint events) =>
        request.ReplyPoll(FuseDefaultPollMask);

    /// <summary>The kernel's DEFAULT_POLLMASK: POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM.</summary>
    public const uint FuseDefaultPollMask = 0x0001 | 0x0004 | 0x0040 | 0x0100;

    /// <summary>The connection ended (unmounted, or DESTROY).</summary>
    public virtual void Destroyed() { }
}

/// <summary>What INIT settled with the kernel.</summary>
public sealed record FuseConnectionInfo(uint Major, uint Minor, FuseInitFlags Flags, uint MaxWrite, uint MaxPages);
