using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using NUnit.Framework;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Integration.Tests;

internal readonly record struct StatInfo(ulong Ino, uint Mode)
{
    public bool IsRegular => (Mode & 0xF000) == 0x8000;
    public bool IsDirectory => (Mode & 0xF000) == 0x4000;
}

/// <summary>System calls on paths, without a process per call.</summary>
internal static unsafe class Sys
{
    public static int Errno => errno;

    public static string Strerror(int e) => Marshal.GetPInvokeErrorMessage(e);

    /// <summary>lstat(2); 0 or the errno.</summary>
    public static int Stat(string path, out StatInfo info)
    {
        var z = Encoding.UTF8.GetBytes(path + "\0");
        stat st;
        fixed (byte* p = z)
        {
            if (lstat(p, &st) != 0)
            {
                info = default;
                return errno;
            }
        }
        info = new StatInfo((ulong)st.st_ino, (uint)st.st_mode);
        return 0;
    }

    public static int Open(string path, int flags)
    {
        var z = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = z)
            return open(p, flags | O_CLOEXEC, 0);
    }

    /// <summary>One read of up to 4 KiB; the count, or -1 with the errno in <paramref name="err"/>.</summary>
    public static long Read(int fd, out int err)
    {
        byte* buf = stackalloc byte[4096];
        long n = read(fd, buf, 4096);
        err = n < 0 ? errno : 0;
        return n;
    }

    public static void Close(int fd) => close(fd);

    /// <summary>
    /// Spins on lstat until the path exists (or is ENOENT), at most <paramref name="cap"/>; returns the time
    /// it took, or <paramref name="cap"/> when it never happened.
    /// </summary>
    public static TimeSpan WaitFor(string path, bool exists, TimeSpan cap)
    {
        long t0 = Stopwatch.GetTimestamp();
        while (true)
        {
            int e = Stat(path, out _);
            if (exists ? e == 0 : e == ENOENT)
                return Stopwatch.GetElapsedTime(t0);
            if (Stopwatch.GetElapsedTime(t0) >= cap)
                return cap;
            if (Stopwatch.GetElapsedTime(t0) > TimeSpan.FromMilliseconds(20))
                Thread.Sleep(1);
        }
    }
}

/// <summary>Loop devices made through /dev/loop-control; every one still present is removed on Dispose.</summary>
internal sealed unsafe class LoopControl : IDisposable
{
    private const int LOOP_CTL_ADD = 0x4C80;
    private const int LOOP_CTL_REMOVE = 0x4C81;

    private readonly int _fd;
    private readonly HashSet<int> _mine = new();

    private LoopControl(int fd) => _fd = fd;

    public static LoopControl OpenOrFail()
    {
        if (geteuid() != 0)
            Assert.Fail("hotplug tests add loop devices and need root: run 'sudo make test'");
        if (!File.Exists("/dev/loop-control"))
            Assert.Fail("/dev/loop-control is missing: load the loop module (modprobe loop); the hotplug tests cannot run without it");
        int fd = Sys.Open("/dev/loop-control", O_RDWR);
        if (fd < 0)
            Assert.Fail($"open(/dev/loop-control): {Sys.Strerror(errno)}");
        return new LoopControl(fd);
    }

    /// <summary>The first index from <paramref name="from"/> with no loop device in sysfs or /dev.</summary>
    public int FreeIndex(int from)
    {
        for (int i = from; i < from + 1000; i++)
            if (!Directory.Exists($"/sys/devices/virtual/block/loop{i}") && !File.Exists($"/dev/loop{i}"))
                return i;
        Assert.Fail($"no free loop index in {from}..{from + 1000}");
        return -1;
    }

    public void AddExact(int index)
    {
        int r = ioctl(_fd, LOOP_CTL_ADD, index);
        if (r < 0)
            Assert.Fail($"LOOP_CTL_ADD {index}: {Sys.Strerror(errno)}");
        _mine.Add(index);
    }

    /// <summary>Takes charge of a loop device someone else made, so that Dispose removes it.</summary>
    public void Adopt(int index) => _mine.Add(index);

    public void Remove(int index)
    {
        int err = TryRemove(index);
        if (err != 0)
            Assert.Fail($"LOOP_CTL_REMOVE {index}: {Sys.Strerror(err)}");
        _mine.Remove(index);
    }

    /// <summary>0, or the errno after retrying EBUSY for 2 s (something such as udev may hold it briefly).</summary>
    private int TryRemove(int index)
    {
        for (int attempt = 0; ; attempt++)
        {
            if (ioctl(_fd, LOOP_CTL_REMOVE, index) >= 0)
                return 0;
            int e = errno;
            if (e != EBUSY || attempt >= 200)
                return e;
            Thread.Sleep(10);
        }
    }

    public void Dispose()
    {
        var failed = new List<string>();
        foreach (var i in _mine)
        {
            int e = TryRemove(i);
            if (e != 0 && e != ENODEV)
                failed.Add($"loop{i}: {Sys.Strerror(e)}");
        }
        _mine.Clear();
        close(_fd);
        if (failed.Count > 0)
            TestContext.Error.WriteLine("could not remove loop devices: " + string.Join(", ", failed));
    }
}
