using DevFs.Devices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Proxy;

/// <summary>
/// One open of a proxy entry: the real device descriptor the daemon holds for the caller, and whether
/// it was revoked (device unplugged or taken back), after which every operation fails with ENODEV.
/// </summary>
public sealed unsafe class ProxyHandle
{
    private readonly DeviceFileHandle _file;
    private int _revoked;

    public ProxyHandle(HostDevice device, DeviceFileHandle file, object owner, int openFlags, uint callerPid)
    {
        Device = device;
        _file = file;
        Owner = owner;
        OpenFlags = openFlags;
        CallerPid = callerPid;
    }

    public HostDevice Device { get; }

    /// <summary>What the handle was opened through (the view's entry), to revoke by.</summary>
    public object Owner { get; }
    public int OpenFlags { get; }
    public uint CallerPid { get; }

    public bool Revoked => Volatile.Read(ref _revoked) != 0;

    /// <summary>Block devices are read and written at the caller's offset; character devices are streams.</summary>
    public bool Seekable => Device.Kind == DeviceKind.Block;

    /// <summary>Reads into buffer; returns the count or a negative errno.</summary>
    public int Read(Span<byte> buffer, long offset)
    {
        if (!TryEnter(out var fd))
            return -ENODEV;
        try
        {
            fixed (byte* p = buffer)
            {
                var n = Seekable ? pread(fd, p, (size_t)buffer.Length, (off_t)offset) : read(fd, p, (size_t)buffer.Length);
                return n < 0 ? -errno : (int)n;
            }
        }
        finally
        {
            _file.DangerousRelease();
        }
    }

    /// <summary>Writes data; returns the count written or a negative errno.</summary>
    public int Write(ReadOnlySpan<byte> data, long offset)
    {
        if (!TryEnter(out var fd))
            return -ENODEV;
        try
        {
            fixed (byte* p = data)
            {
                var n = Seekable ? pwrite(fd, p, (size_t)data.Length, (off_t)offset) : write(fd, p, (size_t)data.Length);
                return n < 0 ? -errno : (int)n;
            }
        }
        finally
        {
            _file.DangerousRelease();
        }
    }

    public int Fsync(bool dataOnly)
    {
        if (!TryEnter(out var fd))
            return -ENODEV;
        try
        {
            return (dataOnly ? fdatasync(fd) : fsync(fd)) < 0 ? -errno : 0;
        }
        finally
        {
            _file.DangerousRelease();
        }
    }

    /// <summary>poll(2) on the real descriptor without waiting; returns revents or a negative errno.</summary>
    public int PollNow(short events)
    {
        if (!TryEnter(out var fd))
            return -ENODEV;
        try
        {
            var p = new pollfd { fd = fd, events = events };
            var n = poll(&p, 1, 0);
            return n < 0 ? -errno : p.revents;
        }
        finally
        {
            _file.DangerousRelease();
        }
    }

    /// <summary>ioctl(2) on the real descriptor with arg as given (a number or a daemon pointer); the result or a negative errno.</summary>
    public int Ioctl(uint cmd, nuint arg)
    {
        if (!TryEnter(out var fd))
            return -ENODEV;
        try
        {
            var r = Native.Ioctl(fd, cmd, arg);
            return r < 0 ? -Native.LastError : r;
        }
        finally
        {
            _file.DangerousRelease();
        }
    }

    /// <summary>Told once when the handle is revoked or closed, before its descriptor closes (the poller lets go of it).</summary>
    internal Action<ProxyHandle>? RevokedCallback { get; set; }

    /// <summary>From now on every operation fails with ENODEV; the descriptor closes once no call uses it.</summary>
    public void Revoke()
    {
        if (Interlocked.Exchange(ref _revoked, 1) != 0)
            return;
        try
        {
            RevokedCallback?.Invoke(this);
        }
        finally
        {
            _file.Dispose();
        }
    }

    /// <summary>A reference on the descriptor for the poller, which watches it until <see cref="ReleaseWatch"/>.</summary>
    internal bool TryAddWatch(out int fd) => TryEnter(out fd);

    internal void ReleaseWatch() => _file.DangerousRelease();

    /// <summary>The caller closed its file.</summary>
    public void Close() => Revoke();

    /// <summary>Takes a reference on the descriptor for one call; false once revoked.</summary>
    private bool TryEnter(out int fd)
    {
        fd = -1;
        if (Revoked)
            return false;
        var added = false;
        try
        {
            _file.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        fd = _file.Fd;
        return added;
    }
}
