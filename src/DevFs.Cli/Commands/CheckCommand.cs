using DevFs.Policy;

namespace DevFs.Cli.Commands;

/// <summary>devfs check POLICY...: parses and validates policy files, printing every error found.</summary>
public static class CheckCommand
{
    public static int Run(string[] args)
    {
        if (args.Length == 0)
            throw new UsageException("check needs one or more policy files");
        var status = CommandLine.Ok;
        foreach (var path in args)
        {
            try
            {
                var policy = DevicePolicy.Load(path);
                Console.WriteLine($"{path}: ok ({policy.Devices.Count} device rules, {policy.Directories.Count} directories, " +
                                  $"{policy.Symlinks.Count} symlinks, {policy.Containers.Count} containers)");
            }
            catch (PolicyException e)
            {
                foreach (var error in e.Errors)
                    Console.Error.WriteLine(error);
                status = CommandLine.Failed;
            }
        }
        return status;
    }
}
