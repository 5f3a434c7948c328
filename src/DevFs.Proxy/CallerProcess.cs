using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Proxy;

/// <summary>
/// The process that made a request, pinned by a pidfd: its file descriptors (pidfd_getfd) and its
/// memory (process_vm_readv/writev) as ioctl translation needs them. The pid comes from the kernel
/// (fuse_in_header.pid) and the caller is inside the syscall while we work; the pidfd makes sure a
/// caller that dies meanwhile is noticed (<see cref="StillAlive"/>) rather than confused with a new
/// process under the same number.
/// </summary>
public sealed unsafe class CallerProcess : IDisposable
{
    private int _pidfd;

    private CallerProcess(int pid, int pidfd)
    {
        Pid = pid;
        _pidfd = pidfd;
    }

    public int Pid { get; }

    /// <summary>Opens a pidfd for pid (a process or, from Linux 6.9, a thread id); returns 0 or a positive errno.</summary>
    public static int Open(uint pid, out CallerProcess? caller)
    {
        caller = null;
        if (pid == 0 || pid > int.MaxValue)
            return ESRCH; // not visible in the daemon's pid namespace
        var fd = Native.Syscall3(Native.SYS_pidfd_open, pid, 0, 0);
        var error = fd < 0 ? Native.LastError : 0;
        if (fd < 0 && error == EINVAL)
        {
            // The FUSE header carries the calling thread's id; a thread that is not its group's
            // leader needs PIDFD_THREAD.
            fd = Native.Syscall3(Native.SYS_pidfd_open, pid, Native.PIDFD_THREAD, 0);
            error = fd < 0 ? Native.LastError : 0;
        }
        if (fd < 0)
            return error;
        caller = new CallerProcess((int)pid, (int)fd);
        return 0;
    }

    /// <summary>True while the process has not exited (its pidfd is not readable).</summary>
    public bool StillAlive
    {
        get
        {
            var p = new pollfd { fd = _pidfd, events = POLLIN };
            return poll(&p, 1, 0) == 0;
        }
    }

    /// <summary>Duplicates the caller's descriptor into the daemon (close-on-exec); returns the new fd or a negative errno.</summary>
    public int TakeFd(int callerFd)
    {
        if (callerFd < 0)
            return -EBADF;
        var fd = Native.Syscall3(Native.SYS_pidfd_getfd, _pidfd, callerFd, 0);
        return fd < 0 ? -Native.LastError : (int)fd;
    }

    /// <summary>Copies the caller's memory at address into buffer; 0 or a positive errno (EFAULT when short).</summary>
    public int ReadMemory(ulong address, Span<byte> buffer)
    {
        if (buffer.Length == 0)
            return 0;
        fixed (byte* p = buffer)
        {
            var local = new Native.IoVec { Base = p, Length = (nuint)buffer.Length };
            var remote = new Native.IoVec { Base = (void*)address, Length = (nuint)buffer.Length };
            var n = Native.ProcessVmReadv(Pid, &local, 1, &remote, 1, 0);
            if (n < 0)
                return Native.LastError;
            return n == buffer.Length ? 0 : EFAULT;
        }
    }

    /// <summary>Copies data into the caller's memory at address; 0 or a positive errno. Read-only pages refuse, as copy_to_user would.</summary>
    public int WriteMemory(ulong address, ReadOnlySpan<byte> data)
    {
        if (data.Length == 0)
            return 0;
        fixed (byte* p = data)
        {
            var local = new Native.IoVec { Base = p, Length = (nuint)data.Length };
            var remote = new Native.IoVec { Base = (void*)address, Length = (nuint)data.Length };
            var n = Native.ProcessVmWritev(Pid, &local, 1, &remote, 1, 0);
            if (n < 0)
                return Native.LastError;
            return n == data.Length ? 0 : EFAULT;
        }
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _pidfd, -1);
        if (fd >= 0)
            close(fd);
    }
}
