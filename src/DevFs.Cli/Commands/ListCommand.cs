using DevFs.Devices;
using DevFs.Mount;
using DevFs.Ownership;
using DevFs.Policy;
using DevFs.View;

namespace DevFs.Cli.Commands;

/// <summary>devfs list [-o ...]: what a container's /dev would hold, from the host's devices now, without mounting.</summary>
public static class ListCommand
{
    public static int Run(string[] args)
    {
        var optionLists = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "-o" && i + 1 < args.Length)
                optionLists.Add(args[++i]);
            else if (args[i].StartsWith("-o", StringComparison.Ordinal) && args[i].Length > 2)
                optionLists.Add(args[i][2..]);
            else
                throw new UsageException($"list takes only -o OPTIONS, not '{args[i]}'");
        }
        var options = MountOptions.Parse(optionLists);
        DevicePolicy policy;
        try
        {
            policy = options.LoadPolicy();
        }
        catch (PolicyException e)
        {
            Console.Error.WriteLine(e.Message);
            return CommandLine.Failed;
        }
        using var assignments = new AssignmentStore();
        var view = new ContainerView(policy, options.Container, ServedMount.CanServeNodes(options.MountFlags), SysfsDeviceScanner.Scan(),
            options.ResolveUserNamespace(), device => assignments.OwnerOf(device.DevName));
        Console.WriteLine($"{"PATH",-24} {"TYPE",-7} {"ACCESS",-6} {"MODE",-5} {"OWNER",-9} {"DEVICE",-9} RULE");
        Print(view, view.Root);
        return CommandLine.Ok;
    }

    private static void Print(ContainerView view, ViewNode dir)
    {
        view.List(dir.Id, out var entries);
        foreach (var node in entries)
        {
            var mode = Convert.ToString(node.Mode & StatMode.PermissionBits, 8).PadLeft(4, '0');
            var owner = $"{node.Uid}:{node.Gid}";
            var line = node switch
            {
                DeviceNode d => $"{d.Path,-24} {(d.Device.Kind == DeviceKind.Block ? "block" : "char"),-7} {d.Access.ToString().ToLowerInvariant(),-6} {mode,-5} {owner,-9} {$"{d.Device.Major}:{d.Device.Minor}",-9} {d.Spec.Rule.Source}:{d.Spec.Rule.Line}",
                SymlinkNode s => $"{s.Path,-24} {"symlink",-7} {"",-6} {"",-5} {owner,-9} -> {s.Target}",
                DirectoryNode => $"{node.Path + "/",-24} {"dir",-7} {"",-6} {mode,-5} {owner,-9}",
                _ => $"{node.Path,-24} {"file",-7} {"",-6} {mode,-5} {owner,-9}",
            };
            Console.WriteLine(line.TrimEnd());
            if (node is DirectoryNode sub)
                Print(view, sub);
        }
    }
}
