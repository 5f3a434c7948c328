using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Fuse;

/// <summary>Options of a FUSE mount, as mount(2) and fusermount3 take them.</summary>
public sealed record FuseMountOptions
{
    /// <summary>The filesystem subtype: the mount shows as type fuse.SUBTYPE.</summary>
    public required string Subtype { get; init; }

    /// <summary>The mount's source column (what /proc/mounts shows first).</summary>
    public string Source { get; init; } = "";

    /// <summary>Let users other than the mounter in (a container's processes).</summary>
    public bool AllowOther { get; init; } = true;

    /// <summary>Let the kernel check the mode bits getattr reports before calling the daemon.</summary>
    public bool DefaultPermissions { get; init; } = true;

    /// <summary>mount(2) flags such as MS_NOSUID or MS_NOEXEC; never MS_NODEV where nodes must open.</summary>
    public ulong Flags { get; init; }

    /// <summary>Owner the kernel records for the connection (user_id=, group_id=).</summary>
    public uint UserId { get; init; }
    public uint GroupId { get; init; }
}

/// <summary>
/// Mounts and unmounts FUSE filesystems: mount(2) when the process may, otherwise fusermount3, which
/// mounts and hands the /dev/fuse descriptor back over a socket named in _FUSE_COMMFD.
/// </summary>
public static unsafe class FuseMount
{
    public const ulong MS_NOSUID = 2;
    public const ulong MS_NODEV = 4;
    public const ulong MS_NOEXEC = 8;

    /// <summary>Mounts at mountPoint and returns the channel that serves it.</summary>
    public static FuseChannel Mount(string mountPoint, FuseMountOptions options)
    {
        if (!Directory.Exists(mountPoint))
            throw new IOException($"mount point {mountPoint} does not exist or is not a directory: create it first");
        // Without root, mount(2) is refused anyway, and /dev/fuse may not even open: fusermount3 (setuid) does both.
        if (geteuid() != 0)
            return MountWithFusermount(mountPoint, options);
        int fd;
        fixed (byte* path = "/dev/fuse\0"u8)
            fd = open(path, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0)
        {
            var error = errno;
            throw new IOException(error == ENOENT
                ? "/dev/fuse is missing: load the fuse module (modprobe fuse) or give the container /dev/fuse"
                : $"cannot open /dev/fuse: {Errno.Describe(error)}");
        }
        var data = new StringBuilder($"fd={fd},rootmode=40000,user_id={options.UserId},group_id={options.GroupId}");
        if (options.AllowOther)
            data.Append(",allow_other");
        if (options.DefaultPermissions)
            data.Append(",default_permissions");
        var result = MountSyscall(options.Source.Length > 0 ? options.Source : options.Subtype, mountPoint,
            "fuse." + options.Subtype, options.Flags, data.ToString());
        if (result == 0)
            return new FuseChannel(fd);
        close(fd);
        if (result != EPERM)
            throw new IOException($"mount of {mountPoint} failed: {Errno.Describe(result)}");
        return MountWithFusermount(mountPoint, options);
    }

    /// <summary>Detaches the mount (lazily: open files keep working until closed, as umount -l).</summary>
    public static void Unmount(string mountPoint)
    {
        int result;
        fixed (byte* path = NulTerminated(mountPoint))
            result = umount2(path, MNT_DETACH);
        if (result == 0)
            return;
        var error = errno;
        if (error == EINVAL)
            return; // not mounted (any more)
        if (error != EPERM)
            throw new IOException($"unmounting {mountPoint} failed: {Errno.Describe(error)}");
        RunFusermount(["-u", "-z", "--", mountPoint], commFd: null);
    }

    private static int MountSyscall(string source, string target, string type, ulong flags, string data)
    {
        fixed (byte* s = NulTerminated(source))
        fixed (byte* t = NulTerminated(target))
        fixed (byte* ty = NulTerminated(type))
        fixed (byte* d = NulTerminated(data))
        {
            return mount(s, t, ty, (ulong_t)flags, d) == 0 ? 0 : errno;
        }
    }

    private static FuseChannel MountWithFusermount(string mountPoint, FuseMountOptions options)
    {
        var pair = stackalloc int[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0)
            throw new IOException($"socketpair for fusermount3 failed: {Errno.Describe(errno)}");
        var ours = pair[0];
        var theirs = pair[1];
        // Our end must not leak into the child; theirs must reach it.
        fcntl(ours, F_SETFD, FD_CLOEXEC);
        try
        {
            var opts = new List<string> { "subtype=" + options.Subtype, "fsname=" + (options.Source.Length > 0 ? options.Source : options.Subtype) };
            // fusermount3 refuses allow_other for users unless /etc/fuse.conf says user_allow_other:
            // then the mount is the user's own (a developer browsing a view), not a container's.
            if (options.AllowOther && (geteuid() == 0 || UserAllowOther()))
                opts.Add("allow_other");
            if (options.DefaultPermissions)
                opts.Add("default_permissions");
            if ((options.Flags & MS_NOSUID) != 0)
                opts.Add("nosuid");
            if ((options.Flags & MS_NOEXEC) != 0)
                opts.Add("noexec");
            if ((options.Flags & MS_NODEV) != 0)
                opts.Add("nodev");
            RunFusermount(["-o", string.Join(',', opts), "--", mountPoint], theirs);
            return new FuseChannel(ReceiveFd(ours));
        }
        finally
        {
            close(ours);
            close(theirs);
        }
    }

    private static bool UserAllowOther()
    {
        try
        {
            return File.ReadLines("/etc/fuse.conf").Any(line => line.Trim() == "user_allow_other");
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static void RunFusermount(string[] args, int? commFd)
    {
        var start = new ProcessStartInfo("fusermount3") { RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        if (commFd is { } fd)
            start.Environment["_FUSE_COMMFD"] = fd.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new IOException("fusermount3 did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new IOException($"cannot run fusermount3 ({e.Message}): install the fuse3 package, or run as root", e);
        }
        using (process)
        {
            var stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
                throw new IOException($"fusermount3 {string.Join(' ', args)} failed: {stderr.Trim()}");
        }
    }

    private static int ReceiveFd(int socket)
    {
        byte dummy = 0;
        var iov = new iovec { iov_base = &dummy, iov_len = 1 };
        var control = stackalloc byte[64];
        var message = new msghdr { msg_iov = &iov, msg_iovlen = 1, msg_control = control, msg_controllen = 64 };
        ssize_t n;
        do
            n = recvmsg(socket, &message, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
            throw new IOException("fusermount3 mounted nothing: no descriptor came back");
        for (var header = CMSG_FIRSTHDR(&message); header != null; header = CMSG_NXTHDR(&message, header))
        {
            if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS)
                return *(int*)CMSG_DATA(header);
        }
        throw new IOException("fusermount3 answered without a /dev/fuse descriptor");
    }

    internal static byte[] NulTerminated(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
