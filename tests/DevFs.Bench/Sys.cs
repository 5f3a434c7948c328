using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Bench;

/// <summary>Thin wrappers over the system calls the bench measures, on NUL-terminated paths.</summary>
internal static unsafe class Sys
{
    public static readonly double TicksPerSecond = Stopwatch.Frequency;

    public static byte[] Z(string path) => Encoding.UTF8.GetBytes(path + "\0");

    public static long Now() => Stopwatch.GetTimestamp();

    public static double Seconds(long from, long to) => (to - from) / TicksPerSecond;

    public static int Errno => errno;

    public static string Strerror(int e) => Marshal.GetPInvokeErrorMessage(e);

    /// <summary>stat(2); returns 0 or the errno.</summary>
    public static int Stat(byte[] pathZ, out uint mode, out ulong rdev)
    {
        stat st;
        fixed (byte* p = pathZ)
        {
            if (stat(p, &st) != 0)
            {
                mode = 0;
                rdev = 0;
                return errno;
            }
        }
        mode = (uint)st.st_mode;
        rdev = st.st_rdev;
        return 0;
    }

    public static int Open(byte[] pathZ, int flags)
    {
        fixed (byte* p = pathZ)
            return open(p, flags | O_CLOEXEC, 0);
    }

    public static int OpenOrThrow(string path, int flags)
    {
        int fd = Open(Z(path), flags);
        if (fd < 0)
            throw new BenchException($"open({path}) failed: {Strerror(errno)}");
        return fd;
    }

    public static void Close(int fd) => close(fd);

    /// <summary>Rounds of read() of <paramref name="block"/> bytes on an open fd until <paramref name="seconds"/> passed; bytes/s.</summary>
    public static double ReadRate(int fd, byte* buffer, int block, double seconds)
    {
        long start = Now();
        long end = start + (long)(seconds * TicksPerSecond);
        long bytes = 0;
        long t;
        do
        {
            long n = read(fd, buffer, (size_t)block);
            if (n <= 0)
                throw new BenchException($"read({block}) returned {n}: {(n < 0 ? Strerror(errno) : "EOF")}");
            bytes += n;
            t = Now();
        } while (t < end);
        return bytes / Seconds(start, t);
    }

    /// <summary>openat(dirfd, O_RDONLY)+close per second on <paramref name="pathZ"/> for <paramref name="seconds"/>.</summary>
    public static double OpenCloseRate(int dirfd, byte[] pathZ, double seconds)
    {
        fixed (byte* p = pathZ)
        {
            long start = Now();
            long end = start + (long)(seconds * TicksPerSecond);
            long ops = 0;
            long t;
            do
            {
                for (int i = 0; i < 16; i++)
                {
                    int fd = openat(dirfd, p, O_RDONLY | O_CLOEXEC, 0);
                    if (fd < 0)
                        throw new BenchException($"open failed: {Strerror(errno)}");
                    close(fd);
                }
                ops += 16;
                t = Now();
            } while (t < end);
            return ops / Seconds(start, t);
        }
    }

    /// <summary>fstatat(dirfd) (stat(2) on a path relative to the directory) per second on <paramref name="pathZ"/> for <paramref name="seconds"/>.</summary>
    public static double StatRate(int dirfd, byte[] pathZ, double seconds)
    {
        stat st;
        fixed (byte* p = pathZ)
        {
            long start = Now();
            long end = start + (long)(seconds * TicksPerSecond);
            long ops = 0;
            long t;
            do
            {
                for (int i = 0; i < 16; i++)
                {
                    if (fstatat(dirfd, p, &st, 0) != 0)
                        throw new BenchException($"stat failed: {Strerror(errno)}");
                }
                ops += 16;
                t = Now();
            } while (t < end);
            return ops / Seconds(start, t);
        }
    }

    public static int Ioctl(int fd, int request, int arg)
    {
        int r = ioctl(fd, request, arg);
        return r < 0 ? -errno : r;
    }

    /// <summary>write(2) of the whole buffer to a fresh open of <paramref name="pathZ"/>; 0 or errno.</summary>
    public static int WriteFile(byte[] pathZ, byte[] data)
    {
        int fd = Open(pathZ, O_WRONLY);
        if (fd < 0)
            return errno;
        try
        {
            fixed (byte* d = data)
            {
                long n = write(fd, d, (size_t)data.Length);
                return n == data.Length ? 0 : (n < 0 ? errno : EIO);
            }
        }
        finally
        {
            close(fd);
        }
    }

    public static bool IsChr(uint mode) => (mode & (uint)S_IFMT) == (uint)S_IFCHR;

    public static bool IsReg(uint mode) => (mode & (uint)S_IFMT) == (uint)S_IFREG;

    public const int ENOENT_ = 2;

    public static int RdOnly => O_RDONLY;

    public static int Directory_ => O_RDONLY | O_DIRECTORY;

    public static int RdWr => O_RDWR;

    public static long ClockTicks => sysconf(2 /* _SC_CLK_TCK */);

    public static bool ProcessAlive(int pid)
    {
        if (kill(pid, 0) != 0 && errno != EPERM)
            return false;
        try
        {
            string s = File.ReadAllText($"/proc/{pid}/stat");
            return s[s.LastIndexOf(')') + 2] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static void Signal(int pid, int sig) => kill(pid, sig);

    public static int SigTerm => SIGTERM;

    public static int SigKill => SIGKILL;
}

internal sealed class BenchException(string message) : Exception(message);
