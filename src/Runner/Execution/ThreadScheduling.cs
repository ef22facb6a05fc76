using System.Runtime.InteropServices;

namespace TorchTrials.Runner.Execution;

/// <summary>
/// Linux scheduling hints for trial threads. The controller feeds every trial; with more trial threads than cores, a
/// woken trial thread would otherwise preempt the controller (CFS wake-up preemption) and stall all the others.
/// Trial threads therefore run as SCHED_BATCH (no wake-up preemption, same CPU share as normal threads) with a mildly
/// lower nice value. Both are unprivileged; elsewhere this does nothing.
/// </summary>
internal static partial class ThreadScheduling
{
    private const int SchedBatch = 3;
    private const int PrioProcess = 0;

    public static void MakeCurrentThreadBatch(int nice = 2)
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            int tid = gettid();
            var param = new SchedParam();
            _ = sched_setscheduler(tid, SchedBatch, ref param);
            _ = setpriority(PrioProcess, tid, nice);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc: keep the default policy.
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SchedParam
    {
        public int Priority;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int gettid();

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_setscheduler(int pid, int policy, ref SchedParam param);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setpriority(int which, int who, int prio);
}
