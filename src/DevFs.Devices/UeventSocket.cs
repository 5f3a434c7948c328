using System.Runtime.InteropServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Devices;

/// <summary>struct sockaddr_nl from include/uapi/linux/netlink.h.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct sockaddr_nl
{
    public ushort nl_family;
    public ushort nl_pad;
    public uint nl_pid;
    public uint nl_groups;
}

public enum UeventReceiveStatus
{
    /// <summary>A datagram from the kernel (nl_pid 0) was received; parse Length bytes of the buffer.</summary>
    Message,

    /// <summary>Nothing queued (the socket is non-blocking).</summary>
    WouldBlock,

    /// <summary>ENOBUFS: the kernel dropped uevents because the receive buffer was full. Resync from sysfs.</summary>
    Overflow,

    /// <summary>A datagram was received and discarded: not sent by the kernel, or larger than the buffer.</summary>
    Dropped,
}

public readonly record struct UeventReceiveResult(UeventReceiveStatus Status, int Length, uint SenderPid, string? Reason = null);

/// <summary>
/// A NETLINK_KOBJECT_UEVENT socket bound to group 1 (the kernel's uevents, not udev's). Non-blocking and
/// close-on-exec; wait for <see cref="Fd"/> with poll/epoll. Only datagrams whose sender port id is 0
/// (the kernel) are returned; others are counted in <see cref="Dropped"/>. Not thread-safe: one reader.
/// </summary>
public sealed unsafe class UeventSocket : IDisposable
{
    public const int NETLINK_KOBJECT_UEVENT = 15;
    public const uint KernelGroup = 1;

    private int _fd;
    private long _dropped;

    private UeventSocket(int fd) => _fd = fd;

    /// <summary>The socket descriptor, for poll/epoll (readable = a datagram or an error is pending).</summary>
    public int Fd => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(UeventSocket));

    /// <summary>Datagrams discarded by <see cref="Receive"/> (not from the kernel, or truncated).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>The netlink port id the kernel assigned to this socket (getsockname).</summary>
    public uint PortId
    {
        get
        {
            sockaddr_nl a = default;
            socklen_t len = sizeof(sockaddr_nl);
            if (getsockname(Fd, (sockaddr*)&a, &len) != 0)
                throw Error("getsockname(uevent socket)");
            return a.nl_pid;
        }
    }

    /// <summary>The receive buffer size the kernel actually granted (SO_RCVBUF as read back).</summary>
    public int ReceiveBufferSize
    {
        get
        {
            int v = 0;
            socklen_t len = sizeof(int);
            return getsockopt(Fd, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0 ? v : -1;
        }
    }

    /// <summary>
    /// Opens and binds the socket. With <paramref name="receiveBufferSize"/>, sets SO_RCVBUFFORCE (allowed to
    /// root / CAP_NET_ADMIN, ignores rmem_max), falling back to SO_RCVBUF. The kernel doubles the value and
    /// enforces a minimum of a few KiB, so a tiny value gives the smallest possible buffer.
    /// </summary>
    public static UeventSocket Open(int? receiveBufferSize = null)
    {
        int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
        if (fd < 0)
            throw Error("socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)");
        var s = new UeventSocket(fd);
        try
        {
            if (receiveBufferSize is int size)
            {
                if (size < 1)
                    throw new ArgumentOutOfRangeException(nameof(receiveBufferSize));
                if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(int)) != 0
                    && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(int)) != 0)
                    throw Error("setsockopt(SO_RCVBUF)");
            }
            var addr = new sockaddr_nl { nl_family = (ushort)(int)AF_NETLINK, nl_pid = 0, nl_groups = KernelGroup };
            if (bind(fd, (sockaddr*)&addr, (socklen_t)sizeof(sockaddr_nl)) != 0)
                throw Error("bind(NETLINK_KOBJECT_UEVENT, group 1)");
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Receives one datagram without blocking. Returns Overflow once per ENOBUFS (the socket stays usable);
    /// throws IOException only for unexpected errors.
    /// </summary>
    public UeventReceiveResult Receive(Span<byte> buffer)
    {
        int fd = Fd;
        while (true)
        {
            sockaddr_nl from = default;
            socklen_t fromLen = sizeof(sockaddr_nl);
            long n;
            fixed (byte* p = buffer)
                n = recvfrom(fd, p, buffer.Length, MSG_DONTWAIT | MSG_TRUNC, (sockaddr*)&from, &fromLen);
            if (n < 0)
            {
                int err = errno;
                if (err == EINTR)
                    continue;
                if (err == EAGAIN)
                    return new(UeventReceiveStatus.WouldBlock, 0, 0);
                if (err == ENOBUFS)
                    return new(UeventReceiveStatus.Overflow, 0, 0, "ENOBUFS: receive buffer overflowed");
                throw Error("recvfrom(uevent socket)", err);
            }
            if ((uint)fromLen < sizeof(sockaddr_nl) || from.nl_family != (ushort)(int)AF_NETLINK)
            {
                Interlocked.Increment(ref _dropped);
                return new(UeventReceiveStatus.Dropped, 0, 0, "sender address is not netlink");
            }
            if (from.nl_pid != 0)
            {
                Interlocked.Increment(ref _dropped);
                return new(UeventReceiveStatus.Dropped, 0, from.nl_pid, $"sender port {from.nl_pid} is not the kernel");
            }
            if (n > buffer.Length)
            {
                Interlocked.Increment(ref _dropped);
                return new(UeventReceiveStatus.Dropped, 0, 0, $"datagram of {n} bytes truncated to {buffer.Length}");
            }
            return new(UeventReceiveStatus.Message, (int)n, 0);
        }
    }

    /// <summary>Waits until the socket is readable or the timeout (ms, -1 = forever) passes.</summary>
    public bool WaitReadable(int timeoutMs)
    {
        var pfd = new pollfd { fd = Fd, events = POLLIN };
        int r = NativePoll.Poll(&pfd, 1, timeoutMs, out int error);
        if (r < 0)
            throw Error("poll(uevent socket)", error);
        return r > 0;
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
            close(fd);
    }

    internal static IOException Error(string what, int? err = null)
    {
        int e = err ?? errno;
        return new IOException($"{what} failed: {Marshal.GetPInvokeErrorMessage(e)} (errno {e})", e);
    }
}
