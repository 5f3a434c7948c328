namespace DevFs.Devices;

/// <summary>Whether a device node is a character or a block device (its S_IFMT).</summary>
public enum DeviceKind
{
    Char,
    Block,
}

/// <summary>
/// One device node of the host, as the kernel describes it in sysfs and in uevents:
/// /sys/dev/{char,block}/MAJ:MIN/uevent gives MAJOR, MINOR, DEVNAME, DEVMODE, DEVTYPE and the
/// subsystem is the name the "subsystem" link points to.
/// </summary>
public sealed record HostDevice
{
    /// <summary>Path below /sys without the /sys prefix, as in a uevent's DEVPATH (e.g. /devices/virtual/mem/null).</summary>
    public required string DevPath { get; init; }

    /// <summary>Node path relative to /dev (e.g. "null", "input/event3", "bus/usb/001/002").</summary>
    public required string DevName { get; init; }

    public required DeviceKind Kind { get; init; }
    public required uint Major { get; init; }
    public required uint Minor { get; init; }

    /// <summary>SUBSYSTEM (e.g. "mem", "block", "misc", "tty", "input").</summary>
    public string Subsystem { get; init; } = "";

    /// <summary>DEVTYPE when the kernel gives one (e.g. "disk", "partition", "usb_device").</summary>
    public string? DevType { get; init; }

    /// <summary>DEVMODE: the mode the kernel asks devtmpfs to create the node with, if any.</summary>
    public uint? DevMode { get; init; }

    /// <summary>All KEY=VALUE pairs of the device's uevent.</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// Reads a sysfs attribute of this device, or else of its nearest parent that has it
    /// (how udev's ATTRS{} matches, e.g. idVendor of the USB device above a tty). Null when none has it.
    /// </summary>
    public IDeviceAttributes Attributes { get; init; } = DeviceAttributes.None;

    /// <summary>The dev_t the kernel uses, as the new_encode_dev layout that stat(2) reports.</summary>
    public ulong Rdev => MakeDev(Major, Minor);

    public static ulong MakeDev(uint major, uint minor) =>
        ((ulong)(major & 0xfffff000u) << 32) | ((ulong)(major & 0xfffu) << 8) |
        ((ulong)(minor & 0xffffff00u) << 12) | (minor & 0xffu);

    public static uint MajorOf(ulong dev) => (uint)(((dev >> 32) & 0xfffff000u) | ((dev >> 8) & 0xfffu));

    public static uint MinorOf(ulong dev) => (uint)(((dev >> 12) & 0xffffff00u) | (dev & 0xffu));
}

/// <summary>Attribute look-up of a device and its parents in sysfs.</summary>
public interface IDeviceAttributes
{
    /// <summary>The attribute's value (trimmed) on the device or its nearest parent that has it, or null.</summary>
    string? Find(string name);
}

public static class DeviceAttributes
{
    public static readonly IDeviceAttributes None = new FixedAttributes(new Dictionary<string, string>());

    /// <summary>Attributes from a fixed table: for tests and for devices known only from a uevent.</summary>
    public static IDeviceAttributes Of(IReadOnlyDictionary<string, string> values) => new FixedAttributes(values);

    private sealed class FixedAttributes(IReadOnlyDictionary<string, string> values) : IDeviceAttributes
    {
        public string? Find(string name) => values.TryGetValue(name, out var v) ? v : null;
    }
}
