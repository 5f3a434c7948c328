using DevFs.Devices;
using DevFs.Policy;

namespace DevFs.View;

/// <summary>Why a node is in a view: it decides what hotplug and policy may change or remove.</summary>
public enum NodeOrigin
{
    /// <summary>Listed in the policy (directories, symlinks).</summary>
    Policy,
    /// <summary>Made to hold a device whose DEVNAME has folders (input/event3); goes when it empties.</summary>
    Implicit,
    /// <summary>A host device the policy shows.</summary>
    HostDevice,
    /// <summary>Made by a process in the mount (mkdir, symlink, create, mknod).</summary>
    User,
}

/// <summary>
/// A node of a container's /dev. Node ids are never reused and a node never changes its file type:
/// the kernel marks an inode bad if the type behind a node id changes.
/// </summary>
public abstract class ViewNode
{
    protected ViewNode(ulong id, string name, uint mode, uint uid, uint gid, NodeOrigin origin)
    {
        Id = id;
        Name = name;
        Mode = mode;
        Uid = uid;
        Gid = gid;
        Origin = origin;
        Modified = Changed = DateTime.UtcNow;
    }

    public ulong Id { get; }
    public string Name { get; internal set; }
    public DirectoryNode? Parent { get; internal set; }
    public NodeOrigin Origin { get; }

    /// <summary>st_mode: file type and permission bits.</summary>
    public uint Mode { get; internal set; }
    public uint Uid { get; internal set; }
    public uint Gid { get; internal set; }
    public DateTime Modified { get; internal set; }
    public DateTime Changed { get; internal set; }

    /// <summary>The kernel's lookup references (entries it was given minus forgets).</summary>
    internal ulong LookupCount { get; set; }

    public uint FileType => Mode & StatMode.S_IFMT;

    /// <summary>Size getattr reports.</summary>
    public virtual long Size => 0;

    /// <summary>Path relative to the view's root, for logs ("input/event3").</summary>
    public string Path => Parent is null ? "" : Parent.Parent is null ? Name : Parent.Path + "/" + Name;
}

public sealed class DirectoryNode(ulong id, string name, uint mode, uint uid, uint gid, NodeOrigin origin)
    : ViewNode(id, name, StatMode.S_IFDIR | (mode & StatMode.PermissionBits), uid, gid, origin)
{
    internal SortedDictionary<string, ViewNode> Children { get; } = new(StringComparer.Ordinal);

    public int ChildCount => Children.Count;
}

public sealed class SymlinkNode(ulong id, string name, string target, uint uid, uint gid, NodeOrigin origin)
    : ViewNode(id, name, StatMode.S_IFLNK | 0x1FF /* 0777 */, uid, gid, origin)
{
    public string Target { get; } = target;

    public override long Size => System.Text.Encoding.UTF8.GetByteCount(Target);
}

/// <summary>A host device shown in the view, as a proxy file or as a real device node.</summary>
public sealed class DeviceNode : ViewNode
{
    internal DeviceNode(ulong id, string name, HostDevice device, DeviceEntrySpec spec, AccessMode access, NodeOrigin origin)
        : base(id, name, TypeBits(device.Kind, access) | (spec.Mode & StatMode.PermissionBits), spec.Uid, spec.Gid, origin)
    {
        Device = device;
        Spec = spec;
        Access = access;
    }

    public HostDevice Device { get; internal set; }
    public DeviceEntrySpec Spec { get; internal set; }

    /// <summary>Proxy or Node: Auto is resolved when the entry is made.</summary>
    public AccessMode Access { get; }

    /// <summary>Set when the device is unplugged or taken away: open handles fail with ENODEV from then on.</summary>
    public bool Revoked { get => Volatile.Read(ref _revoked); internal set => Volatile.Write(ref _revoked, value); }
    private bool _revoked;

    /// <summary>The dev_t getattr reports: the host's for node entries, none for proxy files.</summary>
    public ulong Rdev => Access == AccessMode.Node ? Device.Rdev : 0;

    internal static uint TypeBits(DeviceKind kind, AccessMode access) =>
        access == AccessMode.Proxy ? StatMode.S_IFREG : kind == DeviceKind.Block ? StatMode.S_IFBLK : StatMode.S_IFCHR;
}

/// <summary>A regular file made inside the mount; its bytes live in the daemon (a console bind target, a lock file).</summary>
public sealed class FileNode(ulong id, string name, uint mode, uint uid, uint gid)
    : ViewNode(id, name, StatMode.S_IFREG | (mode & StatMode.PermissionBits), uid, gid, NodeOrigin.User)
{
    internal byte[] Content { get; set; } = [];

    public override long Size => Content.Length;
}

/// <summary>A FIFO or socket made with mknod (a syslog socket bound at /dev/log): the kernel does its I/O.</summary>
public sealed class SpecialNode(ulong id, string name, uint mode, uint uid, uint gid)
    : ViewNode(id, name, mode, uid, gid, NodeOrigin.User);

public static class StatMode
{
    public const uint S_IFMT = 0xF000;
    public const uint S_IFSOCK = 0xC000;
    public const uint S_IFLNK = 0xA000;
    public const uint S_IFREG = 0x8000;
    public const uint S_IFBLK = 0x6000;
    public const uint S_IFDIR = 0x4000;
    public const uint S_IFCHR = 0x2000;
    public const uint S_IFIFO = 0x1000;
    /// <summary>rwx for all three classes plus setuid, setgid and sticky.</summary>
    public const uint PermissionBits = 0xFFF;
}
