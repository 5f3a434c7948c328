using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Devices.Tests;

/// <summary>Creates and removes loop devices through /dev/loop-control, for hotplug tests. Needs root.</summary>
internal sealed unsafe class LoopControl : IDisposable
{
    public const int LOOP_CTL_ADD = 0x4C80;
    public const int LOOP_CTL_REMOVE = 0x4C81;
    public const int LOOP_CTL_GET_FREE = 0x4C82;

    private readonly int _fd;
    private readonly HashSet<int> _mine = new();

    private LoopControl(int fd) => _fd = fd;

    /// <summary>Opens /dev/loop-control, or fails the test with the reason (these tests never skip).</summary>
    public static LoopControl OpenOrFail()
    {
        if (geteuid() != 0)
            Assert.Fail("This test needs root (real hotplug through /dev/loop-control); run the tests as root.");
        if (!File.Exists("/dev/loop-control"))
            Assert.Fail("/dev/loop-control is missing: load the loop module (modprobe loop) to run the hotplug tests.");
        int fd;
        fixed (byte* p = "/dev/loop-control\0"u8)
            fd = open(p, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0)
            Assert.Fail($"open(/dev/loop-control) failed: errno {errno}");
        return new LoopControl(fd);
    }

    /// <summary>Adds a loop device at the first free index from <paramref name="from"/> and returns it.</summary>
    public int Add(int from = 200)
    {
        for (int i = from; i < from + 500; i++)
        {
            if (Directory.Exists($"/sys/devices/virtual/block/loop{i}"))
                continue;
            int r = ioctl(_fd, LOOP_CTL_ADD, i);
            if (r >= 0)
            {
                _mine.Add(r);
                return r;
            }
            if (errno != EEXIST)
                Assert.Fail($"LOOP_CTL_ADD {i} failed: errno {errno}");
        }
        Assert.Fail($"no free loop index in {from}..{from + 500}");
        return -1;
    }

    /// <summary>Adds exactly index <paramref name="index"/>; false if it exists.</summary>
    public bool TryAddExact(int index)
    {
        int r = ioctl(_fd, LOOP_CTL_ADD, index);
        if (r >= 0)
            _mine.Add(r);
        return r >= 0;
    }

    public void Remove(int index)
    {
        int r = -1;
        // The kernel returns EBUSY briefly while something (udev probing) holds the device open.
        for (int attempt = 0; attempt < 100; attempt++)
        {
            r = ioctl(_fd, LOOP_CTL_REMOVE, index);
            if (r >= 0 || errno != EBUSY)
                break;
            Thread.Sleep(20);
        }
        if (r < 0)
            Assert.Fail($"LOOP_CTL_REMOVE {index} failed: errno {errno}");
        _mine.Remove(index);
    }

    public void Dispose()
    {
        foreach (var i in _mine.ToList())
        {
            for (int attempt = 0; attempt < 100; attempt++)
            {
                if (ioctl(_fd, LOOP_CTL_REMOVE, i) >= 0 || errno != EBUSY)
                    break;
                Thread.Sleep(20);
            }
        }
        _mine.Clear();
        close(_fd);
    }
}
