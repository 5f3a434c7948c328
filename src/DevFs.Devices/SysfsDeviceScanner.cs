namespace DevFs.Devices;

/// <summary>
/// Enumerates the host's device nodes from sysfs: every /sys/dev/{char,block}/MAJ:MIN link, its uevent file
/// and its subsystem link. Devices whose uevent has no DEVNAME have no node and are skipped.
/// </summary>
public static class SysfsDeviceScanner
{
    /// <summary>Every device node the kernel currently exposes, char devices first, each sorted by DevPath.</summary>
    public static IReadOnlyList<HostDevice> Scan(string sysRoot = "/sys")
    {
        string root = NormalizeRoot(sysRoot);
        var result = new List<HostDevice>();
        foreach (var (dir, kind) in new[] { ("char", DeviceKind.Char), ("block", DeviceKind.Block) })
        {
            string classDir = Path.Combine(root, "dev", dir);
            IEnumerable<string> entries;
            try
            {
                entries = Directory.EnumerateFileSystemEntries(classDir).ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            var part = new List<HostDevice>();
            foreach (var entry in entries)
            {
                string? devPath = ResolveDevLink(root, entry);
                if (devPath is null)
                    continue;
                var dev = ReadAt(root, devPath, kind);
                if (dev is not null)
                    part.Add(dev);
            }
            part.Sort((a, b) => string.CompareOrdinal(a.DevPath, b.DevPath));
            result.AddRange(part);
        }
        return result;
    }

    /// <summary>
    /// One device by its DEVPATH (below /sys, e.g. "/devices/virtual/mem/null"), or null when it does not
    /// exist, has no node, or the path is not a plain path below sysRoot/devices.
    /// </summary>
    public static HostDevice? Read(string devPath, string sysRoot = "/sys")
    {
        if (!UeventMessage.IsSafeDevPath(devPath) || !devPath.StartsWith("/devices/", StringComparison.Ordinal))
            return null;
        return ReadAt(NormalizeRoot(sysRoot), devPath, kind: null);
    }

    /// <summary>The kernel's current uevent sequence number (/sys/kernel/uevent_seqnum), or null if unreadable.</summary>
    public static ulong? ReadUeventSeqNum(string sysRoot = "/sys")
    {
        try
        {
            var s = File.ReadAllText(Path.Combine(NormalizeRoot(sysRoot), "kernel", "uevent_seqnum")).Trim();
            return UeventMessage.TryParseDecimal(s, out ulong v) ? v : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    internal static string NormalizeRoot(string sysRoot)
    {
        string full = Path.GetFullPath(sysRoot);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }

    /// <summary>Resolves /sys/dev/X/MAJ:MIN (a link to ../../devices/...) to a DEVPATH, or null.</summary>
    private static string? ResolveDevLink(string root, string entry)
    {
        string? target;
        try
        {
            target = new FileInfo(entry).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        if (target is null)
            return null;
        string full = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(entry)!, target));
        string devicesPrefix = root + "/devices/";
        if (!full.StartsWith(devicesPrefix, StringComparison.Ordinal))
            return null;
        string devPath = full[root.Length..];
        return UeventMessage.IsSafeDevPath(devPath) ? devPath : null;
    }

    private static HostDevice? ReadAt(string root, string devPath, DeviceKind? kind)
    {
        string dir = root + devPath;
        Dictionary<string, string> props;
        try
        {
            props = ParseUeventFile(File.ReadAllText(Path.Combine(dir, "uevent")));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // gone meanwhile, or not a device directory
        }
        if (!props.TryGetValue("DEVNAME", out var devName) || !UeventMessage.IsSafeDevName(devName))
            return null;
        if (!props.TryGetValue("MAJOR", out var majS) || !props.TryGetValue("MINOR", out var minS)
            || !UeventMessage.TryParseDecimal(majS, out ulong major) || major > 0xFFF_FFFF
            || !UeventMessage.TryParseDecimal(minS, out ulong minor) || minor > uint.MaxValue)
            return null;

        string subsystem = "";
        try
        {
            var link = new FileInfo(Path.Combine(dir, "subsystem")).LinkTarget;
            if (link is not null)
                subsystem = Path.GetFileName(link.TrimEnd('/'));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        uint? devMode = null;
        if (props.TryGetValue("DEVMODE", out var dm) && UeventMessage.TryParseOctal(dm, out uint mode))
            devMode = mode;
        props.TryGetValue("DEVTYPE", out var devType);

        return new HostDevice
        {
            DevPath = devPath,
            DevName = devName,
            Kind = kind ?? (subsystem == "block" ? DeviceKind.Block : DeviceKind.Char),
            Major = (uint)major,
            Minor = (uint)minor,
            Subsystem = subsystem,
            DevType = devType,
            DevMode = devMode,
            Properties = props,
            Attributes = new SysfsAttributes(devPath, root),
        };
    }

    internal static Dictionary<string, string> ParseUeventFile(string text)
    {
        var props = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            int eq = line.IndexOf('=');
            if (eq <= 0)
                continue;
            props[line[..eq]] = line[(eq + 1)..];
        }
        return props;
    }

    /// <summary>True when the two records describe the same node with the same properties (ignores Attributes).</summary>
    public static bool SameContent(HostDevice a, HostDevice b)
    {
        if (a.DevPath != b.DevPath || a.DevName != b.DevName || a.Kind != b.Kind || a.Major != b.Major
            || a.Minor != b.Minor || a.Subsystem != b.Subsystem || a.DevType != b.DevType || a.DevMode != b.DevMode
            || a.Properties.Count != b.Properties.Count)
            return false;
        foreach (var (k, v) in a.Properties)
            if (!b.Properties.TryGetValue(k, out var w) || w != v)
                return false;
        return true;
    }
}

/// <summary>
/// Attributes of a device read on demand from sysfs: sysRoot+DevPath/NAME, else the same name in the nearest
/// parent directory below sysRoot/devices that has it (udev's ATTRS{}). Nothing is cached. Symbolic links
/// (driver, subsystem, ...) and names with '/' are never followed, so reads stay inside sysfs.
/// </summary>
public sealed class SysfsAttributes : IDeviceAttributes
{
    private readonly string _root;
    private readonly string _devPath;

    public SysfsAttributes(string devPath, string sysRoot = "/sys")
    {
        _root = SysfsDeviceScanner.NormalizeRoot(sysRoot);
        _devPath = devPath;
    }

    public string DevPath => _devPath;

    public string? Find(string name) => FindWithSource(name)?.Value;

    /// <summary>The value and the DEVPATH of the directory that had it.</summary>
    public (string Value, string DevPath)? FindWithSource(string name)
    {
        if (name.Length == 0 || name.Contains('/') || name.Contains('\0') || name is "." or "..")
            return null;
        if (!UeventMessage.IsSafeDevPath(_devPath) || !_devPath.StartsWith("/devices/", StringComparison.Ordinal))
            return null;
        string stop = _root + "/devices";
        string dir = _root + _devPath;
        while (dir.Length > stop.Length && dir.StartsWith(stop + "/", StringComparison.Ordinal))
        {
            string file = dir + "/" + name;
            try
            {
                var fi = new FileInfo(file);
                if (fi.Exists && fi.LinkTarget is null)
                {
                    string value = File.ReadAllText(file).Trim();
                    return (value, dir[_root.Length..]);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // unreadable here (write-only attribute, or removed meanwhile): look further up, as udev does
            }
            int slash = dir.LastIndexOf('/');
            if (slash <= 0)
                break;
            dir = dir[..slash];
        }
        return null;
    }

    public override string ToString() => $"sysfs:{_root}{_devPath}";
}
