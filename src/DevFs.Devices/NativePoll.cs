using System.Runtime.InteropServices;
using Tmds.Linux;

namespace DevFs.Devices;

/// <summary>
/// poll(2) with its errno captured at the call (SetLastError). Reading errno separately after poll returned can see
/// a stale value from an earlier call on the thread (EAGAIN of the last recvfrom), which once turned an EINTR from
/// SIGSTOP/SIGCONT into a fatal "poll failed: EAGAIN" that stopped the uevent monitor for good.
/// </summary>
internal static unsafe partial class NativePoll
{
    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int poll_(pollfd* fds, ulong nfds, int timeout);

    /// <summary>poll(2), retried on EINTR (and on EAGAIN/ENOMEM after 1 ms); the count, or -1 with <paramref name="error"/>.</summary>
    public static int Poll(pollfd* fds, int count, int timeoutMs, out int error)
    {
        while (true)
        {
            int r = poll_(fds, (ulong)count, timeoutMs);
            if (r >= 0)
            {
                error = 0;
                return r;
            }
            error = Marshal.GetLastPInvokeError();
            if (error == LibC.EINTR)
                continue;
            if (error == LibC.EAGAIN || error == LibC.ENOMEM)
            {
                Thread.Sleep(1);
                continue;
            }
            return -1;
        }
    }
}
