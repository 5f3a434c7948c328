using System.Text;
using System.Text.Unicode;

namespace DevFs.Devices;

/// <summary>The ACTION of a kernel uevent (lib/kobject_uevent.c kobject_actions[]).</summary>
public enum UeventAction
{
    Add,
    Remove,
    Change,
    Move,
    Online,
    Offline,
    Bind,
    Unbind,
}

/// <summary>
/// One kernel uevent as broadcast on NETLINK_KOBJECT_UEVENT group 1:
/// "ACTION@DEVPATH\0ACTION=...\0DEVPATH=...\0SUBSYSTEM=...\0...\0SEQNUM=N\0".
/// Built only through <see cref="TryParse"/>, which validates everything the rest of DevFs relies on.
/// </summary>
public sealed class UeventMessage
{
    /// <summary>Largest datagram accepted. The kernel's environment buffer is 2048 bytes (UEVENT_BUFFER_SIZE)
    /// plus the "ACTION@DEVPATH" header, so real uevents stay well below this.</summary>
    public const int MaxDatagramSize = 8192;

    /// <summary>Keys that describe the uevent transport rather than the device; they are not copied into
    /// <see cref="HostDevice.Properties"/> so that a device built from a uevent matches one read from sysfs.</summary>
    public static bool IsTransportKey(string key) =>
        key is "ACTION" or "DEVPATH" or "SUBSYSTEM" or "SEQNUM" or "DEVPATH_OLD" or "SYNTH_UUID"
        || key.StartsWith("SYNTH_ARG_", StringComparison.Ordinal);

    private UeventMessage(UeventAction action, string devPath, string subsystem, ulong seqNum,
        IReadOnlyDictionary<string, string> properties)
    {
        Action = action;
        DevPath = devPath;
        Subsystem = subsystem;
        SeqNum = seqNum;
        Properties = properties;
    }

    public UeventAction Action { get; }

    /// <summary>DEVPATH, below /sys (e.g. "/devices/virtual/block/loop7").</summary>
    public string DevPath { get; }

    public string Subsystem { get; }
    public ulong SeqNum { get; }

    /// <summary>Every KEY=VALUE of the message, transport keys included.</summary>
    public IReadOnlyDictionary<string, string> Properties { get; }

    public uint? Major { get; private init; }
    public uint? Minor { get; private init; }
    public string? DevName { get; private init; }
    public uint? DevMode { get; private init; }
    public string? DevType { get; private init; }

    /// <summary>DEVPATH_OLD of a "move" event, else null.</summary>
    public string? DevPathOld { get; private init; }

    /// <summary>True when the event describes a device node: MAJOR, MINOR and DEVNAME are all present.</summary>
    public bool HasNode => Major.HasValue && Minor.HasValue && DevName is not null;

    /// <summary>Block when SUBSYSTEM is "block", else Char.</summary>
    public DeviceKind Kind => Subsystem == "block" ? DeviceKind.Block : DeviceKind.Char;

    /// <summary>The device node this event describes, or null when it carries no node.</summary>
    public HostDevice? ToHostDevice(IDeviceAttributes? attributes = null)
    {
        if (!HasNode)
            return null;
        var props = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in Properties)
            if (!IsTransportKey(k))
                props[k] = v;
        return new HostDevice
        {
            DevPath = DevPath,
            DevName = DevName!,
            Kind = Kind,
            Major = Major!.Value,
            Minor = Minor!.Value,
            Subsystem = Subsystem,
            DevType = DevType,
            DevMode = DevMode,
            Properties = props,
            Attributes = attributes ?? DeviceAttributes.None,
        };
    }

    public override string ToString() => $"{ActionName(Action)}@{DevPath} seq={SeqNum} subsystem={Subsystem}" +
        (HasNode ? $" {DevName} {Major}:{Minor}" : "");

    public static string ActionName(UeventAction a) => a switch
    {
        UeventAction.Add => "add",
        UeventAction.Remove => "remove",
        UeventAction.Change => "change",
        UeventAction.Move => "move",
        UeventAction.Online => "online",
        UeventAction.Offline => "offline",
        UeventAction.Bind => "bind",
        UeventAction.Unbind => "unbind",
        _ => a.ToString(),
    };

    public static bool TryParseAction(string s, out UeventAction action)
    {
        switch (s)
        {
            case "add": action = UeventAction.Add; return true;
            case "remove": action = UeventAction.Remove; return true;
            case "change": action = UeventAction.Change; return true;
            case "move": action = UeventAction.Move; return true;
            case "online": action = UeventAction.Online; return true;
            case "offline": action = UeventAction.Offline; return true;
            case "bind": action = UeventAction.Bind; return true;
            case "unbind": action = UeventAction.Unbind; return true;
            default: action = default; return false;
        }
    }

    private static ReadOnlySpan<byte> LibudevMagic => "libudev\0"u8;

    /// <summary>
    /// Parses one datagram from the kernel. Never throws: on failure returns false with a reason.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, out UeventMessage? msg, out string? error)
    {
        msg = null;
        try
        {
            error = Parse(datagram, out msg);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Defensive: the parser is written not to throw; keep the "never throws" contract regardless.
            error = "internal parser error: " + e.Message;
            msg = null;
        }
        return error is null;
    }

    private static string? Parse(ReadOnlySpan<byte> data, out UeventMessage? msg)
    {
        msg = null;
        if (data.IsEmpty)
            return "empty datagram";
        if (data.Length > MaxDatagramSize)
            return $"oversize datagram ({data.Length} > {MaxDatagramSize} bytes)";
        if (data.StartsWith(LibudevMagic))
            return "udev monitor format (\"libudev\" header) is not a kernel uevent";
        if (!Utf8.IsValid(data))
            return "datagram is not valid UTF-8";

        // Trailing NULs end the last field; any other empty field is malformed.
        int end = data.Length;
        while (end > 0 && data[end - 1] == 0)
            end--;
        if (end == 0)
            return "empty datagram";
        data = data[..end];

        int nul = data.IndexOf((byte)0);
        var header = nul < 0 ? data : data[..nul];
        int at = header.IndexOf((byte)'@');
        if (at < 0)
            return "header has no '@' (expected ACTION@DEVPATH)";
        string headerAction = Encoding.UTF8.GetString(header[..at]);
        string headerPath = Encoding.UTF8.GetString(header[(at + 1)..]);

        var props = new Dictionary<string, string>(StringComparer.Ordinal);
        var rest = nul < 0 ? ReadOnlySpan<byte>.Empty : data[(nul + 1)..];
        bool any = nul >= 0;
        while (any)
        {
            int n = rest.IndexOf((byte)0);
            var field = n < 0 ? rest : rest[..n];
            if (field.IsEmpty)
                return "empty field";
            int eq = field.IndexOf((byte)'=');
            if (eq <= 0)
                return $"field without KEY=VALUE: \"{Trunc(Encoding.UTF8.GetString(field))}\"";
            string key = Encoding.UTF8.GetString(field[..eq]);
            string value = Encoding.UTF8.GetString(field[(eq + 1)..]);
            if (props.ContainsKey(key))
                return $"duplicate key {key}";
            props[key] = value;
            if (n < 0)
                break;
            rest = rest[(n + 1)..];
        }

        if (!props.TryGetValue("ACTION", out var actionStr))
            return "missing ACTION";
        if (!props.TryGetValue("DEVPATH", out var devPath))
            return "missing DEVPATH";
        if (actionStr != headerAction)
            return $"header action \"{Trunc(headerAction)}\" does not match ACTION=\"{Trunc(actionStr)}\"";
        if (devPath != headerPath)
            return $"header path \"{Trunc(headerPath)}\" does not match DEVPATH=\"{Trunc(devPath)}\"";
        if (!TryParseAction(actionStr, out var action))
            return $"unknown action \"{Trunc(actionStr)}\"";
        if (!IsSafeDevPath(devPath))
            return $"invalid DEVPATH \"{Trunc(devPath)}\"";
        if (!props.TryGetValue("SUBSYSTEM", out var subsystem) || subsystem.Length == 0)
            return "missing SUBSYSTEM";
        if (subsystem.Contains('/'))
            return $"invalid SUBSYSTEM \"{Trunc(subsystem)}\"";
        if (!props.TryGetValue("SEQNUM", out var seqStr))
            return "missing SEQNUM";
        if (!TryParseDecimal(seqStr, out ulong seq))
            return $"non-numeric SEQNUM \"{Trunc(seqStr)}\"";

        uint? major = null, minor = null, devMode = null;
        bool hasMajor = props.TryGetValue("MAJOR", out var majStr);
        bool hasMinor = props.TryGetValue("MINOR", out var minStr);
        if (hasMajor != hasMinor)
            return hasMajor ? "MAJOR without MINOR" : "MINOR without MAJOR";
        if (hasMajor)
        {
            if (!TryParseDecimal(majStr!, out ulong mj) || mj > 0xFFF_FFFF)
                return $"non-numeric or out-of-range MAJOR \"{Trunc(majStr!)}\"";
            if (!TryParseDecimal(minStr!, out ulong mn) || mn > uint.MaxValue)
                return $"non-numeric or out-of-range MINOR \"{Trunc(minStr!)}\"";
            major = (uint)mj;
            minor = (uint)mn;
        }

        string? devName = null;
        if (props.TryGetValue("DEVNAME", out var dn))
        {
            if (!IsSafeDevName(dn))
                return $"invalid DEVNAME \"{Trunc(dn)}\" (must be relative, without empty, '.' or '..' segments)";
            devName = dn;
        }
        if (props.TryGetValue("DEVMODE", out var dm))
        {
            if (!TryParseOctal(dm, out uint mode))
                return $"non-octal DEVMODE \"{Trunc(dm)}\"";
            devMode = mode;
        }
        string? devPathOld = null;
        if (props.TryGetValue("DEVPATH_OLD", out var old))
        {
            if (!IsSafeDevPath(old))
                return $"invalid DEVPATH_OLD \"{Trunc(old)}\"";
            devPathOld = old;
        }

        props.TryGetValue("DEVTYPE", out var devType);
        msg = new UeventMessage(action, devPath, subsystem, seq, props)
        {
            Major = major,
            Minor = minor,
            DevName = devName,
            DevMode = devMode,
            DevType = devType,
            DevPathOld = devPathOld,
        };
        return null;
    }

    private static string Trunc(string s) => s.Length <= 64 ? s : s[..64] + "...";

    internal static bool TryParseDecimal(string s, out ulong value)
    {
        value = 0;
        if (s.Length == 0 || s.Length > 20)
            return false;
        foreach (char c in s)
        {
            if (c < '0' || c > '9')
                return false;
            ulong next = value * 10 + (ulong)(c - '0');
            if (next / 10 != value)
                return false; // overflow
            value = next;
        }
        return true;
    }

    internal static bool TryParseOctal(string s, out uint value)
    {
        value = 0;
        if (s.Length == 0 || s.Length > 7)
            return false;
        foreach (char c in s)
        {
            if (c < '0' || c > '7')
                return false;
            value = value * 8 + (uint)(c - '0');
        }
        return value <= 0xFFFF;
    }

    /// <summary>Absolute, no empty/./.. segments, no NUL: safe to append to a sysfs root.</summary>
    internal static bool IsSafeDevPath(string p)
    {
        if (p.Length < 2 || p[0] != '/' || p.Length > 4096)
            return false;
        return SegmentsOk(p.AsSpan(1));
    }

    /// <summary>Relative, no empty/./.. segments, no NUL: safe to append to a /dev root.</summary>
    internal static bool IsSafeDevName(string p)
    {
        if (p.Length == 0 || p[0] == '/' || p.Length > 4096)
            return false;
        return SegmentsOk(p.AsSpan());
    }

    private static bool SegmentsOk(ReadOnlySpan<char> p)
    {
        if (p.Contains('\0'))
            return false;
        foreach (var r in p.Split('/'))
        {
            var seg = p[r];
            if (seg.IsEmpty || seg.SequenceEqual(".") || seg.SequenceEqual(".."))
                return false;
        }
        return true;
    }
}
