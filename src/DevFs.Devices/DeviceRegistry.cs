using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Devices;

/// <summary>A device appeared, went, or changed. Raised on the registry's monitor thread, in kernel order.</summary>
public sealed class DeviceEventArgs(HostDevice device, HostDevice? previous, UeventMessage? uevent) : EventArgs
{
    /// <summary>The device as now recorded; for DeviceRemoved, the last record before removal.</summary>
    public HostDevice Device { get; } = device;

    /// <summary>For DeviceChanged, the record it replaced; otherwise null.</summary>
    public HostDevice? Previous { get; } = previous;

    /// <summary>The uevent that caused this, or null when the difference was found by a sysfs resync.</summary>
    public UeventMessage? Uevent { get; } = uevent;

    public bool FromResync => Uevent is null;
}

/// <summary>A resync from sysfs finished (after ENOBUFS or on request); per-device events were raised before.</summary>
public sealed class ResyncEventArgs(string reason, int added, int removed, int changed) : EventArgs
{
    public string Reason { get; } = reason;
    public int Added { get; } = added;
    public int Removed { get; } = removed;
    public int Changed { get; } = changed;
}

/// <summary>Counters of a <see cref="DeviceRegistry"/>, for tests and status output.</summary>
public readonly record struct DeviceRegistryCounters(
    long Received, long Dropped, long Resyncs, long NodeEvents, long Stale, long SubscriberErrors, ulong LastSeqNum);

public sealed class DeviceRegistryOptions
{
    /// <summary>Where sysfs is mounted.</summary>
    public string SysRoot { get; init; } = "/sys";

    /// <summary>Receive buffer of the uevent socket (SO_RCVBUFFORCE, else SO_RCVBUF); null keeps the default.</summary>
    public int? ReceiveBufferSize { get; init; } = 16 * 1024 * 1024;

    /// <summary>
    /// Real-time priority of the monitor thread as root (SCHED_FIFO; 0 leaves the scheduling alone). A woken
    /// SCHED_OTHER thread can wait a full scheduler tick behind a busy thread on a non-preemptible kernel, which
    /// is what hotplug latency then measures.
    /// </summary>
    public int MonitorRealTimePriority { get; init; } = 1;

    /// <summary>Nice value of the monitor thread when SCHED_FIFO is refused.</summary>
    public int MonitorFallbackNice { get; init; } = -10;
}

/// <summary>
/// The host's device nodes, kept current. <see cref="Start"/> opens the uevent socket, then scans sysfs, then
/// runs a monitor thread that applies kernel uevents (group 1, sender port 0 only) and resyncs from sysfs when
/// the socket overflows. All look-ups are thread-safe; events are raised on the monitor thread, in kernel
/// order, after the registry has been updated, without any lock held.
/// </summary>
public sealed class DeviceRegistry : IDisposable
{
    private readonly string _sysRoot;
    private readonly int? _rcvBuf;
    private readonly int _rtPrio;
    private readonly int _fallbackNice;
    private readonly ILogger _log;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, HostDevice> _byPath = new(StringComparer.Ordinal);
    private readonly Dictionary<(DeviceKind, uint, uint), HostDevice> _byNum = new();
    private readonly Dictionary<string, HostDevice> _byName = new(StringComparer.Ordinal);
    private bool _indexConflicts;

    private readonly ManualResetEventSlim _gate = new(true);
    private UeventSocket? _socket;
    private int _eventFd = -1;
    private Thread? _thread;
    private volatile bool _stopping;
    private int _disposed;
    private int _resyncRequested;
    private volatile bool _running;

    /// <summary>Uevents with SEQNUM at or below this were emitted before the last sysfs scan began.</summary>
    private ulong _scanSeq;

    private long _received, _dropped, _resyncs, _nodeEvents, _stale, _subscriberErrors;
    private long _lastSeq;

    public DeviceRegistry(DeviceRegistryOptions? options = null, ILogger? logger = null)
    {
        options ??= new DeviceRegistryOptions();
        _sysRoot = SysfsDeviceScanner.NormalizeRoot(options.SysRoot);
        _rcvBuf = options.ReceiveBufferSize;
        _rtPrio = options.MonitorRealTimePriority;
        _fallbackNice = options.MonitorFallbackNice;
        _log = logger ?? NullLogger.Instance;
    }

    public event EventHandler<DeviceEventArgs>? DeviceAdded;
    public event EventHandler<DeviceEventArgs>? DeviceRemoved;
    public event EventHandler<DeviceEventArgs>? DeviceChanged;
    public event EventHandler<ResyncEventArgs>? Resynced;

    /// <summary>Datagrams read from the uevent socket (accepted or not).</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Datagrams discarded: not from the kernel, truncated, or malformed.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Resyncs from sysfs after the start (socket overflow or <see cref="RequestResync"/>).</summary>
    public long Resyncs => Interlocked.Read(ref _resyncs);

    public DeviceRegistryCounters Counters => new(
        Received, Dropped, Resyncs, Interlocked.Read(ref _nodeEvents), Interlocked.Read(ref _stale),
        Interlocked.Read(ref _subscriberErrors), (ulong)Interlocked.Read(ref _lastSeq));

    /// <summary>What scheduling the monitor thread got (set once it runs).</summary>
    public ThreadSchedulingResult MonitorPriority => _monitorPriority;

    private volatile ThreadSchedulingResult _monitorPriority;

    /// <summary>True while the monitor thread runs.</summary>
    public bool IsRunning => _running;

    /// <summary>The receive buffer the kernel granted to the uevent socket, or -1 before Start.</summary>
    public int ReceiveBufferSize => _socket?.ReceiveBufferSize ?? -1;

    public int Count
    {
        get { lock (_lock) return _byPath.Count; }
    }

    /// <summary>The current devices, sorted by DevPath.</summary>
    public IReadOnlyList<HostDevice> Snapshot()
    {
        List<HostDevice> list;
        lock (_lock)
            list = new List<HostDevice>(_byPath.Values);
        list.Sort((a, b) => string.CompareOrdinal(a.DevPath, b.DevPath));
        return list;
    }

    public HostDevice? FindByDevPath(string devPath)
    {
        lock (_lock)
            return _byPath.GetValueOrDefault(devPath);
    }

    public HostDevice? FindByDevNum(DeviceKind kind, uint major, uint minor)
    {
        lock (_lock)
            return _byNum.GetValueOrDefault((kind, major, minor));
    }

    /// <summary>By node path relative to /dev (e.g. "loop7", "input/event3").</summary>
    public HostDevice? FindByDevName(string devName)
    {
        lock (_lock)
            return _byName.GetValueOrDefault(devName);
    }

    /// <summary>Opens the uevent socket, scans sysfs and starts the monitor thread. Once only.</summary>
    public void Start()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_thread is not null)
            throw new InvalidOperationException("DeviceRegistry already started");

        // Socket first, then the scan: nothing that happens in between can be missed. Events already covered
        // by the scan are recognised by their SEQNUM (see _scanSeq).
        _socket = UeventSocket.Open(_rcvBuf);
        _eventFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (_eventFd < 0)
        {
            var e = UeventSocket.Error("eventfd");
            _socket.Dispose();
            _socket = null;
            throw e;
        }
        _scanSeq = SysfsDeviceScanner.ReadUeventSeqNum(_sysRoot) ?? 0;
        var devices = SysfsDeviceScanner.Scan(_sysRoot);
        lock (_lock)
            foreach (var d in devices)
                Put(d);
        _log.LogInformation("Device registry: {Count} nodes from {SysRoot}, uevent socket buffer {Buf} bytes",
            devices.Count, _sysRoot, _socket.ReceiveBufferSize);

        _running = true;
        _thread = new Thread(MonitorLoop) { IsBackground = true, Name = "devfs-uevent" };
        _thread.Start();
    }

    /// <summary>Asks the monitor thread to rescan sysfs and raise events for any difference.</summary>
    public void RequestResync()
    {
        Interlocked.Exchange(ref _resyncRequested, 1);
        Wake();
    }

    // ---- test hooks --------------------------------------------------------------------------------------

    /// <summary>Tests: stop reading the socket (the monitor blocks before its next recv) so the queue fills.</summary>
    internal void PauseMonitor() => _gate.Reset();

    internal void ResumeMonitor() => _gate.Set();

    /// <summary>Tests: fill the registry from sysfs without a socket or thread, then feed it uevents by hand.</summary>
    internal void LoadForTests()
    {
        _scanSeq = SysfsDeviceScanner.ReadUeventSeqNum(_sysRoot) ?? 0;
        lock (_lock)
            foreach (var d in SysfsDeviceScanner.Scan(_sysRoot))
                Put(d);
    }

    /// <summary>Tests: apply one uevent on the calling thread, as the monitor would.</summary>
    internal void ApplyForTests(UeventMessage msg) => Apply(msg);

    /// <summary>Tests: run a resync on the calling thread.</summary>
    internal void ResyncForTests() => Resync("test");

    /// <summary>Tests: the netlink port id of the registry's socket (to send it forged datagrams).</summary>
    internal uint SocketPortId => _socket?.PortId ?? 0;

    // ---- monitor thread -----------------------------------------------------------------------------------

    private unsafe void Wake()
    {
        int fd = _eventFd;
        if (fd < 0)
            return;
        ulong one = 1;
        write(fd, &one, sizeof(ulong));
    }

    private unsafe void MonitorLoop()
    {
        var buffer = new byte[UeventMessage.MaxDatagramSize + 1];
        var fds = stackalloc pollfd[2];
        try
        {
            RaisePriority();
            while (!_stopping)
            {
                fds[0] = new pollfd { fd = _socket!.Fd, events = POLLIN };
                fds[1] = new pollfd { fd = _eventFd, events = POLLIN };
                int r = NativePoll.Poll(fds, 2, -1, out int pollError);
                if (r < 0)
                    throw UeventSocket.Error("poll", pollError);
                if ((fds[1].revents & POLLIN) != 0)
                {
                    ulong v;
                    read(_eventFd, &v, sizeof(ulong));
                    if (_stopping)
                        break;
                    if (Interlocked.Exchange(ref _resyncRequested, 0) != 0)
                        SafeResync("requested");
                }
                if ((fds[0].revents & (POLLIN | POLLERR)) != 0)
                    Drain(buffer);
            }
        }
        catch (Exception e)
        {
            _log.LogCritical(e, "Uevent monitor stopped: the device registry no longer follows hotplug");
        }
        finally
        {
            _running = false;
            if (_stopping)
                CloseFds();
        }
    }

    private void RaisePriority()
    {
        if (_rtPrio <= 0)
            return;
        try
        {
            _monitorPriority = ThreadScheduling.RaiseCurrent(_rtPrio, _fallbackNice, out var detail);
            _log.LogDebug("Uevent monitor scheduling: {Detail}", detail);
        }
        catch (Exception e)
        {
            _log.LogDebug(e, "Uevent monitor scheduling unchanged");
        }
    }

    private void Drain(byte[] buffer)
    {
        while (!_stopping)
        {
            _gate.Wait();
            if (_stopping)
                return;
            var res = _socket!.Receive(buffer);
            switch (res.Status)
            {
                case UeventReceiveStatus.WouldBlock:
                    return;
                case UeventReceiveStatus.Overflow:
                    _log.LogWarning("Uevent socket overflowed (ENOBUFS); resyncing from sysfs");
                    SafeResync("ENOBUFS");
                    break;
                case UeventReceiveStatus.Dropped:
                    Interlocked.Increment(ref _received);
                    Interlocked.Increment(ref _dropped);
                    _log.LogWarning("Dropped uevent datagram: {Reason}", res.Reason);
                    break;
                case UeventReceiveStatus.Message:
                    Interlocked.Increment(ref _received);
                    if (!UeventMessage.TryParse(buffer.AsSpan(0, res.Length), out var msg, out var error))
                    {
                        Interlocked.Increment(ref _dropped);
                        _log.LogWarning("Dropped malformed uevent: {Error}", error);
                        break;
                    }
                    try
                    {
                        Apply(msg!);
                    }
                    catch (Exception e)
                    {
                        _log.LogError(e, "Failed to apply uevent {Uevent}", msg);
                    }
                    break;
            }
        }
    }

    private void SafeResync(string reason)
    {
        try
        {
            Resync(reason);
        }
        catch (Exception e)
        {
            _log.LogError(e, "Resync from sysfs failed");
        }
    }

    private void Apply(UeventMessage msg)
    {
        Interlocked.Exchange(ref _lastSeq, (long)msg.SeqNum);
        bool stale = msg.SeqNum <= _scanSeq;
        switch (msg.Action)
        {
            case UeventAction.Remove:
            {
                if (!msg.HasNode && FindByDevPath(msg.DevPath) is null)
                    return;
                Interlocked.Increment(ref _nodeEvents);
                // Older than the last scan and the directory is back: the scan saw a newer device there.
                if (stale && Directory.Exists(_sysRoot + msg.DevPath))
                {
                    Interlocked.Increment(ref _stale);
                    return;
                }
                HostDevice? old;
                lock (_lock)
                    old = Take(msg.DevPath);
                if (old is not null)
                    Raise(DeviceRemoved, new DeviceEventArgs(old, null, msg));
                return;
            }
            case UeventAction.Move:
            {
                if (msg.DevPathOld is not null)
                {
                    HostDevice? old;
                    lock (_lock)
                        old = Take(msg.DevPathOld);
                    if (old is not null)
                    {
                        Interlocked.Increment(ref _nodeEvents);
                        Raise(DeviceRemoved, new DeviceEventArgs(old, null, msg));
                    }
                }
                if (msg.HasNode)
                {
                    Interlocked.Increment(ref _nodeEvents);
                    Upsert(msg, alwaysChanged: false);
                }
                return;
            }
            default:
                if (!msg.HasNode)
                    return;
                Interlocked.Increment(ref _nodeEvents);
                if (stale)
                {
                    Interlocked.Increment(ref _stale);
                    return;
                }
                Upsert(msg, alwaysChanged: msg.Action == UeventAction.Change);
                return;
        }
    }

    private void Upsert(UeventMessage msg, bool alwaysChanged)
    {
        var dev = SysfsDeviceScanner.Read(msg.DevPath, _sysRoot)
                  ?? msg.ToHostDevice(new SysfsAttributes(msg.DevPath, _sysRoot))!;
        HostDevice? old;
        lock (_lock)
        {
            old = _byPath.GetValueOrDefault(msg.DevPath);
            if (old is not null && !alwaysChanged && SysfsDeviceScanner.SameContent(old, dev))
                return;
            if (old is not null)
                Take(old.DevPath);
            Put(dev);
        }
        if (old is null)
            Raise(DeviceAdded, new DeviceEventArgs(dev, null, msg));
        else
            Raise(DeviceChanged, new DeviceEventArgs(dev, old, msg));
    }

    private void Resync(string reason)
    {
        ulong seq = SysfsDeviceScanner.ReadUeventSeqNum(_sysRoot) ?? 0;
        var scanned = SysfsDeviceScanner.Scan(_sysRoot);
        var removed = new List<HostDevice>();
        var added = new List<HostDevice>();
        var changed = new List<(HostDevice Old, HostDevice New)>();
        lock (_lock)
        {
            var now = new Dictionary<string, HostDevice>(scanned.Count, StringComparer.Ordinal);
            foreach (var d in scanned)
                now[d.DevPath] = d;
            foreach (var path in _byPath.Keys.ToList())
                if (!now.ContainsKey(path))
                    removed.Add(Take(path)!);
            foreach (var d in scanned)
            {
                var old = _byPath.GetValueOrDefault(d.DevPath);
                if (old is null)
                {
                    Put(d);
                    added.Add(d);
                }
                else if (!SysfsDeviceScanner.SameContent(old, d))
                {
                    Take(old.DevPath);
                    Put(d);
                    changed.Add((old, d));
                }
            }
            if (seq > _scanSeq)
                _scanSeq = seq;
        }
        Interlocked.Increment(ref _resyncs);
        _log.LogInformation("Resync ({Reason}): {Added} added, {Removed} removed, {Changed} changed",
            reason, added.Count, removed.Count, changed.Count);
        foreach (var d in removed)
            Raise(DeviceRemoved, new DeviceEventArgs(d, null, null));
        foreach (var d in added)
            Raise(DeviceAdded, new DeviceEventArgs(d, null, null));
        foreach (var (o, n) in changed)
            Raise(DeviceChanged, new DeviceEventArgs(n, o, null));
        var h = Resynced;
        if (h is not null)
        {
            var args = new ResyncEventArgs(reason, added.Count, removed.Count, changed.Count);
            foreach (var d in h.GetInvocationList())
            {
                try
                {
                    ((EventHandler<ResyncEventArgs>)d)(this, args);
                }
                catch (Exception e)
                {
                    Interlocked.Increment(ref _subscriberErrors);
                    _log.LogError(e, "A Resynced subscriber threw");
                }
            }
        }
    }

    private void Raise(EventHandler<DeviceEventArgs>? handler, DeviceEventArgs args)
    {
        if (handler is null)
            return;
        foreach (var d in handler.GetInvocationList())
        {
            try
            {
                ((EventHandler<DeviceEventArgs>)d)(this, args);
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref _subscriberErrors);
                _log.LogError(e, "A device event subscriber threw on {DevPath}", args.Device.DevPath);
            }
        }
    }

    // ---- indices (call with _lock held) --------------------------------------------------------------------

    private void Put(HostDevice d)
    {
        _byPath[d.DevPath] = d;
        var num = (d.Kind, d.Major, d.Minor);
        if (_byNum.TryGetValue(num, out var n) && n.DevPath != d.DevPath)
            _indexConflicts = true;
        _byNum[num] = d;
        if (_byName.TryGetValue(d.DevName, out var m) && m.DevPath != d.DevPath)
            _indexConflicts = true;
        _byName[d.DevName] = d;
    }

    private HostDevice? Take(string devPath)
    {
        if (!_byPath.Remove(devPath, out var d))
            return null;
        var num = (d.Kind, d.Major, d.Minor);
        if (_byNum.TryGetValue(num, out var n) && n.DevPath == devPath)
        {
            _byNum.Remove(num);
            if (_indexConflicts)
                foreach (var other in _byPath.Values)
                    if ((other.Kind, other.Major, other.Minor) == num)
                    {
                        _byNum[num] = other;
                        break;
                    }
        }
        if (_byName.TryGetValue(d.DevName, out var m) && m.DevPath == devPath)
        {
            _byName.Remove(d.DevName);
            if (_indexConflicts)
                foreach (var other in _byPath.Values)
                    if (other.DevName == d.DevName)
                    {
                        _byName[d.DevName] = other;
                        break;
                    }
        }
        return d;
    }

    // ---- shutdown -----------------------------------------------------------------------------------------

    private void CloseFds()
    {
        _socket?.Dispose();
        int fd = Interlocked.Exchange(ref _eventFd, -1);
        if (fd >= 0)
            close(fd);
    }

    /// <summary>Stops the monitor thread (woken through an eventfd) and closes the socket.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stopping = true;
        var t = _thread;
        if (t is null)
        {
            CloseFds();
            _gate.Dispose();
            return;
        }
        Wake();
        _gate.Set();
        if (t != Thread.CurrentThread)
        {
            t.Join();
            CloseFds(); // the loop closes them when it sees _stopping; this covers a loop that had faulted
        }
        // Called from a subscriber: the loop exits and closes the descriptors when the handler returns.
    }
}
