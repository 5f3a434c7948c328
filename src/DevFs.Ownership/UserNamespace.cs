using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Ownership;

/// <summary>
/// A container's user namespace, named by the inode of its nsfs file (what `ls -i /proc/PID/ns/user`
/// and `lsns` show), with the id maps read from a process inside it.
/// </summary>
public sealed record UserNamespace(ulong Inode, IdMap Uids, IdMap Gids)
{
    public static readonly UserNamespace Initial = new(0, IdMap.Identity, IdMap.Identity);

    /// <summary>
    /// From "pid=PID" or "userns=/proc/PID/ns/user": the id maps come from that process. Throws
    /// ArgumentException with what to fix.
    /// </summary>
    public static UserNamespace Of(int pid) => FromProcess($"/proc/{pid}", $"pid={pid}");

    public static UserNamespace FromPath(string nsPath)
    {
        // /proc/PID/ns/user: the maps live beside it, in /proc/PID.
        var nsDir = Path.GetDirectoryName(nsPath);
        var procDir = nsDir is null ? null : Path.GetDirectoryName(nsDir);
        if (procDir is null || Path.GetFileName(nsPath) != "user" || Path.GetFileName(nsDir) != "ns")
            throw new ArgumentException($"userns={nsPath}: give a process's namespace file, /proc/PID/ns/user");
        return FromProcess(procDir, $"userns={nsPath}");
    }

    private static unsafe UserNamespace FromProcess(string procDir, string what)
    {
        var nsFile = Path.Combine(procDir, "ns", "user");
        stat st;
        var bytes = System.Text.Encoding.UTF8.GetBytes(nsFile + "\0");
        fixed (byte* p = bytes)
        {
            if (stat(p, &st) != 0)
                throw new ArgumentException($"{what}: cannot read {nsFile}: no such process, or not allowed; is the container running?");
        }
        try
        {
            return new UserNamespace((ulong)st.st_ino,
                IdMap.Parse(File.ReadAllText(Path.Combine(procDir, "uid_map"))),
                IdMap.Parse(File.ReadAllText(Path.Combine(procDir, "gid_map"))));
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{what}: cannot read the id maps in {procDir}: {e.Message}");
        }
    }
}
