namespace DevFs.Proxy;

/// <summary>
/// A blocking read or write that met EAGAIN and waits on the <see cref="ProxyPoller"/> instead of on a
/// thread, seen only as "something to answer later". The poller completes it exactly once, from its own
/// thread (or a revoking or interrupting one); it never learns what protocol the answer goes out on, which
/// keeps this layer free of FUSE (the mount adapts its request tokens to this).
/// </summary>
public interface IParkedIo
{
    /// <summary>True once answered by anyone; the poller drops such a waiter instead of doing its I/O.</summary>
    bool IsCompleted { get; }

    /// <summary>Answers a parked read with the bytes read (the span is only valid during the call).</summary>
    void CompleteWithData(ReadOnlySpan<byte> data);

    /// <summary>Answers a parked write with the number of bytes written.</summary>
    void CompleteWithCount(uint count);

    /// <summary>Answers with a positive errno: EINTR when interrupted, ENODEV when the handle was revoked, or the I/O's own error.</summary>
    void CompleteWithError(int errno);

    /// <summary>
    /// Asks to be told when the waiting caller is interrupted (a signal), so the poller can take the waiter
    /// back and answer EINTR. If the interrupt came already, the callback runs at once, on this thread.
    /// </summary>
    void OnInterrupted(Action callback);
}
