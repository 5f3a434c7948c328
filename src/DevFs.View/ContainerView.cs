using DevFs.Devices;
using DevFs.Ownership;
using DevFs.Policy;

using static Tmds.Linux.LibC;

namespace DevFs.View;

/// <summary>
/// One container's /dev: the host's devices that its policy shows, the policy's directories and
/// symlinks, and whatever processes made inside. All operations are atomic under one lock and answer
/// with 0 or a positive errno. Host changes are announced through <see cref="Changed"/>, raised after
/// the lock is released, on the thread that applied them.
/// </summary>
public sealed class ContainerView
{
    public const ulong RootId = 1;

    /// <summary>Bounds what a container can make inside its /dev, so that it cannot eat the daemon's memory.</summary>
    public const int MaxUserNodes = 4096;
    public const int MaxFileSize = 1 << 20;

    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, ViewNode> _nodes = new();
    private readonly Dictionary<string, DeviceNode> _byDevPath = new(StringComparer.Ordinal);

    /// <summary>Every node standing for a host device, shown or not (unlinked, or made with mknod): all are revoked when it goes.</summary>
    private readonly Dictionary<string, HashSet<DeviceNode>> _standIns = new(StringComparer.Ordinal);

    /// <summary>Devices whose entry the container removed: not shown again until the device itself comes back, as on devtmpfs.</summary>
    private readonly HashSet<string> _unlinkedByContainer = new(StringComparer.Ordinal);
    private readonly DevicePolicy _policy;
    private readonly bool _nodesUsable;
    private ulong _nextId = RootId + 1;
    private int _userNodes;

    /// <param name="policy">What the view shows.</param>
    /// <param name="container">The container's name for per-container policy rules and ownership, or null for the host's view.</param>
    /// <param name="nodesUsable">Whether the mount can open device nodes (root mount without nodev): decides Auto.</param>
    /// <param name="userNamespace">The container's user namespace: owners in the policy are ids inside it.</param>
    /// <param name="ownerOf">Which container a device was assigned to or made by at run time, if any.</param>
    public ContainerView(DevicePolicy policy, string? container, bool nodesUsable, IEnumerable<HostDevice> devices,
        UserNamespace? userNamespace = null, Func<HostDevice, string?>? ownerOf = null)
    {
        _policy = policy;
        Container = container;
        _nodesUsable = nodesUsable;
        Namespace = userNamespace ?? UserNamespace.Initial;
        _ownerOf = ownerOf ?? (_ => null);
        Root = new DirectoryNode(RootId, "", 0x1ED /* 0755 */, HostUid(0), HostGid(0), NodeOrigin.Policy);
        _nodes[RootId] = Root;
        Root.LookupCount = 1; // the kernel holds the root for the life of the mount
        foreach (var rule in policy.Directories)
            EnsureDirectory(rule.Path, rule.Mode, HostUid(rule.Uid), HostGid(rule.Gid), NodeOrigin.Policy, null);
        foreach (var rule in policy.Symlinks)
        {
            var (dir, name) = EnsureParent(rule.Path, null);
            if (dir is not null && !dir.Children.ContainsKey(name))
                Attach(dir, new SymlinkNode(NewId(), name, rule.Target, HostUid(0), HostGid(0), NodeOrigin.Policy));
        }
        foreach (var device in devices)
            AddDeviceLocked(device, null);
    }

    /// <summary>The user namespace the view's owners are translated from.</summary>
    public UserNamespace Namespace { get; }

    private readonly Func<HostDevice, string?> _ownerOf;

    public DirectoryNode Root { get; }
    public string? Container { get; }

    /// <summary>Host-caused changes, for the mount to invalidate the kernel's caches.</summary>
    public event Action<ViewChange>? Changed;

    public ViewNode? Find(ulong id)
    {
        lock (_lock)
            return _nodes.GetValueOrDefault(id);
    }

    /// <summary>Finds name in a directory and takes a lookup reference on it for the kernel.</summary>
    public int Lookup(ulong parentId, string name, out ViewNode? node)
    {
        node = null;
        lock (_lock)
        {
            if (!_nodes.TryGetValue(parentId, out var parent))
                return ENOENT;
            if (parent is not DirectoryNode dir)
                return ENOTDIR;
            if (!dir.Children.TryGetValue(name, out node))
                return ENOENT;
            node.LookupCount++;
            return 0;
        }
    }

    /// <summary>Takes a lookup reference (an entry handed to the kernel by READDIRPLUS or a create).</summary>
    public void AddLookup(ViewNode node)
    {
        lock (_lock)
            node.LookupCount++;
    }

    /// <summary>The kernel dropped references; a node both forgotten and detached is freed.</summary>
    public void Forget(ulong id, ulong count)
    {
        lock (_lock)
        {
            if (!_nodes.TryGetValue(id, out var node) || id == RootId)
                return;
            node.LookupCount = count >= node.LookupCount ? 0 : node.LookupCount - count;
            if (node.LookupCount == 0 && node.Parent is null)
                _nodes.Remove(id);
        }
    }

    /// <summary>The entries of a directory, in a stable order, as they are now.</summary>
    public int List(ulong id, out IReadOnlyList<ViewNode> entries)
    {
        entries = [];
        lock (_lock)
        {
            if (!_nodes.TryGetValue(id, out var node))
                return ENOENT;
            if (node is not DirectoryNode dir)
                return ENOTDIR;
            entries = dir.Children.Values.ToArray();
            return 0;
        }
    }

    public int MakeDirectory(ulong parentId, string name, uint mode, uint uid, uint gid, out ViewNode? node) =>
        MakeUserNode(parentId, name, id => new DirectoryNode(id, name, mode, uid, gid, NodeOrigin.User), out node);

    public int MakeSymlink(ulong parentId, string name, string target, uint uid, uint gid, out ViewNode? node) =>
        MakeUserNode(parentId, name, id => new SymlinkNode(id, name, target, uid, gid, NodeOrigin.User), out node);

    public int MakeFile(ulong parentId, string name, uint mode, uint uid, uint gid, out ViewNode? node) =>
        MakeUserNode(parentId, name, id => new FileNode(id, name, mode, uid, gid), out node);

    /// <summary>
    /// mknod: FIFOs, sockets and regular files are the container's own; a character or block device
    /// only if the policy shows that host device to this container (the device guard), else EPERM.
    /// </summary>
    public int MakeNode(ulong parentId, string name, uint mode, ulong rdev, uint uid, uint gid, out ViewNode? node)
    {
        node = null;
        switch (mode & StatMode.S_IFMT)
        {
            case StatMode.S_IFIFO:
            case StatMode.S_IFSOCK:
                return MakeUserNode(parentId, name, id => new SpecialNode(id, name, mode, uid, gid), out node);
            case StatMode.S_IFREG:
            case 0:
                return MakeFile(parentId, name, mode, uid, gid, out node);
            case StatMode.S_IFCHR:
            case StatMode.S_IFBLK:
                break;
            default:
                return EINVAL;
        }
        var kind = (mode & StatMode.S_IFMT) == StatMode.S_IFBLK ? DeviceKind.Block : DeviceKind.Char;
        lock (_lock)
        {
            var device = FindHostDevice(kind, HostDevice.MajorOf(rdev), HostDevice.MinorOf(rdev));
            var spec = device is null ? null : VisibleSpec(device);
            if (device is null || spec is null)
                return EPERM;
            var access = ResolveAccess(spec.Access);
            var entrySpec = spec with { Mode = mode & StatMode.PermissionBits, Uid = uid, Gid = gid };
            var error = MakeUserNodeLocked(parentId, name, id => new DeviceNode(id, name, device, entrySpec, access, NodeOrigin.User), out node);
            if (error == 0)
                StandIn((DeviceNode)node!);
            return error;
        }
    }

    /// <summary>unlink (directory: false) or rmdir (directory: true).</summary>
    public int Remove(ulong parentId, string name, bool directory)
    {
        lock (_lock)
        {
            if (!_nodes.TryGetValue(parentId, out var parent) || parent is not DirectoryNode dir)
                return ENOTDIR;
            if (!dir.Children.TryGetValue(name, out var node))
                return ENOENT;
            if (directory && node is not DirectoryNode)
                return ENOTDIR;
            if (!directory && node is DirectoryNode)
                return EISDIR;
            if (node is DirectoryNode { ChildCount: > 0 })
                return ENOTEMPTY;
            ForgetShownEntry(node);
            Detach(node);
            Touch(dir);
            return 0;
        }
    }

    public int Rename(ulong parentId, string name, ulong newParentId, string newName, bool noReplace)
    {
        lock (_lock)
        {
            if (!_nodes.TryGetValue(parentId, out var p) || p is not DirectoryNode from ||
                !_nodes.TryGetValue(newParentId, out var np) || np is not DirectoryNode to)
                return ENOTDIR;
            if (!from.Children.TryGetValue(name, out var node))
                return ENOENT;
            for (var up = (DirectoryNode?)to; up is not null; up = up.Parent)
            {
                if (up == node)
                    return EINVAL; // into itself
            }
            if (to.Children.TryGetValue(newName, out var existing))
            {
                if (existing == node)
                    return 0;
                if (noReplace)
                    return EEXIST;
                if (existing is DirectoryNode existingDir)
                {
                    if (node is not DirectoryNode)
                        return EISDIR;
                    if (existingDir.ChildCount > 0)
                        return ENOTEMPTY;
                }
                else if (node is DirectoryNode)
                {
                    return ENOTDIR;
                }
                ForgetShownEntry(existing);
                Detach(existing);
            }
            from.Children.Remove(name);
            node.Name = newName;
            node.Parent = to;
            to.Children[newName] = node;
            Touch(from);
            Touch(to);
            node.Changed = DateTime.UtcNow;
            return 0;
        }
    }

    /// <summary>chmod/chown/truncate/utimes. Only the file type is immutable.</summary>
    public int SetAttributes(ulong id, uint? mode, uint? uid, uint? gid, long? size, DateTime? modified)
    {
        lock (_lock)
        {
            if (!_nodes.TryGetValue(id, out var node))
                return ENOENT;
            if (size is { } newSize)
            {
                if (node is DirectoryNode)
                    return EISDIR;
                if (node is FileNode file)
                {
                    if (newSize < 0 || newSize > MaxFileSize)
                        return EFBIG;
                    var content = file.Content;
                    Array.Resize(ref content, (int)newSize);
                    file.Content = content;
                    file.Modified = DateTime.UtcNow;
                }
                // Truncating a device (O_TRUNC on a proxy entry) changes nothing, as on a real node.
            }
            if (mode is { } m)
                node.Mode = node.FileType | (m & StatMode.PermissionBits);
            if (uid is { } u)
                node.Uid = u;
            if (gid is { } g)
                node.Gid = g;
            if (modified is { } t)
                node.Modified = t;
            node.Changed = DateTime.UtcNow;
            return 0;
        }
    }

    /// <summary>Reads a file made in the mount.</summary>
    public int ReadFile(FileNode file, long offset, int size, out byte[] data)
    {
        lock (_lock)
        {
            var content = file.Content;
            if (offset >= content.Length)
            {
                data = [];
                return 0;
            }
            var count = (int)Math.Min(size, content.Length - offset);
            data = content.AsSpan((int)offset, count).ToArray();
            return 0;
        }
    }

    public int WriteFile(FileNode file, long offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            var end = offset + data.Length;
            if (offset < 0 || end > MaxFileSize)
                return EFBIG;
            var content = file.Content;
            if (end > content.Length)
                Array.Resize(ref content, (int)end);
            data.CopyTo(content.AsSpan((int)offset));
            file.Content = content;
            file.Modified = file.Changed = DateTime.UtcNow;
            return 0;
        }
    }

    /// <summary>A host device appeared (hotplug, or a resync found it).</summary>
    public void AddDevice(HostDevice device)
    {
        var changes = new List<ViewChange>();
        lock (_lock)
            AddDeviceLocked(device, changes);
        Raise(changes);
    }

    /// <summary>A host device went: its entry goes and its open handles are revoked.</summary>
    public void RemoveDevice(HostDevice device)
    {
        var changes = new List<ViewChange>();
        lock (_lock)
            RemoveDeviceLocked(device.DevPath, changes);
        Raise(changes);
    }

    /// <summary>A device's properties changed: the policy is asked again, and attributes follow.</summary>
    public void ChangeDevice(HostDevice device)
    {
        var changes = new List<ViewChange>();
        lock (_lock)
        {
            if (_byDevPath.TryGetValue(device.DevPath, out var existing))
            {
                var spec = VisibleSpec(device);
                if (spec is null || spec.Path != existing.Spec.Path || device.Rdev != existing.Device.Rdev ||
                    device.Kind != existing.Device.Kind || ResolveAccess(spec.Access) != existing.Access)
                {
                    RemoveDeviceLocked(device.DevPath, changes);
                    AddDeviceLocked(device, changes);
                }
                else
                {
                    existing.Device = device;
                    existing.Spec = spec;
                    existing.Mode = existing.FileType | (spec.Mode & StatMode.PermissionBits);
                    existing.Uid = spec.Uid;
                    existing.Gid = spec.Gid;
                    existing.Changed = DateTime.UtcNow;
                    changes.Add(new ViewChange(ViewChangeKind.Changed, existing.Parent!.Id, existing.Name, existing));
                }
            }
            else
            {
                AddDeviceLocked(device, changes);
            }
        }
        Raise(changes);
    }

    /// <summary>All device entries the view shows now, by path.</summary>
    public IReadOnlyList<DeviceNode> Devices()
    {
        lock (_lock)
            return _byDevPath.Values.OrderBy(d => d.Path, StringComparer.Ordinal).ToArray();
    }

    /// <summary>The host device a view entry of that kind and number stands for, if the view knows it.</summary>
    private HostDevice? FindHostDevice(DeviceKind kind, uint major, uint minor) =>
        _knownDevices.TryGetValue((kind, major, minor), out var device) ? device : null;

    private readonly Dictionary<(DeviceKind, uint, uint), HostDevice> _knownDevices = new();

    private void AddDeviceLocked(HostDevice device, List<ViewChange>? changes)
    {
        _knownDevices[(device.Kind, device.Major, device.Minor)] = device;
        if (_byDevPath.ContainsKey(device.DevPath) || _unlinkedByContainer.Contains(device.DevPath))
            return;
        var spec = VisibleSpec(device);
        if (spec is null)
            return;
        var (dir, name) = EnsureParent(spec.Path, changes);
        if (dir is null || dir.Children.ContainsKey(name))
            return; // a file of the container's or another device holds the name: leave it
        var node = new DeviceNode(NewId(), name, device, spec, ResolveAccess(spec.Access), NodeOrigin.HostDevice);
        Attach(dir, node);
        _byDevPath[device.DevPath] = node;
        StandIn(node);
        changes?.Add(new ViewChange(ViewChangeKind.Added, dir.Id, name, node));
    }

    private void RemoveDeviceLocked(string devPath, List<ViewChange> changes)
    {
        foreach (var key in _knownDevices.Where(kv => kv.Value.DevPath == devPath).Select(kv => kv.Key).ToArray())
            _knownDevices.Remove(key);
        TakeAwayLocked(devPath, changes);
    }

    /// <summary>
    /// The device is gone from this view (unplugged, or no longer this container's): its entry goes, and
    /// every node standing for it, shown or not, is revoked. A later comeback is shown afresh.
    /// </summary>
    private void TakeAwayLocked(string devPath, List<ViewChange> changes)
    {
        _unlinkedByContainer.Remove(devPath);
        HideDeviceLocked(devPath, changes);
        if (!_standIns.Remove(devPath, out var standIns))
            return;
        foreach (var node in standIns.Where(n => !n.Revoked))
        {
            node.Revoked = true;
            changes.Add(new ViewChange(ViewChangeKind.Revoked, node.Parent?.Id ?? 0, node.Name, node));
        }
    }

    private void StandIn(DeviceNode node)
    {
        if (!_standIns.TryGetValue(node.Device.DevPath, out var set))
            _standIns[node.Device.DevPath] = set = [];
        set.Add(node);
    }

    /// <summary>The container removed (or renamed over) the view's entry for a host device: it stays away.</summary>
    private void ForgetShownEntry(ViewNode node)
    {
        if (node is DeviceNode device && _byDevPath.TryGetValue(device.Device.DevPath, out var shown) && shown == device)
            _unlinkedByContainer.Add(device.Device.DevPath);
    }

    /// <summary>Takes a device's entry out of the view (unplugged, or no longer this container's).</summary>
    private void HideDeviceLocked(string devPath, List<ViewChange> changes)
    {
        if (!_byDevPath.Remove(devPath, out var node))
            return;
        node.Revoked = true;
        var dir = node.Parent;
        if (dir is null)
            return; // already unlinked inside the mount
        Detach(node);
        changes.Add(new ViewChange(ViewChangeKind.Removed, dir.Id, node.Name, node));
        // devtmpfs removes the folders it made for a device once they are empty; so do we.
        while (dir is { Origin: NodeOrigin.Implicit, ChildCount: 0, Parent: { } up })
        {
            Detach(dir);
            changes.Add(new ViewChange(ViewChangeKind.Removed, up.Id, dir.Name, dir));
            dir = up;
        }
    }

    /// <summary>
    /// Ownership changed (a device assigned, taken back, or made by a container): every known device
    /// is asked again whether this view shows it.
    /// </summary>
    public void Reevaluate()
    {
        var changes = new List<ViewChange>();
        lock (_lock)
        {
            foreach (var device in _knownDevices.Values.ToArray())
            {
                if (VisibleSpec(device) is null)
                    TakeAwayLocked(device.DevPath, changes);
                else if (!_byDevPath.ContainsKey(device.DevPath))
                    AddDeviceLocked(device, changes);
            }
        }
        Raise(changes);
    }

    /// <summary>
    /// The entry spec when this view shows the device: the host's view shows whatever the policy
    /// matches; a container's view shows global devices, its own policy rules' devices, and the devices
    /// it owns at run time. Owners are translated into host ids through the container's id maps.
    /// </summary>
    private DeviceEntrySpec? VisibleSpec(HostDevice device)
    {
        var spec = _policy.Match(device, Container);
        if (spec is null)
            return null;
        if (Container is not null && !spec.Global && spec.Rule.Container != Container && _ownerOf(device) != Container)
            return null;
        return spec with { Uid = HostUid(spec.Uid), Gid = HostGid(spec.Gid) };
    }

    private uint HostUid(uint containerUid) => Namespace.Uids.ToHost(containerUid) ?? IdMap.Overflow;

    private uint HostGid(uint containerGid) => Namespace.Gids.ToHost(containerGid) ?? IdMap.Overflow;

    private AccessMode ResolveAccess(AccessMode wanted) =>
        wanted == AccessMode.Auto ? (_nodesUsable ? AccessMode.Node : AccessMode.Proxy) : wanted;

    private int MakeUserNode(ulong parentId, string name, Func<ulong, ViewNode> make, out ViewNode? node)
    {
        lock (_lock)
            return MakeUserNodeLocked(parentId, name, make, out node);
    }

    private int MakeUserNodeLocked(ulong parentId, string name, Func<ulong, ViewNode> make, out ViewNode? node)
    {
        node = null;
        if (!_nodes.TryGetValue(parentId, out var parent) || parent is not DirectoryNode dir)
            return ENOTDIR;
        if (dir.Children.ContainsKey(name))
            return EEXIST;
        if (_userNodes >= MaxUserNodes)
            return ENOSPC;
        node = make(NewId());
        Attach(dir, node);
        node.LookupCount++;
        _userNodes++;
        Touch(dir);
        return 0;
    }

    /// <summary>Makes the folders of path (all but its last part); returns the parent and the last part.</summary>
    private (DirectoryNode? Parent, string Name) EnsureParent(string path, List<ViewChange>? changes)
    {
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
            return (null, "");
        var dir = Root;
        foreach (var part in parts[..^1])
        {
            // Owned by the container's root, as the view's root is (host 0 shows as nobody inside a userns).
            dir = EnsureChildDirectory(dir, part, 0x1ED /* 0755 */, HostUid(0), HostGid(0), NodeOrigin.Implicit, changes);
            if (dir is null)
                return (null, "");
        }
        return (dir, parts[^1]);
    }

    private void EnsureDirectory(string path, uint mode, uint uid, uint gid, NodeOrigin origin, List<ViewChange>? changes)
    {
        var (parent, name) = EnsureParent(path, changes);
        if (parent is not null)
            EnsureChildDirectory(parent, name, mode, uid, gid, origin, changes);
    }

    private DirectoryNode? EnsureChildDirectory(DirectoryNode dir, string name, uint mode, uint uid, uint gid, NodeOrigin origin, List<ViewChange>? changes)
    {
        if (dir.Children.TryGetValue(name, out var existing))
            return existing as DirectoryNode;
        var made = new DirectoryNode(NewId(), name, mode, uid, gid, origin);
        Attach(dir, made);
        changes?.Add(new ViewChange(ViewChangeKind.Added, dir.Id, name, made));
        return made;
    }

    private void Attach(DirectoryNode dir, ViewNode node)
    {
        dir.Children[node.Name] = node;
        node.Parent = dir;
        _nodes[node.Id] = node;
    }

    private void Detach(ViewNode node)
    {
        node.Parent?.Children.Remove(node.Name);
        node.Parent = null;
        if (node.Origin == NodeOrigin.User)
            _userNodes--;
        if (node is DeviceNode device && _byDevPath.TryGetValue(device.Device.DevPath, out var shown) && shown == device)
            _byDevPath.Remove(device.Device.DevPath);
        if (node.LookupCount == 0)
            _nodes.Remove(node.Id);
    }

    private static void Touch(DirectoryNode dir) => dir.Modified = dir.Changed = DateTime.UtcNow;

    private ulong NewId() => _nextId++;

    private void Raise(List<ViewChange> changes)
    {
        var handler = Changed;
        if (handler is null)
            return;
        foreach (var change in changes)
            handler(change);
    }
}
