using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using DevFs.Fuse.Abi;
using Microsoft.Extensions.Logging;

using static Tmds.Linux.LibC;

namespace DevFs.Fuse;

/// <summary>
/// Decodes one request read from /dev/fuse, checks its sizes, and hands it to the filesystem.
/// INIT, FORGET, BATCH_FORGET, INTERRUPT and DESTROY are handled here. A request that is too short
/// for its opcode, or whose names are not NUL-terminated UTF-8, is answered EINVAL; an unknown opcode
/// ENOSYS; a handler that throws, EIO. Nothing a request holds can end the loop.
/// </summary>
public sealed class FuseDispatcher
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly FuseFileSystem _fs;
    private readonly FuseSessionOptions _options;
    private readonly ILogger _logger;
    private readonly FuseInterruptTable _interrupts = new();
    private readonly FuseNotifier? _notifier;
    private FuseConnectionInfo? _connection;

    public FuseDispatcher(FuseFileSystem fs, FuseSessionOptions options, ILogger logger, FuseNotifier? notifier)
    {
        _fs = fs;
        _options = options;
        _logger = logger;
        _notifier = notifier;
    }

    /// <summary>What INIT settled; null until then.</summary>
    public FuseConnectionInfo? Connection => Volatile.Read(ref _connection);

    /// <summary>True once DESTROY arrived: the connection is over.</summary>
    public bool Destroyed { get; private set; }

    /// <summary>Counts requests refused as malformed, for status and tests.</summary>
    public long MalformedRequests => Interlocked.Read(ref _malformed);
    private long _malformed;

    public void Dispatch(ReadOnlySpan<byte> message, IFuseReplySink sink)
    {
        if (message.Length < Unsafe.SizeOf<fuse_in_header>())
        {
            // Without a whole header there is no unique to answer to.
            CountMalformed("request of {Length} bytes is shorter than fuse_in_header", message.Length);
            return;
        }
        var header = MemoryMarshal.Read<fuse_in_header>(message);
        var opcode = (FuseOpcode)header.opcode;
        var isForget = opcode is FuseOpcode.FUSE_FORGET or FuseOpcode.FUSE_BATCH_FORGET;
        var request = new FuseRequest(sink, header, _interrupts);
        var extensions = header.total_extlen * 8;
        if (header.len != message.Length || extensions > message.Length - Unsafe.SizeOf<fuse_in_header>())
        {
            CountMalformed("request {Unique} says {Declared} bytes but {Actual} arrived", header.unique, header.len, message.Length);
            if (!isForget)
                request.ReplyError(EINVAL);
            return;
        }
        var body = message[Unsafe.SizeOf<fuse_in_header>()..(message.Length - extensions)];
        if (_connection is null && opcode != FuseOpcode.FUSE_INIT)
        {
            if (!isForget)
                request.ReplyError(EIO);
            return;
        }
        try
        {
            if (!Decode(request, opcode, header.nodeid, body))
            {
                CountMalformed("malformed {Opcode} request {Unique} ({Length} bytes of arguments)", opcode, header.unique, body.Length);
                if (!isForget)
                    request.ReplyError(EINVAL);
            }
        }
        catch (Exception e)
        {
            _logger.LogError(e, "{Opcode} on node {Node} failed; answering EIO", opcode, header.nodeid);
            if (!isForget)
                request.ReplyError(EIO);
        }
    }

    private void CountMalformed(string message, params object[] args)
    {
        Interlocked.Increment(ref _malformed);
#pragma warning disable CA2254 // the templates are constants of this class
        _logger.LogWarning("Dropped a malformed FUSE request: " + message, args);
#pragma warning restore CA2254
    }

    /// <summary>Decodes the arguments and calls the filesystem; false when the arguments are malformed.</summary>
    private bool Decode(FuseRequest r, FuseOpcode opcode, ulong node, ReadOnlySpan<byte> body)
    {
        switch (opcode)
        {
            case FuseOpcode.FUSE_INIT:
                return HandleInit(r, body);
            case FuseOpcode.FUSE_DESTROY:
                Destroyed = true;
                _fs.Destroyed();
                r.ReplyOk();
                return true;
            case FuseOpcode.FUSE_INTERRUPT:
                if (!TryRead(body, out fuse_interrupt_in interrupt, out _))
                    return false;
                // INTERRUPT itself gets no reply; the interrupted request answers (EINTR or its result).
                _interrupts.Interrupt(interrupt.unique);
                return true;
            case FuseOpcode.FUSE_FORGET:
                if (!TryRead(body, out fuse_forget_in forget, out _))
                    return false;
                _fs.Forget(node, forget.nlookup);
                return true;
            case FuseOpcode.FUSE_BATCH_FORGET:
                return HandleBatchForget(body);
            case FuseOpcode.FUSE_LOOKUP:
                if (!TryReadName(body, out var lookupName, out _))
                    return false;
                _fs.Lookup(r, node, lookupName);
                return true;
            case FuseOpcode.FUSE_GETATTR:
                if (!TryRead(body, out fuse_getattr_in getattr, out _))
                    return false;
                _fs.GetAttr(r, node, (getattr.getattr_flags & FuseFlagBits.FUSE_GETATTR_FH) != 0 ? getattr.fh : null);
                return true;
            case FuseOpcode.FUSE_SETATTR:
                if (!TryRead(body, out fuse_setattr_in setattr, out _))
                    return false;
                _fs.SetAttr(r, node, setattr);
                return true;
            case FuseOpcode.FUSE_READLINK:
                _fs.ReadLink(r, node);
                return true;
            case FuseOpcode.FUSE_SYMLINK:
                if (!TryReadName(body, out var linkName, out var afterName) || !TryReadString(afterName, out var target, out _))
                    return false;
                _fs.Symlink(r, node, linkName, target);
                return true;
            case FuseOpcode.FUSE_MKNOD:
                if (!TryRead(body, out fuse_mknod_in mknod, out var mknodRest) || !TryReadName(mknodRest, out var mknodName, out _))
                    return false;
                _fs.MkNod(r, node, mknodName, mknod.mode, mknod.rdev, mknod.umask);
                return true;
            case FuseOpcode.FUSE_MKDIR:
                if (!TryRead(body, out fuse_mkdir_in mkdir, out var mkdirRest) || !TryReadName(mkdirRest, out var mkdirName, out _))
                    return false;
                _fs.MkDir(r, node, mkdirName, mkdir.mode, mkdir.umask);
                return true;
            case FuseOpcode.FUSE_UNLINK:
                if (!TryReadName(body, out var unlinkName, out _))
                    return false;
                _fs.Unlink(r, node, unlinkName);
                return true;
            case FuseOpcode.FUSE_RMDIR:
                if (!TryReadName(body, out var rmdirName, out _))
                    return false;
                _fs.RmDir(r, node, rmdirName);
                return true;
            case FuseOpcode.FUSE_RENAME:
                if (!TryRead(body, out fuse_rename_in rename, out var renameRest) ||
                    !TryReadName(renameRest, out var oldName, out var newRest) || !TryReadName(newRest, out var newName, out _))
                    return false;
                _fs.Rename(r, node, oldName, rename.newdir, newName, 0);
                return true;
            case FuseOpcode.FUSE_RENAME2:
                if (!TryRead(body, out fuse_rename2_in rename2, out var rename2Rest) ||
                    !TryReadName(rename2Rest, out var oldName2, out var newRest2) || !TryReadName(newRest2, out var newName2, out _))
                    return false;
                _fs.Rename(r, node, oldName2, rename2.newdir, newName2, rename2.flags);
                return true;
            case FuseOpcode.FUSE_OPEN:
                if (!TryRead(body, out fuse_open_in open, out _))
                    return false;
                _fs.Open(r, node, (int)open.flags);
                return true;
            case FuseOpcode.FUSE_CREATE:
                if (!TryRead(body, out fuse_create_in create, out var createRest) || !TryReadName(createRest, out var createName, out _))
                    return false;
                _fs.Create(r, node, createName, create.mode, create.umask, (int)create.flags);
                return true;
            case FuseOpcode.FUSE_READ:
                if (!TryRead(body, out fuse_read_in read, out _) || read.size > MaxIoSize)
                    return false;
                _fs.Read(r, node, read.fh, read.offset, read.size, (int)read.flags);
                return true;
            case FuseOpcode.FUSE_WRITE:
                if (!TryRead(body, out fuse_write_in write, out var data) || write.size != data.Length || write.size > MaxIoSize)
                    return false;
                _fs.Write(r, node, write.fh, write.offset, data, (int)write.flags);
                return true;
            case FuseOpcode.FUSE_FLUSH:
                if (!TryRead(body, out fuse_flush_in flush, out _))
                    return false;
                _fs.Flush(r, node, flush.fh);
                return true;
            case FuseOpcode.FUSE_RELEASE:
                if (!TryRead(body, out fuse_release_in release, out _))
                    return false;
                _fs.Release(r, node, release.fh, (int)release.flags);
                return true;
            case FuseOpcode.FUSE_FSYNC:
                if (!TryRead(body, out fuse_fsync_in fsync, out _))
                    return false;
                _fs.Fsync(r, node, fsync.fh, (fsync.fsync_flags & FuseFlagBits.FUSE_FSYNC_FDATASYNC) != 0);
                return true;
            case FuseOpcode.FUSE_OPENDIR:
                if (!TryRead(body, out fuse_open_in opendir, out _))
                    return false;
                _fs.OpenDir(r, node, (int)opendir.flags);
                return true;
            case FuseOpcode.FUSE_READDIR:
            case FuseOpcode.FUSE_READDIRPLUS:
                if (!TryRead(body, out fuse_read_in readdir, out _) || readdir.size > MaxIoSize)
                    return false;
                _fs.ReadDir(r, node, readdir.fh, readdir.offset, readdir.size, opcode == FuseOpcode.FUSE_READDIRPLUS);
                return true;
            case FuseOpcode.FUSE_RELEASEDIR:
                if (!TryRead(body, out fuse_release_in releasedir, out _))
                    return false;
                _fs.ReleaseDir(r, node, releasedir.fh);
                return true;
            case FuseOpcode.FUSE_STATFS:
                _fs.StatFs(r, node);
                return true;
            case FuseOpcode.FUSE_ACCESS:
                if (!TryRead(body, out fuse_access_in access, out _))
                    return false;
                _fs.Access(r, node, access.mask);
                return true;
            case FuseOpcode.FUSE_IOCTL:
                if (!TryRead(body, out fuse_ioctl_in ioctl, out var ioctlData) || ioctl.in_size != ioctlData.Length ||
                    ioctl.in_size > MaxIoSize || ioctl.out_size > MaxIoSize)
                    return false;
                _fs.Ioctl(r, node, ioctl.fh, (FuseIoctlFlags)ioctl.flags, ioctl.cmd, ioctl.arg, ioctlData, ioctl.out_size);
                return true;
            case FuseOpcode.FUSE_POLL:
                if (!TryRead(body, out fuse_poll_in poll, out _))
                    return false;
                _fs.Poll(r, node, poll.fh, poll.kh, (poll.flags & FuseFlagBits.FUSE_POLL_SCHEDULE_NOTIFY) != 0, poll.events);
                return true;
            default:
                r.ReplyError(ENOSYS);
                return true;
        }
    }

    /// <summary>The largest READ, WRITE or ioctl payload this connection accepts (max_write).</summary>
    private uint MaxIoSize => _connection?.MaxWrite ?? 0;

    private bool HandleInit(FuseRequest r, ReadOnlySpan<byte> body)
    {
        // Kernels before 7.36 send the first four fields only.
        const int legacyInitSize = 16;
        if (body.Length < legacyInitSize)
            return false;
        fuse_init_in init = default;
        body[..Math.Min(body.Length, Unsafe.SizeOf<fuse_init_in>())].CopyTo(MemoryMarshal.AsBytes(new Span<fuse_init_in>(ref init)));
        if (_connection is not null)
        {
            r.ReplyError(EIO);
            return true;
        }
        if (init.major != FuseProtocol.KernelVersion)
        {
            // A newer major: answer with ours and the kernel resends INIT in our version, or gives up.
            _logger.LogError("Kernel speaks FUSE {Major}.{Minor}; this daemon speaks {Ours}.x", init.major, init.minor, FuseProtocol.KernelVersion);
            r.ReplyInit(new fuse_init_out { major = FuseProtocol.KernelVersion, minor = FuseProtocol.KernelMinorVersion });
            return true;
        }
        var kernelFlags = (FuseInitFlags)init.flags;
        if ((kernelFlags & FuseInitFlags.FUSE_INIT_EXT) != 0)
            kernelFlags |= (FuseInitFlags)((ulong)init.flags2 << 32);
        var wanted = FuseInitFlags.FUSE_ASYNC_READ | FuseInitFlags.FUSE_BIG_WRITES | FuseInitFlags.FUSE_ATOMIC_O_TRUNC |
                     FuseInitFlags.FUSE_DO_READDIRPLUS | FuseInitFlags.FUSE_PARALLEL_DIROPS | FuseInitFlags.FUSE_MAX_PAGES |
                     FuseInitFlags.FUSE_CACHE_SYMLINKS | FuseInitFlags.FUSE_HAS_IOCTL_DIR | FuseInitFlags.FUSE_INIT_EXT;
        var agreed = kernelFlags & wanted;
        var minor = Math.Min(init.minor, FuseProtocol.KernelMinorVersion);
        var maxPages = (agreed & FuseInitFlags.FUSE_MAX_PAGES) != 0 ? _options.MaxPages : 32u;
        var maxWrite = maxPages * 4096;
        var reply = new fuse_init_out
        {
            major = FuseProtocol.KernelVersion,
            minor = minor,
            max_readahead = init.max_readahead,
            flags = (uint)agreed,
            flags2 = (uint)((ulong)agreed >> 32),
            max_background = 64,
            congestion_threshold = 48,
            max_write = maxWrite,
            time_gran = 1,
            max_pages = (ushort)maxPages,
        };
        var connection = new FuseConnectionInfo(init.major, minor, agreed, maxWrite, maxPages);
        _fs.Initialized(connection, _notifier ?? FuseNotifier.Disconnected);
        Volatile.Write(ref _connection, connection);
        r.ReplyInit(reply);
        _logger.LogDebug("FUSE {Major}.{Minor} negotiated, flags {Flags}, max_write {MaxWrite}", init.major, minor, agreed, maxWrite);
        return true;
    }

    private bool HandleBatchForget(ReadOnlySpan<byte> body)
    {
        if (!TryRead(body, out fuse_batch_forget_in batch, out var items))
            return false;
        var available = items.Length / Unsafe.SizeOf<fuse_forget_one>();
        if (batch.count > available)
            return false;
        var forgets = MemoryMarshal.Cast<byte, fuse_forget_one>(items[..(int)(batch.count * (uint)Unsafe.SizeOf<fuse_forget_one>())]);
        foreach (var one in forgets)
            _fs.Forget(one.nodeid, one.nlookup);
        return true;
    }

    private static bool TryRead<T>(ReadOnlySpan<byte> body, out T value, out ReadOnlySpan<byte> rest) where T : unmanaged
    {
        if (body.Length < Unsafe.SizeOf<T>())
        {
            value = default;
            rest = default;
            return false;
        }
        value = MemoryMarshal.Read<T>(body);
        rest = body[Unsafe.SizeOf<T>()..];
        return true;
    }

    /// <summary>A NUL-terminated path component: non-empty, no '/', not "." or "..", at most 255 bytes.</summary>
    private static bool TryReadName(ReadOnlySpan<byte> body, out string name, out ReadOnlySpan<byte> rest)
    {
        if (!TryReadString(body, out name, out rest))
            return false;
        var byteLength = body.Length - rest.Length - 1; // the name's UTF-8 bytes, without the NUL
        return byteLength is > 0 and <= 255 && name != "." && name != ".." && !name.Contains('/');
    }

    private static bool TryReadString(ReadOnlySpan<byte> body, out string value, out ReadOnlySpan<byte> rest)
    {
        value = "";
        rest = default;
        var end = body.IndexOf((byte)0);
        if (end < 0)
            return false;
        try
        {
            value = StrictUtf8.GetString(body[..end]);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
        rest = body[(end + 1)..];
        return true;
    }
}

/// <summary>How a session serves its connection.</summary>
public sealed record FuseSessionOptions
{
    /// <summary>Worker threads, each reading its own cloned /dev/fuse channel.</summary>
    public int Workers { get; init; } = Math.Clamp(Environment.ProcessorCount, 2, 8);

    /// <summary>
    /// How long worker 0 spins for the next request before it sleeps (see FuseChannel.SpinBeforeSleep).
    /// Only one worker spins, so at most one CPU is ever busy waiting, and only while requests keep coming.
    /// </summary>
    public TimeSpan SpinBeforeSleep { get; init; } = TimeSpan.FromMicroseconds(50);

    /// <summary>max_pages to ask for (the kernel caps it at /proc/sys/fs/fuse/max_pages_limit).</summary>
    public uint MaxPages { get; init; } = FuseLimits.MaxPagesLimit();
}

public static class FuseLimits
{
    /// <summary>The kernel's max_pages_limit (256 unless the administrator changed it).</summary>
    public static uint MaxPagesLimit()
    {
        try
        {
            var text = File.ReadAllText("/proc/sys/fs/fuse/max_pages_limit").Trim();
            if (uint.TryParse(text, out var pages) && pages > 0)
                return Math.Min(pages, 256u);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return 256;
    }
}
