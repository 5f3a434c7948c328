namespace DevFs.View;

public enum ViewChangeKind
{
    /// <summary>A name appeared in a directory.</summary>
    Added,
    /// <summary>A name went from a directory; Node is the node that was there.</summary>
    Removed,
    /// <summary>A node's attributes changed.</summary>
    Changed,
    /// <summary>
    /// The host device behind a node that is no longer (or never was) the view's entry for it went: a
    /// node the container unlinked or made with mknod. Only its open handles matter; no name changed.
    /// </summary>
    Revoked,
}

/// <summary>
/// A change the host caused (hotplug, policy, assignment) that the kernel's caches of a mount do not
/// know about yet. Changes made through the mount itself are not reported: the kernel saw them.
/// </summary>
public sealed record ViewChange(ViewChangeKind Kind, ulong ParentId, string Name, ViewNode Node);
