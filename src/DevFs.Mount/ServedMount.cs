using DevFs.Devices;
using DevFs.Fuse;
using DevFs.Ownership;
using DevFs.Policy;
using DevFs.View;
using Microsoft.Extensions.Logging;
using static Tmds.Linux.LibC;

namespace DevFs.Mount;

/// <summary>What one mount serves: where, for which container, under which policy.</summary>
public sealed record MountRequest
{
    public required string MountPoint { get; init; }
    public required DevicePolicy Policy { get; init; }
    public string Source { get; init; } = "devfs";
    public string? Container { get; init; }

    /// <summary>The container's user namespace: policy owners are ids inside it.</summary>
    public UserNamespace? UserNamespace { get; init; }

    /// <summary>MS_NOSUID, MS_NOEXEC, MS_NODEV as asked; MS_NODEV makes "auto" entries proxies.</summary>
    public ulong MountFlags { get; init; } = FuseMount.MS_NOSUID | FuseMount.MS_NOEXEC;

    public FuseSessionOptions Session { get; init; } = new();
}

/// <summary>
/// One live devfs mount: the container's view, kept current from the host's device registry, served
/// over FUSE by worker threads. Disposing unmounts.
/// </summary>
public sealed class ServedMount : IDisposable
{
    private readonly DeviceRegistry _registry;
    private readonly ILogger _logger;
    private readonly FuseSession _session;
    private int _unmounted;

    private ServedMount(MountRequest request, DeviceRegistry registry, ContainerView view, DevFsFileSystem fs, FuseSession session, ILogger logger)
    {
        Request = request;
        _registry = registry;
        View = view;
        FileSystem = fs;
        _session = session;
        _logger = logger;
    }

    public MountRequest Request { get; }
    public ContainerView View { get; }
    public DevFsFileSystem FileSystem { get; }

    /// <summary>Completes when the kernel ended the connection (umount, or Unmount()).</summary>
    public Task Ended => _session.Ended;

    /// <summary>Whether this process, mounting this way, gets device nodes the kernel will open.</summary>
    public static bool CanServeNodes(ulong mountFlags) =>
        (mountFlags & FuseMount.MS_NODEV) == 0 && geteuid() == 0 && InInitialUserNamespace();

    /// <summary>Mounts, negotiates INIT and starts serving; returns once the mount is live.</summary>
    public static ServedMount Start(MountRequest request, DeviceRegistry registry, AssignmentStore assignments, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("devfs.mount");
        var view = new ContainerView(request.Policy, request.Container, CanServeNodes(request.MountFlags), [],
            request.UserNamespace, device => assignments.OwnerOf(device.DevName));
        Action reevaluate = view.Reevaluate;
        assignments.Changed += reevaluate;
        var fs = new DevFsFileSystem(view, loggers.CreateLogger("devfs.fs"), assignments);
        // Subscribe before taking the snapshot so that no event falls between the two.
        EventHandler<DeviceEventArgs> added = (_, e) => view.AddDevice(e.Device);
        EventHandler<DeviceEventArgs> removed = (_, e) => view.RemoveDevice(e.Device);
        EventHandler<DeviceEventArgs> changed = (_, e) => view.ChangeDevice(e.Device);
        registry.DeviceAdded += added;
        registry.DeviceRemoved += removed;
        registry.DeviceChanged += changed;
        foreach (var device in registry.Snapshot())
            view.AddDevice(device);

        FuseChannel channel;
        try
        {
            channel = FuseMount.Mount(request.MountPoint, new FuseMountOptions
            {
                Subtype = "devfs",
                Source = request.Source,
                Flags = request.MountFlags,
            });
        }
        catch
        {
            registry.DeviceAdded -= added;
            registry.DeviceRemoved -= removed;
            registry.DeviceChanged -= changed;
            assignments.Changed -= reevaluate;
            throw;
        }
        var session = new FuseSession(fs, channel, request.Session, loggers.CreateLogger("devfs.fuse"));
        var mount = new ServedMount(request, registry, view, fs, session, logger);
        session.Ended.ContinueWith(_ =>
        {
            registry.DeviceAdded -= added;
            registry.DeviceRemoved -= removed;
            registry.DeviceChanged -= changed;
            assignments.Changed -= reevaluate;
            session.Dispose();
        }, TaskScheduler.Default);
        try
        {
            session.Start();
        }
        catch
        {
            mount.Unmount();
            throw;
        }
        logger.LogInformation("Serving {MountPoint} for {Container} (user namespace {Namespace}) with {Policy}: {Count} devices, {Access}",
            request.MountPoint, request.Container ?? "(no container)", view.Namespace.Inode == 0 ? "initial" : view.Namespace.Inode.ToString(System.Globalization.CultureInfo.InvariantCulture),
            request.Policy.Source, view.Devices().Count,
            CanServeNodes(request.MountFlags) ? "auto entries as device nodes" : "auto entries as proxies");
        return mount;
    }

    /// <summary>Unmounts (lazily, as umount -l); the workers stop when the kernel ends the connection.</summary>
    public void Unmount()
    {
        if (Interlocked.Exchange(ref _unmounted, 1) != 0)
            return;
        try
        {
            FuseMount.Unmount(Request.MountPoint);
        }
        catch (IOException e)
        {
            _logger.LogError("Unmounting {MountPoint} failed: {Error}. Run: umount -l {MountPoint}", Request.MountPoint, e.Message, Request.MountPoint);
        }
    }

    public void Dispose() => Unmount();

    /// <summary>The initial user namespace maps all 2^32 ids onto themselves.</summary>
    private static bool InInitialUserNamespace()
    {
        try
        {
            var map = File.ReadAllText("/proc/self/uid_map").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return map is ["0", "0", "4294967295"];
        }
        catch (IOException)
        {
            return false;
        }
    }
}
