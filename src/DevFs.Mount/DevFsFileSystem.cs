using DevFs.Devices;
using DevFs.Fuse;
using DevFs.Fuse.Abi;
using DevFs.Ownership;
using DevFs.Policy;
using DevFs.Proxy;
using DevFs.View;
using Microsoft.Extensions.Logging;
using static Tmds.Linux.LibC;

namespace DevFs.Mount;

/// <summary>
/// Serves one container's view over FUSE: names and attributes from the view, I/O on proxy entries
/// to the real device through the proxy layer, and host changes turned into cache invalidations.
/// </summary>
public sealed partial class DevFsFileSystem : FuseFileSystem
{
    /// <summary>How long the kernel may trust entries and attributes; every host change invalidates them at once.</summary>
    public static readonly TimeSpan CacheValidity = TimeSpan.FromSeconds(60);

    private static readonly (ulong Seconds, uint Nanoseconds) CacheValidityParts = FuseTime.Split(CacheValidity);

    private readonly ContainerView _view;
    private readonly LoopControlOwnership _loopControl;
    private readonly ProxyHandleTable _handles = new();
    private readonly DirectoryHandleTable _directories = new();
    private readonly ILogger _logger;
    private readonly string _devRoot;
    private FuseNotifier _notifier = FuseNotifier.Disconnected;

    public DevFsFileSystem(ContainerView view, ILogger logger, AssignmentStore? assignments = null, string devRoot = "/dev")
    {
        _loopControl = new LoopControlOwnership(view.Container, assignments);
        _view = view;
        _logger = logger;
        _devRoot = devRoot;
        _view.Changed += OnViewChanged;
    }

    public ContainerView View => _view;
    public ProxyHandleTable Handles => _handles;

    public override void Initialized(FuseConnectionInfo connection, FuseNotifier notifier) => _notifier = notifier;

    public override void Lookup(FuseRequest request, ulong parent, string name)
    {
        var error = _view.Lookup(parent, name, out var node);
        if (error == ENOENT)
        {
            // A negative entry the kernel may cache: a device that appears later invalidates it.
            request.ReplyEntry(NegativeEntry());
            return;
        }
        if (error != 0)
        {
            request.ReplyError(error);
            return;
        }
        request.ReplyEntry(Entry(node!));
    }

    public override void Forget(ulong nodeId, ulong nlookup) => _view.Forget(nodeId, nlookup);

    public override void GetAttr(FuseRequest request, ulong nodeId, ulong? fh)
    {
        var node = _view.Find(nodeId);
        if (node is null)
            request.ReplyError(ENOENT);
        else
            request.ReplyAttr(Attributes(node), CacheValidity);
    }

    public override void SetAttr(FuseRequest request, ulong nodeId, in fuse_setattr_in attr)
    {
        var node = _view.Find(nodeId);
        if (node is null)
        {
            request.ReplyError(ENOENT);
            return;
        }
        var valid = (FuseSetAttrValid)attr.valid;
        var caller = request.Caller;
        var changesOwner = (valid & (FuseSetAttrValid.FATTR_UID | FuseSetAttrValid.FATTR_GID)) != 0;
        if ((changesOwner && caller.Uid != 0) ||
            ((valid & FuseSetAttrValid.FATTR_MODE) != 0 && caller.Uid != 0 && caller.Uid != node.Uid))
        {
            request.ReplyError(EPERM);
            return;
        }
        if ((valid & FuseSetAttrValid.FATTR_SIZE) != 0 && !Permissions.Allows(node, caller, Permissions.Write))
        {
            request.ReplyError(EACCES);
            return;
        }
        DateTime? modified = (valid & FuseSetAttrValid.FATTR_MTIME_NOW) != 0 ? DateTime.UtcNow
            : (valid & FuseSetAttrValid.FATTR_MTIME) != 0 ? DateTime.UnixEpoch.AddSeconds(attr.mtime).AddTicks(attr.mtimensec / 100)
            : null;
        var error = _view.SetAttributes(nodeId,
            (valid & FuseSetAttrValid.FATTR_MODE) != 0 ? attr.mode : null,
            (valid & FuseSetAttrValid.FATTR_UID) != 0 ? attr.uid : null,
            (valid & FuseSetAttrValid.FATTR_GID) != 0 ? attr.gid : null,
            (valid & FuseSetAttrValid.FATTR_SIZE) != 0 ? (long)attr.size : null,
            modified);
        if (error != 0)
            request.ReplyError(error);
        else
            request.ReplyAttr(Attributes(node), CacheValidity);
    }

    public override void ReadLink(FuseRequest request, ulong nodeId)
    {
        if (_view.Find(nodeId) is SymlinkNode link)
            request.ReplyReadLink(link.Target);
        else
            request.ReplyError(EINVAL);
    }

    public override void Symlink(FuseRequest request, ulong parent, string name, string target)
    {
        if (!MayCreateIn(request, parent))
            return;
        ReplyMade(request, _view.MakeSymlink(parent, name, target, request.Caller.Uid, request.Caller.Gid, out var node), node);
    }

    public override void MkDir(FuseRequest request, ulong parent, string name, uint mode, uint umask)
    {
        if (!MayCreateIn(request, parent))
            return;
        ReplyMade(request, _view.MakeDirectory(parent, name, mode & ~umask, request.Caller.Uid, request.Caller.Gid, out var node), node);
    }

    public override void MkNod(FuseRequest request, ulong parent, string name, uint mode, uint rdev, uint umask)
    {
        if (!MayCreateIn(request, parent))
            return;
        var devT = HostDevice.MakeDev(rdev >> 8 & 0xfff, (rdev & 0xff) | (rdev >> 12 & 0xfff00));
        var error = _view.MakeNode(parent, name, mode & ~umask | (mode & StatMode.S_IFMT), devT, request.Caller.Uid, request.Caller.Gid, out var node);
        if (error == EPERM)
            _logger.LogWarning("Refused mknod of {Name} (type {Type:x}, {Major}:{Minor}) for pid {Pid}: the policy does not allow that device here",
                name, mode & StatMode.S_IFMT, HostDevice.MajorOf(devT), HostDevice.MinorOf(devT), request.Caller.Pid);
        ReplyMade(request, error, node);
    }

    public override void Create(FuseRequest request, ulong parent, string name, uint mode, uint umask, int flags)
    {
        if (!MayCreateIn(request, parent))
            return;
        var error = _view.MakeFile(parent, name, mode & ~umask, request.Caller.Uid, request.Caller.Gid, out var node);
        if (error != 0)
            request.ReplyError(error);
        else
            request.ReplyCreate(Entry(node!), 0, FuseOpenFlags.FOPEN_DIRECT_IO);
    }

    public override void Unlink(FuseRequest request, ulong parent, string name)
    {
        if (MayCreateIn(request, parent))
            ReplyDone(request, _view.Remove(parent, name, directory: false));
    }

    public override void RmDir(FuseRequest request, ulong parent, string name)
    {
        if (MayCreateIn(request, parent))
            ReplyDone(request, _view.Remove(parent, name, directory: true));
    }

    public override void Rename(FuseRequest request, ulong parent, string name, ulong newParent, string newName, uint flags)
    {
        if ((flags & FuseFlagBits.RENAME_EXCHANGE) != 0 || (flags & ~(FuseFlagBits.RENAME_NOREPLACE | FuseFlagBits.RENAME_EXCHANGE)) != 0)
        {
            request.ReplyError(EINVAL);
            return;
        }
        if (MayCreateIn(request, parent) && MayCreateIn(request, newParent))
            ReplyDone(request, _view.Rename(parent, name, newParent, newName, (flags & FuseFlagBits.RENAME_NOREPLACE) != 0));
    }

    public override void Open(FuseRequest request, ulong nodeId, int flags)
    {
        var node = _view.Find(nodeId);
        switch (node)
        {
            case null:
                request.ReplyError(ENOENT);
                return;
            case DirectoryNode:
                request.ReplyError(EISDIR);
                return;
            case FileNode file:
                if (!Permissions.Allows(file, request.Caller, AccessWanted(flags)))
                {
                    request.ReplyError(EACCES);
                    return;
                }
                if ((flags & O_TRUNC) != 0)
                    _view.SetAttributes(nodeId, null, null, null, 0, DateTime.UtcNow);
                request.ReplyOpen(0, FuseOpenFlags.FOPEN_DIRECT_IO);
                return;
            case DeviceNode { Access: AccessMode.Proxy } device:
                OpenProxy(request, device, flags);
                return;
            default:
                // Device nodes and FIFOs are opened by the kernel itself; an OPEN for one is a confused request.
                request.ReplyError(ENXIO);
                return;
        }
    }

    public override void OpenDir(FuseRequest request, ulong nodeId, int flags)
    {
        var error = _view.List(nodeId, out var entries);
        if (error != 0)
        {
            request.ReplyError(error);
            return;
        }
        var parent = _view.Find(nodeId)?.Parent?.Id ?? ContainerView.RootId;
        request.ReplyOpen(_directories.Add(new DirectoryListing(nodeId, parent, entries)), FuseOpenFlags.None);
    }

    public override void ReadDir(FuseRequest request, ulong nodeId, ulong fh, ulong offset, uint size, bool plus)
    {
        var listing = _directories.Get(fh);
        if (listing is null)
        {
            request.ReplyError(EBADF);
            return;
        }
        var buffer = new FuseDirectoryBuffer(size);
        // Offsets: 0 ".", 1 "..", then the entries; each record carries the offset of the next.
        for (var index = offset; index < (ulong)listing.Entries.Count + 2; index++)
        {
            bool added;
            if (index < 2)
            {
                var id = index == 0 ? listing.NodeId : listing.ParentId;
                var name = index == 0 ? "." : "..";
                added = plus
                    ? buffer.TryAddPlus(new fuse_entry_out { attr = new fuse_attr { ino = id, mode = StatMode.S_IFDIR } }, name, DirentType(StatMode.S_IFDIR), index + 1)
                    : buffer.TryAdd(id, name, DirentType(StatMode.S_IFDIR), index + 1);
            }
            else
            {
                var node = listing.Entries[(int)(index - 2)];
                if (plus)
                {
                    added = buffer.TryAddPlus(Entry(node), node.Name, DirentType(node.Mode), index + 1);
                    if (added)
                        _view.AddLookup(node);
                }
                else
                {
                    added = buffer.TryAdd(node.Id, node.Name, DirentType(node.Mode), index + 1);
                }
            }
            if (!added)
                break;
        }
        request.ReplyData(buffer.Data);
    }

    public override void ReleaseDir(FuseRequest request, ulong nodeId, ulong fh)
    {
        _directories.Remove(fh);
        request.ReplyOk();
    }

    public override void Access(FuseRequest request, ulong nodeId, uint mask)
    {
        var node = _view.Find(nodeId);
        if (node is null)
            request.ReplyError(ENOENT);
        else
            ReplyDone(request, mask == 0 || Permissions.Allows(node, request.Caller, (int)mask) ? 0 : EACCES);
    }

    public override void Destroyed()
    {
        _view.Changed -= OnViewChanged;
        _handles.CloseAll();
    }

    /// <summary>Host changes reach the kernel's caches here; runs on the thread that changed the view.</summary>
    private void OnViewChanged(ViewChange change)
    {
        switch (change.Kind)
        {
            case ViewChangeKind.Added:
                _notifier.InvalidateEntry(change.ParentId, change.Name);
                break;
            case ViewChangeKind.Removed:
                if (change.Node is DeviceNode device)
                {
                    var revoked = _handles.RevokeOwnedBy(device);
                    if (revoked > 0)
                        _logger.LogInformation("Revoked {Count} open handles of {Path}: the device went", revoked, device.Path);
                }
                if (_notifier.Delete(change.ParentId, change.Node.Id, change.Name) != 0)
                    _notifier.InvalidateEntry(change.ParentId, change.Name);
                break;
            case ViewChangeKind.Changed:
                _notifier.InvalidateInode(change.Node.Id);
                break;
            case ViewChangeKind.Revoked:
                if (_handles.RevokeOwnedBy(change.Node) is var revokedCount and > 0)
                    _logger.LogInformation("Revoked {Count} open handles of {Name}: its device went", revokedCount, change.Name);
                break;
        }
    }

    private bool MayCreateIn(FuseRequest request, ulong parent)
    {
        var dir = _view.Find(parent);
        if (dir is null)
        {
            request.ReplyError(ENOENT);
            return false;
        }
        if (dir is not DirectoryNode)
        {
            request.ReplyError(ENOTDIR);
            return false;
        }
        if (!Permissions.Allows(dir, request.Caller, Permissions.Write | Permissions.Execute))
        {
            request.ReplyError(EACCES);
            return false;
        }
        return true;
    }

    private void ReplyMade(FuseRequest request, int error, ViewNode? node)
    {
        if (error != 0)
            request.ReplyError(error);
        else
            request.ReplyEntry(Entry(node!)); // the view took the reference when it made the node
    }

    private static void ReplyDone(FuseRequest request, int error)
    {
        if (error != 0)
            request.ReplyError(error);
        else
            request.ReplyOk();
    }

    private static int AccessWanted(int flags) => (flags & O_ACCMODE) switch
    {
        var m when m == O_WRONLY => Permissions.Write,
        var m when m == O_RDWR => Permissions.Read | Permissions.Write,
        _ => Permissions.Read,
    };

    private static fuse_entry_out NegativeEntry()
    {
        var (sec, nsec) = CacheValidityParts;
        return new fuse_entry_out { nodeid = 0, entry_valid = sec, entry_valid_nsec = nsec };
    }

    private static fuse_entry_out Entry(ViewNode node)
    {
        var (sec, nsec) = CacheValidityParts;
        return new fuse_entry_out
        {
            nodeid = node.Id,
            generation = 0,
            entry_valid = sec,
            entry_valid_nsec = nsec,
            attr_valid = sec,
            attr_valid_nsec = nsec,
            attr = Attributes(node),
        };
    }

    public static fuse_attr Attributes(ViewNode node)
    {
        var modified = new DateTimeOffset(node.Modified).ToUnixTimeMilliseconds();
        var changed = new DateTimeOffset(node.Changed).ToUnixTimeMilliseconds();
        var rdev = node is DeviceNode device ? device.Rdev : 0;
        return new fuse_attr
        {
            ino = node.Id,
            size = (ulong)node.Size,
            blocks = (ulong)((node.Size + 511) / 512),
            atime = (ulong)(modified / 1000),
            atimensec = (uint)(modified % 1000 * 1_000_000),
            mtime = (ulong)(modified / 1000),
            mtimensec = (uint)(modified % 1000 * 1_000_000),
            ctime = (ulong)(changed / 1000),
            ctimensec = (uint)(changed % 1000 * 1_000_000),
            mode = node.Mode,
            nlink = node is DirectoryNode ? 2u : 1u,
            uid = node.Uid,
            gid = node.Gid,
            rdev = EncodeRdev(rdev),
            blksize = 4096,
        };
    }

    /// <summary>fuse_attr.rdev is 32 bits, read by the kernel with new_decode_dev.</summary>
    public static uint EncodeRdev(ulong dev)
    {
        var major = HostDevice.MajorOf(dev);
        var minor = HostDevice.MinorOf(dev);
        return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
    }

    private static uint DirentType(uint mode) => (mode & StatMode.S_IFMT) >> 12;
}
