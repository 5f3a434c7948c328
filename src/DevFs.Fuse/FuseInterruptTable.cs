namespace DevFs.Fuse;

/// <summary>
/// Matches INTERRUPT messages to the requests that asked to hear of them. An INTERRUPT may arrive on
/// another worker before the request's handler registered, so an unmatched one is remembered
/// (briefly, bounded) and delivered when the request registers.
/// </summary>
internal sealed class FuseInterruptTable
{
    private const int MaxEarlyInterrupts = 1024;
    private readonly Dictionary<ulong, FuseRequest> _waiting = new();
    private readonly HashSet<ulong> _early = new();
    private readonly Queue<ulong> _earlyOrder = new();
    private readonly Lock _lock = new();

    /// <summary>Registers a request; true when its interrupt already arrived.</summary>
    public bool Register(FuseRequest request)
    {
        lock (_lock)
        {
            if (_early.Remove(request.Unique))
                return true;
            _waiting[request.Unique] = request;
            return false;
        }
    }

    public void Unregister(FuseRequest request)
    {
        lock (_lock)
            _waiting.Remove(request.Unique);
    }

    public void Interrupt(ulong unique)
    {
        FuseRequest? request;
        lock (_lock)
        {
            if (!_waiting.Remove(unique, out request))
            {
                if (_early.Add(unique))
                {
                    _earlyOrder.Enqueue(unique);
                    while (_earlyOrder.Count > MaxEarlyInterrupts)
                        _early.Remove(_earlyOrder.Dequeue());
                }
                return;
            }
        }
        request.Interrupt();
    }
}
