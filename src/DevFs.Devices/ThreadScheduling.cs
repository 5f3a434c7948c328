using System.Runtime.InteropServices;

namespace DevFs.Devices;

/// <summary>What <see cref="ThreadScheduling.RaiseCurrent"/> managed to apply to the calling thread.</summary>
public enum ThreadSchedulingResult
{
    /// <summary>Nothing was changed (not root, or both system calls failed).</summary>
    Unchanged,

    /// <summary>SCHED_FIFO with the requested real-time priority.</summary>
    RealTime,

    /// <summary>SCHED_OTHER with a negative nice value.</summary>
    Nice,
}

/// <summary>
/// Raises the scheduling priority of the calling thread, for latency-critical threads such as the uevent monitor.
/// On a non-preemptible kernel a woken SCHED_OTHER thread may wait a whole scheduler tick behind a busy thread on
/// its core; a SCHED_FIFO thread preempts it at once.
/// </summary>
public static partial class ThreadScheduling
{
    private const int SCHED_FIFO = 1;
    private const int SCHED_RESET_ON_FORK = 0x40000000;
    private const int PRIO_PROCESS = 0;

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int gettid();

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint geteuid();

    [LibraryImport("libc", EntryPoint = "sched_setscheduler", SetLastError = true)]
    private static unsafe partial int sched_setscheduler(int pid, int policy, int* param);

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int setpriority(int which, uint who, int prio);

    /// <summary>The kernel thread id of the calling thread.</summary>
    public static int CurrentThreadId => gettid();

    /// <summary>
    /// As root: SCHED_FIFO at <paramref name="realTimePriority"/> (with SCHED_RESET_ON_FORK so children do not
    /// inherit it); if that fails, nice <paramref name="fallbackNice"/>. Does nothing when not root.
    /// </summary>
    /// <param name="detail">What was applied or why not, for a log line.</param>
    public static unsafe ThreadSchedulingResult RaiseCurrent(int realTimePriority, int fallbackNice, out string detail)
    {
        int tid = gettid();
        if (geteuid() != 0)
        {
            detail = $"thread {tid}: not root, scheduling unchanged";
            return ThreadSchedulingResult.Unchanged;
        }
        int prio = realTimePriority;
        if (sched_setscheduler(tid, SCHED_FIFO | SCHED_RESET_ON_FORK, &prio) == 0)
        {
            detail = $"thread {tid}: SCHED_FIFO priority {realTimePriority}";
            return ThreadSchedulingResult.RealTime;
        }
        int fifoErr = Marshal.GetLastPInvokeError();
        if (setpriority(PRIO_PROCESS, (uint)tid, fallbackNice) == 0)
        {
            detail = $"thread {tid}: SCHED_FIFO refused ({Marshal.GetPInvokeErrorMessage(fifoErr)}), nice {fallbackNice}";
            return ThreadSchedulingResult.Nice;
        }
        int niceErr = Marshal.GetLastPInvokeError();
        detail = $"thread {tid}: SCHED_FIFO refused ({Marshal.GetPInvokeErrorMessage(fifoErr)}), " +
                 $"nice {fallbackNice} refused ({Marshal.GetPInvokeErrorMessage(niceErr)}), scheduling unchanged";
        return ThreadSchedulingResult.Unchanged;
    }
}
