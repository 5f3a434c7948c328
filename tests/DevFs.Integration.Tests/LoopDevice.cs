using NUnit.Framework;
using static Tmds.Linux.LibC;

namespace DevFs.Integration.Tests;

/// <summary>A real loop device made with LOOP_CTL_ADD and removed with LOOP_CTL_REMOVE: real hotplug.</summary>
public sealed unsafe class LoopDevice : IDisposable
{
    public const int LOOP_CTL_ADD = 0x4C80;
    public const int LOOP_CTL_REMOVE = 0x4C81;

    private LoopDevice(int index) => Index = index;

    public int Index { get; }
    public string Name => $"loop{Index}";

    /// <summary>Adds the first free loop device at or above 500 + a per-process offset.</summary>
    public static LoopDevice Add()
    {
        if (!File.Exists("/dev/loop-control"))
            Assert.Fail("/dev/loop-control is missing: load the loop module (modprobe loop); hotplug tests need it");
        for (var index = 500 + System.Environment.ProcessId % 50 * 10; index < 1000; index++)
        {
            if (Directory.Exists($"/sys/block/loop{index}"))
                continue;
            if (Control(LOOP_CTL_ADD, index) == index)
                return new LoopDevice(index);
        }
        Assert.Fail("no free loop index between 500 and 1000");
        return null!;
    }

    public static int Control(int request, int index)
    {
        int fd;
        fixed (byte* path = "/dev/loop-control\0"u8)
            fd = open(path, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0)
            Assert.Fail($"cannot open /dev/loop-control: errno {errno}");
        try
        {
            var result = ioctl(fd, request, index);
            return result < 0 ? -errno : result;
        }
        finally
        {
            close(fd);
        }
    }

    public void Dispose()
    {
        for (var attempt = 0; attempt < 50 && Control(LOOP_CTL_REMOVE, Index) == -EBUSY; attempt++)
            Thread.Sleep(20);
    }
}
