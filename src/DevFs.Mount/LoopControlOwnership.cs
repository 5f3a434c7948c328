using DevFs.Devices;
using DevFs.Ownership;

namespace DevFs.Mount;

/// <summary>
/// loop-control through a proxy entry, as loopfs proposed for the kernel: a loop device a container
/// makes (LOOP_CTL_ADD, LOOP_CTL_GET_FREE) becomes its own, and it may remove only its own.
/// </summary>
public sealed class LoopControlOwnership(string? container, AssignmentStore? assignments)
{
    public const uint LOOP_CTL_ADD = 0x4C80;
    public const uint LOOP_CTL_REMOVE = 0x4C81;
    public const uint LOOP_CTL_GET_FREE = 0x4C82;
    private const uint MiscMajor = 10;
    private const uint LoopControlMinor = 237;

    private bool Applies(HostDevice device) =>
        container is not null && assignments is not null && device.Kind == DeviceKind.Char &&
        device.Major == MiscMajor && device.Minor == LoopControlMinor;

    /// <summary>Why the call must not go ahead, or null.</summary>
    public string? Refusal(HostDevice device, uint cmd, ulong arg)
    {
        if (!Applies(device) || cmd != LOOP_CTL_REMOVE)
            return null;
        var owner = assignments!.OwnerOf($"loop{arg}");
        return owner == container ? null : $"loop{arg} is not container {container}'s to remove";
    }

    /// <summary>Records what a successful call made or removed.</summary>
    public void Succeeded(HostDevice device, uint cmd, ulong arg, int result)
    {
        if (!Applies(device))
            return;
        switch (cmd)
        {
            case LOOP_CTL_ADD or LOOP_CTL_GET_FREE when result >= 0:
                // GET_FREE may hand out a device another container holds but has not bound: that stays theirs.
                assignments!.Assign($"loop{result}", container!, AssignmentOrigin.Created);
                break;
            case LOOP_CTL_REMOVE:
                assignments!.Release($"loop{arg}", container);
                break;
        }
    }
}
