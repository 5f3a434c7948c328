using System.Runtime.InteropServices;
using DevFs.Fuse.Abi;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Fuse;

/// <summary>
/// One open /dev/fuse file descriptor of a connection. The first comes from mounting; workers get
/// their own through FUSE_DEV_IOC_CLONE so that each reads and answers requests independently.
/// Replies may be sent on any channel of the connection; by convention a request is answered on the
/// channel it was read from.
/// </summary>
public sealed unsafe partial class FuseChannel : IFuseReplySink, IDisposable
{
    private int _fd;

    public FuseChannel(int fd) => _fd = fd;

    public int Fd => _fd;

    /// <summary>Opens /dev/fuse again and attaches it to this channel's connection.</summary>
    public FuseChannel Clone()
    {
        int clone;
        fixed (byte* path = "/dev/fuse\0"u8)
            clone = open(path, O_RDWR | O_CLOEXEC, 0);
        if (clone < 0)
            throw new IOException($"cannot open /dev/fuse to clone the channel: {Errno.Describe(errno)}");
        var master = (uint)_fd;
        if (ioctl(clone, unchecked((int)FuseProtocol.DevIocClone), &master) < 0)
        {
            var error = errno;
            close(clone);
            throw new IOException($"FUSE_DEV_IOC_CLONE failed: {Errno.Describe(error)}");
        }
        return new FuseChannel(clone);
    }

    /// <summary>
    /// How long Read keeps trying before it sleeps. A request that follows the last one within this
    /// time is taken without the sleep and wake-up of a blocking read, which on a small VM costs more
    /// than the request itself (tens of microseconds across CPUs). Zero: a plain blocking read.
    /// </summary>
    public TimeSpan SpinBeforeSleep
    {
        get => _spin;
        set
        {
            _spin = value;
            var flags = fcntl(_fd, F_GETFL);
            fcntl(_fd, F_SETFL, value > TimeSpan.Zero ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
        }
    }

    private TimeSpan _spin;

    /// <summary>Reads one request. Returns its length, or a negative errno (ENODEV: unmounted).</summary>
    public int Read(Span<byte> buffer)
    {
        var spinUntil = 0L;
        while (true)
        {
            ssize_t n;
            fixed (byte* p = buffer)
                n = read(_fd, p, (size_t)buffer.Length);
            if (n >= 0)
                return (int)n;
            var error = errno;
            // EINTR: a signal; ENOENT: the request was interrupted before we read it.
            if (error == EINTR || error == ENOENT)
                continue;
            if (error != EAGAIN)
                return -error;
            if (_spin > TimeSpan.Zero)
            {
                var now = System.Diagnostics.Stopwatch.GetTimestamp();
                if (spinUntil == 0)
                    spinUntil = now + (long)(_spin.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
                if (now < spinUntil)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                spinUntil = 0;
                WaitReadable();
            }
        }
    }

    /// <summary>Sleeps until a request (or the end of the connection) is there to read.</summary>
    private void WaitReadable()
    {
        var poller = new pollfd { fd = _fd, events = (short)POLLIN };
        poll(&poller, 1, -1);
    }

    public int Send(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body, ReadOnlySpan<byte> data)
    {
        fixed (byte* h = header)
        fixed (byte* b = body)
        fixed (byte* d = data)
        {
            var vectors = stackalloc iovec[3];
            var count = 0;
            vectors[count++] = new iovec { iov_base = h, iov_len = header.Length };
            if (body.Length > 0)
                vectors[count++] = new iovec { iov_base = b, iov_len = body.Length };
            if (data.Length > 0)
                vectors[count++] = new iovec { iov_base = d, iov_len = data.Length };
            while (true)
            {
                if (Writev(_fd, vectors, count) >= 0)
                    return 0;
                var error = Marshal.GetLastPInvokeError();
                if (error != EINTR)
                    return -error;
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "writev", SetLastError = true)]
    private static partial nint Writev(int fd, iovec* iov, int count);

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
            close(fd);
    }
}

public static class Errno
{
    /// <summary>"ENOENT (No such file or directory)"-style text for logs and error messages.</summary>
    public static string Describe(int errno) => $"{new System.ComponentModel.Win32Exception(errno).Message} (errno {errno})";
}
