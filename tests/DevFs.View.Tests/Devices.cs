using DevFs.Devices;

namespace DevFs.View.Tests;

/// <summary>Host devices as a real Linux host describes them in sysfs.</summary>
internal static class Dev
{
    public static HostDevice Char(string name, uint major, uint minor, string subsystem, string? devType = null,
        IReadOnlyDictionary<string, string>? attributes = null, uint? devMode = null) =>
        Make(name, DeviceKind.Char, major, minor, subsystem, devType, attributes, devMode);

    public static HostDevice Block(string name, uint major, uint minor, string devType = "disk") =>
        Make(name, DeviceKind.Block, major, minor, "block", devType, null, null);

    private static HostDevice Make(string name, DeviceKind kind, uint major, uint minor, string subsystem, string? devType,
        IReadOnlyDictionary<string, string>? attributes, uint? devMode) => new()
    {
        DevPath = $"/devices/virtual/{subsystem}/{name.Replace('/', '!')}",
        DevName = name,
        Kind = kind,
        Major = major,
        Minor = minor,
        Subsystem = subsystem,
        DevType = devType,
        DevMode = devMode,
        Attributes = attributes is null ? DeviceAttributes.None : DeviceAttributes.Of(attributes),
    };

    public static readonly HostDevice Null = Char("null", 1, 3, "mem", devMode: 0x1B6);
    public static readonly HostDevice Mem = Char("mem", 1, 1, "mem");
    public static readonly HostDevice Port = Char("port", 1, 4, "mem");
    public static readonly HostDevice Zero = Char("zero", 1, 5, "mem", devMode: 0x1B6);
    public static readonly HostDevice Full = Char("full", 1, 7, "mem", devMode: 0x1B6);
    public static readonly HostDevice Random = Char("random", 1, 8, "mem", devMode: 0x1B6);
    public static readonly HostDevice Urandom = Char("urandom", 1, 9, "mem", devMode: 0x1B6);
    public static readonly HostDevice Kmsg = Char("kmsg", 1, 11, "mem", devMode: 0x1A4);
    public static readonly HostDevice Tty = Char("tty", 5, 0, "tty", devMode: 0x1B6);
    public static readonly HostDevice Tty0 = Char("tty0", 4, 0, "tty");
    public static readonly HostDevice Tty63 = Char("tty63", 4, 63, "tty");
    public static readonly HostDevice TtyS0 = Char("ttyS0", 4, 64, "tty");
    public static readonly HostDevice Console = Char("console", 5, 1, "tty");
    public static readonly HostDevice Ptmx = Char("ptmx", 5, 2, "tty", devMode: 0x1B6);
    public static readonly HostDevice Loop0 = Block("loop0", 7, 0);
    public static readonly HostDevice Loop7 = Block("loop7", 7, 7);
    public static readonly HostDevice Loop12 = Block("loop12", 7, 12);
    public static readonly HostDevice Loop0P1 = Block("loop0p1", 259, 0, "partition");
    public static readonly HostDevice Vda = Block("vda", 254, 0);
    public static readonly HostDevice Vda1 = Block("vda1", 254, 1, "partition");
    public static readonly HostDevice LoopControl = Char("loop-control", 10, 237, "misc", devMode: 0x1B0);
    public static readonly HostDevice Fuse = Char("fuse", 10, 229, "misc", devMode: 0x1B6);
    public static readonly HostDevice Tun = Char("net/tun", 10, 200, "misc", devMode: 0x1B6);
    public static readonly HostDevice Event3 = Char("input/event3", 13, 67, "input");
}
