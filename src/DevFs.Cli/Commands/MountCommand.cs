using System.Diagnostics;
using System.Runtime.InteropServices;
using DevFs.Devices;
using DevFs.Fuse;
using DevFs.Mount;
using DevFs.Ownership;
using DevFs.Policy;
using Microsoft.Extensions.Logging;
using static Tmds.Linux.LibC;

namespace DevFs.Cli.Commands;

/// <summary>
/// devfs SOURCE MOUNTPOINT [-o OPTIONS] [-f]: the form mount.fuse3 runs. In the background form the
/// command starts itself again in the foreground, detached, and returns when that copy says the mount
/// is live (or why it is not), so that `mount` reports success only for a working mount.
/// </summary>
public static unsafe class MountCommand
{
    /// <summary>The background copy reports readiness on this inherited pipe.</summary>
    private const string ReadyFdVariable = "DEVFS_READY_FD";

    /// <summary>Set for the background copy: it detaches from the caller's session and stdio.</summary>
    private const string DetachVariable = "DEVFS_DETACH";

    public static int Run(string[] args)
    {
        var positional = new List<string>();
        var optionLists = new List<string>();
        var foreground = false;
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (arg == "-f")
                foreground = true;
            else if (arg == "-o")
                optionLists.Add(i + 1 < args.Length ? args[++i] : throw new UsageException("-o needs options"));
            else if (arg.StartsWith("-o", StringComparison.Ordinal))
                optionLists.Add(arg[2..]);
            else if (arg is "-d" or "--debug")
                optionLists.Add("debug");
            else if (arg.StartsWith('-'))
                throw new UsageException($"unknown flag '{arg}'");
            else
                positional.Add(arg);
        }
        if (positional.Count != 2)
            throw new UsageException("give SOURCE and MOUNTPOINT, e.g. devfs devfs /run/devfs/web -o container=web");
        var options = MountOptions.Parse(optionLists);
        var userNamespace = options.ResolveUserNamespace();
        var source = positional[0];
        var mountPoint = Path.GetFullPath(positional[1]);

        // Fail fast, in the caller's terminal, on what can be checked before forking.
        DevicePolicy policy;
        try
        {
            policy = options.LoadPolicy();
        }
        catch (PolicyException e)
        {
            Console.Error.WriteLine($"devfs: the policy has errors; nothing was mounted:\n{e.Message}");
            return CommandLine.Failed;
        }
        if (!Directory.Exists(mountPoint))
        {
            Console.Error.WriteLine($"devfs: mount point {mountPoint} does not exist; create it first (mkdir -p {mountPoint})");
            return CommandLine.Failed;
        }
        return foreground || Environment.GetEnvironmentVariable(ReadyFdVariable) is not null
            ? Serve(source, mountPoint, options, policy, userNamespace)
            : StartInBackground(args);
    }

    private static int Serve(string source, string mountPoint, MountOptions options, DevicePolicy policy, UserNamespace userNamespace)
    {
        var readyFd = int.TryParse(Environment.GetEnvironmentVariable(ReadyFdVariable), out var fd) ? fd : -1;
        Environment.SetEnvironmentVariable(ReadyFdVariable, null);
        var detached = Environment.GetEnvironmentVariable(DetachVariable) == "1";
        if (detached)
        {
            // A daemon: its own session, and no hold on the caller's terminal or pipes (mount(8) and
            // scripts wait for those to close). This happens before any logging starts, because the
            // console keeps duplicates of stdout and stderr. Under systemd, stdio is the journal: keep it.
            // Until the mount is live, errors reach the caller through the ready pipe.
            Environment.SetEnvironmentVariable(DetachVariable, null);
            setsid();
            if (Environment.GetEnvironmentVariable("JOURNAL_STREAM") is null)
                DetachStdio();
        }
        using var loggers = Logging.Create(options.Debug, detached);
        var logger = loggers.CreateLogger("devfs");
        // Signals are taken before the mount exists, so that one arriving as it goes live still unmounts.
        ServedMount? mount = null;
        var stopRequested = 0;
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            logger.LogInformation("{Signal}: unmounting {MountPoint}", context.Signal, mountPoint);
            Volatile.Write(ref stopRequested, 1);
            Volatile.Read(ref mount)?.Unmount();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context => context.Cancel = true);
        using var registry = new DeviceRegistry(new DeviceRegistryOptions(), loggers.CreateLogger("devfs.devices"));
        using var assignments = new AssignmentStore(logger: loggers.CreateLogger("devfs.ownership"));
        try
        {
            registry.Start();
            assignments.StartWatching();
            Volatile.Write(ref mount, ServedMount.Start(new MountRequest
            {
                MountPoint = mountPoint,
                Policy = policy,
                Source = source,
                Container = options.Container,
                UserNamespace = userNamespace,
                MountFlags = options.MountFlags,
                Session = options.Workers is { } workers ? new FuseSessionOptions { Workers = workers } : new FuseSessionOptions(),
            }, registry, assignments, loggers));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogError("Cannot serve {MountPoint}: {Error}", mountPoint, e.Message);
            ReportReady(readyFd, "error: " + e.Message);
            return CommandLine.Failed;
        }
        if (Volatile.Read(ref stopRequested) != 0)
            mount.Unmount();
        ReportReady(readyFd, "ready");
        using var systemd = new SystemdNotifier();
        systemd.Ready($"serving {mountPoint}");
        systemd.StartWatchdog(() => !mount.Ended.IsCompleted);
        mount.Ended.Wait();
        systemd.Stopping();
        logger.LogInformation("{MountPoint} is unmounted; exiting", mountPoint);
        return CommandLine.Ok;
    }

    /// <summary>Starts this program again with -f, detached, and waits for it to report.</summary>
    private static int StartInBackground(string[] args)
    {
        var pipeFds = stackalloc int[2];
        if (pipe(pipeFds) != 0)
        {
            Console.Error.WriteLine($"devfs: cannot make a pipe: {Errno.Describe(errno)}");
            return CommandLine.Failed;
        }
        var (readEnd, writeEnd) = (pipeFds[0], pipeFds[1]);
        fcntl(readEnd, F_SETFD, FD_CLOEXEC);
        var start = new ProcessStartInfo(Environment.ProcessPath ?? "devfs") { UseShellExecute = false, RedirectStandardInput = true };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        start.Environment[ReadyFdVariable] = writeEnd.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment[DetachVariable] = "1";
        try
        {
            using var child = Process.Start(start) ?? throw new IOException("the server process did not start");
            close(writeEnd);
            writeEnd = -1;
            var answer = ReadAll(readEnd).Trim();
            if (answer == "ready")
                return CommandLine.Ok;
            Console.Error.WriteLine(answer.Length > 0 ? $"devfs: {answer}" : "devfs: the server exited before the mount was live; run with -f to see why");
            return CommandLine.Failed;
        }
        finally
        {
            if (writeEnd >= 0)
                close(writeEnd);
            close(readEnd);
        }
    }

    private static void ReportReady(int fd, string message)
    {
        if (fd < 0)
            return;
        var bytes = System.Text.Encoding.UTF8.GetBytes(message + "\n");
        fixed (byte* p = bytes)
            write(fd, p, bytes.Length);
        close(fd);
    }

    private static void DetachStdio()
    {
        int devNull;
        fixed (byte* path = "/dev/null\0"u8)
            devNull = open(path, O_RDWR, 0);
        if (devNull < 0)
            return;
        for (var target = 0; target <= 2; target++)
            dup2(devNull, target);
        if (devNull > 2)
            close(devNull);
    }

    private static string ReadAll(int fd)
    {
        var buffer = new byte[4096];
        var text = new System.Text.StringBuilder();
        while (true)
        {
            long n;
            fixed (byte* p = buffer)
                n = read(fd, p, buffer.Length);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return text.ToString();
            text.Append(System.Text.Encoding.UTF8.GetString(buffer, 0, (int)n));
        }
    }
}
