namespace DevFs.Devices.Tests;

/// <summary>Collects a registry's events (raised on its monitor thread) and lets a test wait for them.</summary>
internal sealed class EventLog
{
    private readonly object _gate = new();
    public readonly List<(string Kind, DeviceEventArgs Args)> Events = new();
    public int ResyncCount;

    public EventLog(DeviceRegistry reg)
    {
        reg.DeviceAdded += (_, e) => Add("added", e);
        reg.DeviceRemoved += (_, e) => Add("removed", e);
        reg.DeviceChanged += (_, e) => Add("changed", e);
        reg.Resynced += (_, _) => { lock (_gate) { ResyncCount++; Monitor.PulseAll(_gate); } };
    }

    private void Add(string kind, DeviceEventArgs e)
    {
        lock (_gate)
        {
            Events.Add((kind, e));
            Monitor.PulseAll(_gate);
        }
    }

    public List<(string Kind, DeviceEventArgs Args)> Copy()
    {
        lock (_gate)
            return Events.ToList();
    }

    public int Total
    {
        get { lock (_gate) return Events.Count; }
    }

    public int Count(Func<(string Kind, DeviceEventArgs Args), bool> pred)
    {
        lock (_gate)
            return Events.Count(pred);
    }

    /// <summary>Waits until <paramref name="cond"/> holds (checked under the log's lock after each event).</summary>
    public bool WaitFor(Func<bool> cond, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        lock (_gate)
        {
            while (!cond())
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                    return false;
                Monitor.Wait(_gate, left < TimeSpan.FromMilliseconds(50) ? left : TimeSpan.FromMilliseconds(50));
            }
            return true;
        }
    }

    public (string Kind, DeviceEventArgs Args)? WaitForEvent(string kind, Func<DeviceEventArgs, bool> pred, TimeSpan timeout, int from = 0)
    {
        (string, DeviceEventArgs)? found = null;
        WaitFor(() =>
        {
            for (int i = from; i < Events.Count; i++)
            {
                var e = Events[i];
                if (e.Kind == kind && pred(e.Args))
                {
                    found = e;
                    return true;
                }
            }
            return false;
        }, timeout);
        return found;
    }
}
