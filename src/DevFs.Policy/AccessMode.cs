namespace DevFs.Policy;

/// <summary>How a device entry is presented in a container's /dev (design.md §2).</summary>
public enum AccessMode
{
    /// <summary>Node where the mount can open device nodes (root, initial user namespace, no nodev), proxy elsewhere.</summary>
    Auto,

    /// <summary>A regular file whose every open/read/write/ioctl/poll the daemon performs on the real node.</summary>
    Proxy,

    /// <summary>A real S_IFCHR/S_IFBLK entry with the host's rdev: the kernel talks to the driver directly.</summary>
    Node,
}
