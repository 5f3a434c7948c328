using DevFs.Devices;
using DevFs.Fuse;
using DevFs.Mount;
using DevFs.Ownership;
using DevFs.Policy;
using DevFs.View;
using Microsoft.Extensions.Logging;

namespace DevFs.Cli.Service;

/// <summary>
/// One process serving many mounts, one per container, at STATE_DIR/NAME (/run/devfs/NAME): a single
/// device registry and assignment store feed every view. Mounts come and go through the control socket.
/// </summary>
public sealed class DevFsService : IDisposable
{
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, ServedMount> _mounts = new(StringComparer.Ordinal);

    public DevFsService(string stateDirectory, ILoggerFactory loggers)
    {
        StateDirectory = stateDirectory;
        _loggers = loggers;
        _logger = loggers.CreateLogger("devfs.service");
        Registry = new DeviceRegistry(new DeviceRegistryOptions(), loggers.CreateLogger("devfs.devices"));
        Assignments = new AssignmentStore(stateDirectory, loggers.CreateLogger("devfs.ownership"));
    }

    public string StateDirectory { get; }
    public DeviceRegistry Registry { get; }
    public AssignmentStore Assignments { get; }

    /// <summary>Raised for every host device event and every mount made or ended, as one line of text.</summary>
    public event Action<string>? Event;

    public void Start()
    {
        Directory.CreateDirectory(StateDirectory);
        Registry.DeviceAdded += (_, e) => Raise($"device added {e.Device.DevName} {e.Device.Major}:{e.Device.Minor} {e.Device.Subsystem}");
        Registry.DeviceRemoved += (_, e) => Raise($"device removed {e.Device.DevName} {e.Device.Major}:{e.Device.Minor} {e.Device.Subsystem}");
        Registry.DeviceChanged += (_, e) => Raise($"device changed {e.Device.DevName} {e.Device.Major}:{e.Device.Minor} {e.Device.Subsystem}");
        Assignments.Changed += () => Raise("assignments changed");
        Registry.Start();
        Assignments.StartWatching();
    }

    /// <summary>Mounts NAME's /dev with -o style options (container defaults to NAME). Returns null or the error.</summary>
    public string? Mount(string name, string options)
    {
        if (name.Length == 0 || name.Contains('/') || name is "." or ".." || name.StartsWith('.'))
            return $"'{name}' is not a usable mount name";
        MountOptions parsed;
        DevicePolicy policy;
        UserNamespace userNamespace;
        try
        {
            parsed = MountOptions.Parse([options]);
            policy = parsed.LoadPolicy();
            userNamespace = parsed.ResolveUserNamespace();
        }
        catch (UsageException e)
        {
            return e.Message;
        }
        catch (PolicyException e)
        {
            return "the policy has errors:\n" + e.Message;
        }
        var mountPoint = Path.Combine(StateDirectory, name);
        lock (_lock)
        {
            if (_mounts.ContainsKey(name))
                return $"{name} is mounted already at {mountPoint}";
            Directory.CreateDirectory(mountPoint);
            ServedMount mount;
            try
            {
                mount = ServedMount.Start(new MountRequest
                {
                    MountPoint = mountPoint,
                    Policy = policy,
                    Source = "devfs",
                    Container = parsed.Container ?? name,
                    UserNamespace = userNamespace,
                    MountFlags = parsed.MountFlags,
                    Session = parsed.Workers is { } workers ? new FuseSessionOptions { Workers = workers } : new FuseSessionOptions(),
                }, Registry, Assignments, _loggers);
            }
            catch (IOException e)
            {
                return $"mounting {mountPoint} failed: {e.Message}";
            }
            _mounts[name] = mount;
            mount.Ended.ContinueWith(_ =>
            {
                lock (_lock)
                    _mounts.Remove(name);
                Raise($"mount ended {name}");
            }, TaskScheduler.Default);
        }
        Raise($"mount started {name} {mountPoint}");
        return null;
    }

    public string? Unmount(string name)
    {
        ServedMount? mount;
        lock (_lock)
            _mounts.TryGetValue(name, out mount);
        if (mount is null)
            return $"{name} is not mounted by this service";
        mount.Unmount();
        return mount.Ended.Wait(TimeSpan.FromSeconds(10)) ? null : $"{name} did not end within 10 s; it is detached and ends when its last user goes";
    }

    public IReadOnlyList<(string Name, ServedMount Mount)> Mounts()
    {
        lock (_lock)
            return _mounts.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, kv.Value)).ToArray();
    }

    public ServedMount? Find(string name)
    {
        lock (_lock)
            return _mounts.GetValueOrDefault(name);
    }

    /// <summary>Unmounts everything (service stop) and waits for the sessions to end.</summary>
    public void UnmountAll()
    {
        var all = Mounts();
        foreach (var (_, mount) in all)
            mount.Unmount();
        Task.WaitAll(all.Select(m => m.Mount.Ended).ToArray(), TimeSpan.FromSeconds(10));
    }

    private void Raise(string line)
    {
        _logger.LogDebug("{Event}", line);
        Event?.Invoke(line);
    }

    public void Dispose()
    {
        UnmountAll();
        Registry.Dispose();
        Assignments.Dispose();
    }
}
