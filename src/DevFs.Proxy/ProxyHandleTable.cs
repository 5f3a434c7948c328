namespace DevFs.Proxy;

/// <summary>The open proxy handles of one mount, by the fh the kernel passes back, and the mount's poller.</summary>
public sealed class ProxyHandleTable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, ProxyHandle> _handles = new();
    private ulong _next = 1;
    private ProxyPoller? _poller;
    private bool _closed;

    /// <summary>The mount's one epoll thread, started on first use; null once the table is closed.</summary>
    public ProxyPoller? Poller(Action<ulong> wakeup)
    {
        lock (_lock)
        {
            if (_closed)
                return null;
            return _poller ??= new ProxyPoller(wakeup);
        }
    }

    /// <summary>The poller if it was started.</summary>
    public ProxyPoller? ExistingPoller
    {
        get
        {
            lock (_lock)
                return _poller;
        }
    }

    public int Count
    {
        get
        {
            lock (_lock)
                return _handles.Count;
        }
    }

    public ulong Add(ProxyHandle handle)
    {
        lock (_lock)
        {
            var fh = _next++;
            _handles[fh] = handle;
            // Revoked or closed: the poller wakes its pollers, answers its parked requests, lets go of the fd.
            handle.RevokedCallback = h => ExistingPoller?.Forget(h);
            return fh;
        }
    }

    public ProxyHandle? Get(ulong fh)
    {
        lock (_lock)
            return _handles.GetValueOrDefault(fh);
    }

    /// <summary>Takes the handle out of the table (RELEASE).</summary>
    public ProxyHandle? Remove(ulong fh)
    {
        lock (_lock)
            return _handles.Remove(fh, out var handle) ? handle : null;
    }

    /// <summary>Revokes every handle opened through owner; returns how many.</summary>
    public int RevokeOwnedBy(object owner)
    {
        ProxyHandle[] owned;
        lock (_lock)
            owned = _handles.Values.Where(h => ReferenceEquals(h.Owner, owner)).ToArray();
        foreach (var handle in owned)
            handle.Revoke();
        return owned.Length;
    }

    /// <summary>Closes every handle (the mount ended).</summary>
    public void CloseAll()
    {
        ProxyHandle[] all;
        ProxyPoller? poller;
        lock (_lock)
        {
            all = _handles.Values.ToArray();
            _handles.Clear();
            poller = _poller;
            _closed = true;
        }
        foreach (var handle in all)
            handle.Close();
        poller?.Dispose();
    }
}
