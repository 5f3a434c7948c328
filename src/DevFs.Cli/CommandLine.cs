using DevFs.Cli.Commands;

namespace DevFs.Cli;

/// <summary>Chooses the command: a subcommand by name, otherwise the mount form mount.fuse3 uses.</summary>
public static class CommandLine
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 2;

    public const string Help = """
        devfs: a filtered, live /dev for containers, served over FUSE.

        Usage:
          devfs SOURCE MOUNTPOINT [-o OPTION[,OPTION...]] [-f]
              Mount a /dev at MOUNTPOINT (what `mount -t fuse.devfs SOURCE MOUNTPOINT -o ...` runs).
              Returns once the mount is live and serves it in the background; -f stays in the foreground.
          devfs serve [-d]                 The service: one process serving /run/devfs/NAME for many containers.
          devfs ctl mount NAME [-o OPTIONS] | unmount NAME | list | devices NAME | status | events |
                    assign DEVNAME CONTAINER [--move] | unassign DEVNAME
                                           Control the running service.
          devfs check POLICY...            Check policy files; print every error as file:line:column.
          devfs list [-o OPTION,...]       Print what a container's /dev would hold, without mounting.
          devfs assign DEVNAME CONTAINER [--move]
                                           Give a host device to a container at run time (exclusive).
          devfs unassign DEVNAME [CONTAINER]
                                           Take it back; its open handles in the container fail with ENODEV.
          devfs assignments                List run-time assignments (kept in /run/devfs/assignments).
          devfs --help | --version

        Options (-o):
          policy=FILE       the policy (default: the built-in policies/default.yaml)
          container=NAME    the container: shows global devices, its policy rules' and the ones it owns
          pid=PID           the container's user namespace, by a process inside it
          userns=PATH       the same, by its namespace file (/proc/PID/ns/user); owners map through its id maps
          idmap=IN:OUT:N    the container's id range (as lxc.idmap), when it has no process yet
          nodev             never serve real device nodes: "auto" entries become proxies
          dev               allow device nodes (the default when root in the initial user namespace)
          workers=N         FUSE worker threads (default: number of CPUs, 2 to 8)
          debug             log every decision at debug level
          and the usual mount options: rw, nosuid, noexec, suid, exec, allow_other, default_permissions,
          noatime, relatime, auto, noauto, nofail, _netdev, x-*.
        """;

    public static int Run(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine(Help);
            return Usage;
        }
        try
        {
            return args[0] switch
            {
                "-h" or "--help" or "help" => PrintHelp(),
                "-V" or "--version" => PrintVersion(),
                "check" => CheckCommand.Run(args[1..]),
                "list" => ListCommand.Run(args[1..]),
                "serve" => ServeCommand.Run(args[1..]),
                "ctl" => ControlCommand.Run(args[1..]),
                "assign" => AssignCommand.Assign(args[1..]),
                "unassign" => AssignCommand.Unassign(args[1..]),
                "assignments" => AssignCommand.List(args[1..]),
                _ => MountCommand.Run(args),
            };
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"devfs: {e.Message}");
            Console.Error.WriteLine("Try 'devfs --help'.");
            return Usage;
        }
    }

    private static int PrintHelp()
    {
        Console.WriteLine(Help);
        return Ok;
    }

    private static int PrintVersion()
    {
        Console.WriteLine($"devfs {typeof(CommandLine).Assembly.GetName().Version}");
        return Ok;
    }
}

/// <summary>The command line itself is wrong: exit 2 with the message.</summary>
public sealed class UsageException(string message) : Exception(message);
