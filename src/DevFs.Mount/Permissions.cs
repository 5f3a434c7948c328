using DevFs.Fuse;
using DevFs.View;

namespace DevFs.Mount;

/// <summary>
/// The classic Unix access check, done again by the daemon even though the kernel checks the mode
/// bits first (default_permissions): a proxy open is the daemon acting for the caller, and it must
/// not rely on how the mount was made.
/// </summary>
public static class Permissions
{
    public const int Read = 4;
    public const int Write = 2;
    public const int Execute = 1;

    public static bool Allows(ViewNode node, FuseCaller caller, int wanted)
    {
        wanted &= 7;
        if (caller.Uid == 0)
        {
            // Root may read and write anything; execute needs some x bit, except on directories.
            return (wanted & Execute) == 0 || node is DirectoryNode || (node.Mode & 0x49 /* 0111 */) != 0;
        }
        var mode = node.Mode;
        uint bits;
        if (caller.Uid == node.Uid)
            bits = (mode >> 6) & 7;
        else if (caller.Gid == node.Gid || (((mode >> 3) & 7 & wanted) == wanted && InSupplementaryGroup(caller.Pid, node.Gid)))
            bits = (mode >> 3) & 7;
        else
            bits = mode & 7;
        return (bits & wanted) == wanted;
    }

    /// <summary>Only consulted when the group bits would decide: /proc/PID/status lists the caller's groups.</summary>
    private static bool InSupplementaryGroup(uint pid, uint gid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (!line.StartsWith("Groups:", StringComparison.Ordinal))
                    continue;
                foreach (var group in line["Groups:".Length..].Split(' ', '\t', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (uint.TryParse(group, out var g) && g == gid)
                        return true;
                }
                return false;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return false;
    }
}
