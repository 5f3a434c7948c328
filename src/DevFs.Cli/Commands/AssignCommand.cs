using DevFs.Ownership;

namespace DevFs.Cli.Commands;

/// <summary>
/// devfs assign DEVNAME CONTAINER [--move] | devfs unassign DEVNAME [CONTAINER] | devfs assignments:
/// run-time ownership. Every devfs process follows the shared assignment file, so the device appears
/// in (and goes from) the containers' /dev at once.
/// </summary>
public static class AssignCommand
{
    public static int Assign(string[] args)
    {
        var move = args.Contains("--move");
        var names = args.Where(a => a != "--move").ToArray();
        if (names.Length != 2 || names.Any(n => n.StartsWith('-')))
            throw new UsageException("assign takes DEVNAME CONTAINER [--move], e.g. devfs assign loop5 web");
        var devName = names[0].StartsWith("/dev/", StringComparison.Ordinal) ? names[0][5..] : names[0];
        using var store = new AssignmentStore();
        var error = store.Assign(devName, names[1], AssignmentOrigin.Assigned, takeOver: move);
        return Report(error, $"{devName} now belongs to {names[1]}");
    }

    public static int Unassign(string[] args)
    {
        if (args.Length is < 1 or > 2)
            throw new UsageException("unassign takes DEVNAME [CONTAINER], e.g. devfs unassign loop5");
        var devName = args[0].StartsWith("/dev/", StringComparison.Ordinal) ? args[0][5..] : args[0];
        using var store = new AssignmentStore();
        var error = store.Release(devName, args.Length == 2 ? args[1] : null);
        return Report(error, $"{devName} taken back");
    }

    public static int List(string[] args)
    {
        if (args.Length != 0)
            throw new UsageException("assignments takes no arguments");
        using var store = new AssignmentStore();
        Console.WriteLine($"{"DEVICE",-20} {"CONTAINER",-20} ORIGIN");
        foreach (var a in store.Current.OrderBy(a => a.DevName, StringComparer.Ordinal))
            Console.WriteLine($"{a.DevName,-20} {a.Container,-20} {a.Origin.ToString().ToLowerInvariant()}");
        return CommandLine.Ok;
    }

    private static int Report(string? error, string success)
    {
        if (error is null)
        {
            Console.WriteLine(success);
            return CommandLine.Ok;
        }
        Console.Error.WriteLine($"devfs: {error}");
        return CommandLine.Failed;
    }
}
