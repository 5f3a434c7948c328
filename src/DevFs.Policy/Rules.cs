namespace DevFs.Policy;

/// <summary>A directory that exists in every container's /dev (e.g. pts, shm). Mode holds the permission bits incl. sticky (e.g. 0o1777).</summary>
public sealed record DirectoryRule(string Path, uint Mode, uint Uid, uint Gid);

/// <summary>A symbolic link in every container's /dev (e.g. fd -> /proc/self/fd).</summary>
public sealed record SymlinkRule(string Path, string Target);

/// <summary>An inclusive range of device numbers (a single number is First == Last).</summary>
public readonly record struct NumberRange(uint First, uint Last)
{
    public bool Contains(uint value) => value >= First && value <= Last;

    public override string ToString() => First == Last ? First.ToString() : $"{First}-{Last}";
}

/// <summary>
/// What a container's /dev shows for one host device: the result of <see cref="DevicePolicy.Match"/>.
/// </summary>
/// <param name="Path">Path of the entry relative to /dev: normally the device's DevName, or the rule's <c>path:</c>.</param>
/// <param name="Access">How the entry is presented.</param>
/// <param name="Mode">Permission bits of the entry (no file type bits).</param>
/// <param name="Uid">Owner, as seen from the host (the view maps it into the container's user namespace).</param>
/// <param name="Gid">Group, as seen from the host.</param>
/// <param name="Global">Visible in every container whatever owns it (null, zero, ...).</param>
/// <param name="Rule">The rule that decided it, for diagnostics.</param>
public sealed record DeviceEntrySpec(string Path, AccessMode Access, uint Mode, uint Uid, uint Gid, bool Global, DeviceRule Rule);
