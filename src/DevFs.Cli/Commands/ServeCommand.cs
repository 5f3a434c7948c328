using System.Runtime.InteropServices;
using DevFs.Cli.Service;
using DevFs.Ownership;
using Microsoft.Extensions.Logging;

namespace DevFs.Cli.Commands;

/// <summary>
/// devfs serve [-d]: the service. One process serving every container's /dev at /run/devfs/NAME,
/// controlled through /run/devfs/control.sock (`devfs ctl ...`). Runs in the foreground; under
/// systemd as Type=notify with a watchdog. SIGINT/SIGTERM unmount everything and exit.
/// </summary>
public static class ServeCommand
{
    public static int Run(string[] args)
    {
        var debug = args.Contains("-d") || args.Contains("--debug");
        if (args.Any(a => a is not ("-d" or "--debug")))
            throw new UsageException("serve takes only -d (debug logging); mounts are made with 'devfs ctl mount NAME -o OPTIONS'");
        using var loggers = Logging.Create(debug);
        var logger = loggers.CreateLogger("devfs.service");
        var stateDirectory = Environment.GetEnvironmentVariable("DEVFS_STATE_DIR") ?? AssignmentStore.DefaultDirectory;
        using var service = new DevFsService(stateDirectory, loggers);
        using var stop = new ManualResetEventSlim();
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            logger.LogInformation("{Signal}: unmounting every mount and stopping", context.Signal);
            stop.Set();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        ControlServer control;
        try
        {
            service.Start();
            control = new ControlServer(service, loggers.CreateLogger("devfs.control"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException)
        {
            logger.LogError("Cannot start the devfs service in {Directory}: {Error}", stateDirectory, e.Message);
            return CommandLine.Failed;
        }
        using (control)
        {
            control.Start();
            using var systemd = new SystemdNotifier();
            systemd.Ready($"serving /dev mounts under {stateDirectory}");
            systemd.StartWatchdog(() => service.Registry.IsRunning);
            logger.LogInformation("devfs service ready: control socket {Socket}", control.SocketPath);
            stop.Wait();
            systemd.Stopping();
            service.UnmountAll();
        }
        return CommandLine.Ok;
    }
}
