using System.Text;
using DevFs.Devices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Proxy;

/// <summary>
/// Opens the host's node for a device. The host's /dev is devtmpfs (or udev's): the node is looked up
/// by DEVNAME, then by udev's /dev/char|block/MAJ:MIN links, and accepted only if fstat shows the same
/// type and dev_t, so a renamed or replaced node is never opened in its place.
/// </summary>
public static unsafe class DeviceNodeOpener
{
    /// <summary>Open flags a caller may pass through: access mode and O_NONBLOCK/O_APPEND/O_SYNC; never O_CREAT and the like.</summary>
    public static int PassThroughFlags => O_ACCMODE | O_NONBLOCK | O_APPEND | O_SYNC | O_DSYNC | O_EXCL;

    /// <summary>Opens the device; returns 0 and the handle, or a positive errno.</summary>
    public static int Open(HostDevice device, int callerFlags, string devRoot, out DeviceFileHandle? handle)
    {
        handle = null;
        // Always non-blocking: a read or write that would wait is parked on the poller instead of
        // holding a worker thread; the caller's own O_NONBLOCK comes with each request (fuse_read_in.flags).
        var flags = (callerFlags & PassThroughFlags) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW;
        // O_EXCL on a block device means "not mounted or in use"; on others it is meaningless.
        if (device.Kind != DeviceKind.Block)
            flags &= ~O_EXCL;
        var kindDir = device.Kind == DeviceKind.Block ? "block" : "char";
        var error = ENXIO;
        foreach (var path in new[] { $"{devRoot}/{device.DevName}", $"{devRoot}/{kindDir}/{device.Major}:{device.Minor}" })
        {
            var fd = OpenPath(path, path.Contains($"/{kindDir}/") ? flags & ~O_NOFOLLOW : flags);
            if (fd < 0)
            {
                var openError = -fd;
                // Permission or busy answers are the device's own: report them, do not look further.
                if (openError != ENOENT && openError != ELOOP && openError != ENXIO)
                    return openError;
                continue;
            }
            if (IsNodeOf(fd, device))
            {
                handle = new DeviceFileHandle(fd);
                return 0;
            }
            close(fd);
            error = ENXIO;
        }
        return error;
    }

    private static int OpenPath(string path, int flags)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, bytes);
        fixed (byte* p = bytes)
        {
            int fd;
            do
                fd = open(p, flags, 0);
            while (fd < 0 && errno == EINTR);
            return fd < 0 ? -errno : fd;
        }
    }

    private static bool IsNodeOf(int fd, HostDevice device)
    {
        stat st;
        if (fstat(fd, &st) != 0)
            return false;
        var type = (uint)st.st_mode & 0xF000;
        var expected = device.Kind == DeviceKind.Block ? 0x6000u : 0x2000u;
        return type == expected && (ulong)st.st_rdev == device.Rdev;
    }
}
