using static Tmds.Linux.LibC;

namespace DevFs.Proxy;

/// <summary>
/// One epoll thread per mount that waits on real device descriptors for two kinds of waiter:
/// a poll(2)/select/epoll caller's kh (on FUSE: FUSE_POLL with SCHEDULE_NOTIFY), woken once through the
/// wakeup callback (NOTIFY_POLL) when the descriptor becomes ready; and blocking reads and writes that met
/// EAGAIN, parked here as <see cref="IParkedIo"/> (no worker thread waits) and completed from this thread
/// when the descriptor is ready, with EINTR when the caller is interrupted, with ENODEV when the handle is
/// revoked.
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

    /// <param name="wakeup">Wakes the poll waiter kh (the mount sends NOTIFY_POLL); called from the poller thread or a revoking thread.</param>
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

    /// <summary>Reads and writes parked now (for tests and status).</summary>
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

    /// <summary>
    /// Parks a blocking read until the descriptor is readable; the poller completes io, with EINTR if the
    /// caller is interrupted first. False if the handle is revoked (io is untouched: answer it ENODEV).
    /// </summary>
    public bool ParkRead(ProxyHandle handle, IParkedIo io, int size, long offset) =>
        Park(handle, new Parked(io, PollIn, size, null, offset));

    /// <summary>Parks a blocking write (data already copied: the caller's buffer does not outlive its call) until the descriptor is writable; as <see cref="ParkRead"/>.</summary>
    public bool ParkWrite(ProxyHandle handle, IParkedIo io, byte[] data, long offset) =>
        Park(handle, new Parked(io, PollOut, 0, data, offset));

    /// <summary>Takes a parked waiter back (its caller was interrupted); true if it was still parked, so the taker answers it.</summary>
    private bool Unpark(ProxyHandle handle, IParkedIo io)
    {
        lock (_lock)
        {
            if (!_watches.TryGetValue(handle, out var watch))
                return false;
            var index = watch.Parked.FindIndex(p => ReferenceEquals(p.Io, io));
            if (index < 0)
                return false;
            watch.Parked.RemoveAt(index);
            Arm(watch);
            return true;
        }
    }

    /// <summary>The handle was revoked or closed: wake its pollers, answer its parked reads and writes ENODEV, let go of its descriptor.</summary>
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
            parked.Io.CompleteWithError(ENODEV);
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
        }
        // Asked only once parked, and outside the lock: an interrupt that came already runs the callback
        // at once, and Unpark takes the lock. Whoever takes the waiter out of the list answers it, so an
        // interrupt racing a completion or a revocation answers it once.
        var io = parked.Io;
        io.OnInterrupted(() =>
        {
            if (Unpark(handle, io))
                io.CompleteWithError(EINTR);
        });
        return true;
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

    /// <summary>Under the lock: collects the pollers to wake, completes parked reads and writes that can now go, re-arms.</summary>
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
            if (parked.Io.IsCompleted)
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
                    parked.Io.CompleteWithError(-n);
                else
                    parked.Io.CompleteWithData(buffer.AsSpan(0, n));
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
            parked.Io.CompleteWithError(-written);
        else
            parked.Io.CompleteWithCount((uint)written);
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

    private sealed record Parked(IParkedIo Io, uint Events, int Size, byte[]? Data, long Offset);
}
