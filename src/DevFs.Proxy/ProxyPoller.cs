using DevFs.Fuse;
using static Tmds.Linux.LibC;

namespace DevFs.Proxy;

/// <summary>
/// One epoll thread per mount that waits on real device descriptors for two kinds of waiter:
/// a poll(2)/select/epoll caller's kh (FUSE_POLL with SCHEDULE_NOTIFY), woken once with NOTIFY_POLL
/// when the descriptor becomes ready; and blocking reads and writes that met EAGAIN, parked here as
/// request tokens (no worker thread waits) and answered from this thread when the descriptor is ready,
/// with EINTR when the kernel interrupts them, with ENODEV when the handle is revoked.
/// </summary>
public sealed unsafe class ProxyPoller : IDisposable
{
    private const uint PollIn = 0x001, PollPri = 0x002, PollOut = 0x004, PollErr = 0x008, PollHup = 0x010;

    private readonly Action<ulong> _wakeup;
    private readonly Lock _lock = new();
    private readonly Dictionary<ProxyHandle, Watch> _watches = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<ulong, Watch> _byId = new();
    private readonly int _epoll;
    private readonly int _stop;
    private readonly Thread _thread;
    private ulong _nextId = 1;
    private int _disposed;

    /// <param name="wakeup">Sends NOTIFY_POLL for a kh (FuseNotifier.PollWakeup); called from the poller thread or a revoking thread.</param>
    public ProxyPoller(Action<ulong> wakeup)
    {
        _wakeup = wakeup;
        _epoll = Native.EpollCreate1(Native.EPOLL_CLOEXEC);
        if (_epoll < 0)
            throw new IOException($"epoll_create1 failed: errno {Native.LastError}");
        _stop = Native.EventFd(0, Native.EFD_CLOEXEC | Native.EFD_NONBLOCK);
        if (_stop < 0)
        {
            var error = Native.LastError;
            close(_epoll);
            throw new IOException($"eventfd failed: errno {error}");
        }
        var ev = new Native.EpollEvent { Events = PollIn, Data = 0 };
        Native.EpollCtl(_epoll, Native.EPOLL_CTL_ADD, _stop, &ev);
        _thread = new Thread(Loop) { IsBackground = true, Name = "devfs-poller" };
        _thread.Start();
    }

    /// <summary>Requests parked now (for tests and status).</summary>
    public int ParkedCount
    {
        get
        {
            lock (_lock)
                return _watches.Values.Sum(w => w.Parked.Count);
        }
    }

    /// <summary>Wake kh once when the handle's descriptor has any of events (or an error/hangup). False if the handle is revoked.</summary>
    public bool WatchPoll(ProxyHandle handle, ulong kh, uint events)
    {
        lock (_lock)
        {
            var watch = WatchFor(handle);
            if (watch is null)
                return false;
            watch.Pollers[kh] = watch.Pollers.GetValueOrDefault(kh) | events;
            Arm(watch);
            return true;
        }
    }

    /// <summary>Parks a blocking read until the descriptor is readable. False if the handle is revoked (answer ENODEV).</summary>
    public bool ParkRead(ProxyHandle handle, FuseRequest request, int size, long offset) =>
        Park(handle, new Parked(request, PollIn, size, null, offset));

    /// <summary>Parks a blocking write (data copied) until the descriptor is writable.</summary>
    public bool ParkWrite(ProxyHandle handle, FuseRequest request, byte[] data, long offset) =>
        Park(handle, new Parked(request, PollOut, 0, data, offset));

    /// <summary>Takes a parked request back (the kernel interrupted it); true if it was still parked, so the caller answers it.</summary>
    public bool Unpark(ProxyHandle handle, FuseRequest request)
    {
        lock (_lock)
        {
            if (!_watches.TryGetValue(handle, out var watch))
                return false;
            var index = watch.Parked.FindIndex(p => ReferenceEquals(p.Request, request));
            if (index < 0)
                return false;
            watch.Parked.RemoveAt(index);
            Arm(watch);
            return true;
        }
    }

    /// <summary>The handle was revoked or closed: wake its pollers, answer its parked requests ENODEV, let go of its descriptor.</summary>
    public void Forget(ProxyHandle handle)
    {
        Watch? watch;
        lock (_lock)
        {
            if (!_watches.Remove(handle, out watch))
                return;
            _byId.Remove(watch.Id);
            Native.EpollCtl(_epoll, Native.EPOLL_CTL_DEL, watch.Fd, null);
        }
        handle.ReleaseWatch();
        foreach (var kh in watch.Pollers.Keys)
            _wakeup(kh);
        foreach (var parked in watch.Parked)
            parked.Request.ReplyError(ENODEV);
    }

    private bool Park(ProxyHandle handle, Parked parked)
    {
        lock (_lock)
        {
            var watch = WatchFor(handle);
            if (watch is null)
                return false;
            watch.Parked.Add(parked);
            Arm(watch);
            return true;
        }
    }

    /// <summary>The handle's watch, made (and its descriptor referenced) on first use; null once revoked.</summary>
    private Watch? WatchFor(ProxyHandle handle)
    {
        if (_watches.TryGetValue(handle, out var watch))
            return watch;
        if (Volatile.Read(ref _disposed) != 0 || handle.Revoked || !handle.TryAddWatch(out var fd))
            return null;
        watch = new Watch(handle, fd, _nextId++);
        var ev = new Native.EpollEvent { Events = Native.EPOLLONESHOT, Data = watch.Id };
        if (Native.EpollCtl(_epoll, Native.EPOLL_CTL_ADD, fd, &ev) != 0)
        {
            handle.ReleaseWatch();
            return null;
        }
        _watches[handle] = watch;
        _byId[watch.Id] = watch;
        return watch;
    }

    /// <summary>Re-arms the one-shot registration for what the waiters want (nothing: stays disarmed).</summary>
    private void Arm(Watch watch)
    {
        uint events = 0;
        foreach (var e in watch.Pollers.Values)
            events |= e;
        foreach (var p in watch.Parked)
            events |= p.Events;
        events &= 0xFFFF;
        var ev = new Native.EpollEvent { Events = events == 0 ? 0 : events | Native.EPOLLONESHOT, Data = watch.Id };
        Native.EpollCtl(_epoll, Native.EPOLL_CTL_MOD, watch.Fd, &ev);
    }

    private void Loop()
    {
        const int Max = 64;
        var events = stackalloc Native.EpollEvent[Max];
        var wakeups = new List<ulong>();
        while (Volatile.Read(ref _disposed) == 0)
        {
            var n = Native.EpollWait(_epoll, events, Max, -1);
            if (n < 0)
            {
                if (Native.LastError == EINTR)
                    continue;
                return;
            }
            for (var i = 0; i < n; i++)
            {
                if (events[i].Data == 0)
                    continue; // the stop eventfd
                wakeups.Clear();
                lock (_lock)
                {
                    if (_byId.TryGetValue(events[i].Data, out var watch))
                        Dispatch(watch, events[i].Events, wakeups);
                }
                foreach (var kh in wakeups)
                    _wakeup(kh);
            }
        }
    }

    /// <summary>Under the lock: collects the pollers to wake, completes parked requests that can now go, re-arms.</summary>
    private void Dispatch(Watch watch, uint revents, List<ulong> wakeups)
    {
        var failed = (revents & (PollErr | PollHup)) != 0;
        foreach (var (kh, wanted) in watch.Pollers.ToArray())
        {
            if (failed || (wanted & revents) != 0)
            {
                wakeups.Add(kh);
                watch.Pollers.Remove(kh);
            }
        }
        // In arrival order; one that still meets EAGAIN (another reader took the data) keeps its place.
        for (var i = 0; i < watch.Parked.Count;)
        {
            var parked = watch.Parked[i];
            if (!failed && (parked.Events & revents) == 0)
            {
                i++;
                continue;
            }
            if (parked.Request.IsAnswered)
            {
                watch.Parked.RemoveAt(i);
                continue;
            }
            if (TryComplete(watch.Handle, parked))
                watch.Parked.RemoveAt(i);
            else
                i++;
        }
        Arm(watch);
    }

    /// <summary>Tries the parked read or write now; false on EAGAIN (keep waiting).</summary>
    private static bool TryComplete(ProxyHandle handle, Parked parked)
    {
        if (parked.Data is null)
        {
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(parked.Size);
            try
            {
                var n = handle.Read(buffer.AsSpan(0, parked.Size), parked.Offset);
                if (n == -EAGAIN)
                    return false;
                if (n < 0)
                    parked.Request.ReplyError(-n);
                else
                    parked.Request.ReplyData(buffer.AsSpan(0, n));
                return true;
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        var written = handle.Write(parked.Data, parked.Offset);
        if (written == -EAGAIN)
            return false;
        if (written < 0)
            parked.Request.ReplyError(-written);
        else
            parked.Request.ReplyWrite((uint)written);
        return true;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        ulong one = 1;
        write(_stop, &one, sizeof(ulong));
        if (Thread.CurrentThread != _thread)
            _thread.Join(TimeSpan.FromSeconds(5));
        ProxyHandle[] handles;
        lock (_lock)
            handles = _watches.Keys.ToArray();
        foreach (var handle in handles)
            Forget(handle);
        close(_stop);
        close(_epoll);
    }

    private sealed class Watch(ProxyHandle handle, int fd, ulong id)
    {
        public ProxyHandle Handle { get; } = handle;
        public int Fd { get; } = fd;
        public ulong Id { get; } = id;
        public Dictionary<ulong, uint> Pollers { get; } = new();
        public List<Parked> Parked { get; } = new();
    }

    private sealed record Parked(FuseRequest Request, uint Events, int Size, byte[]? Data, long Offset);
}
