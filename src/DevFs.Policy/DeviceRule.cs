using System.Globalization;
using System.Text;
using DevFs.Devices;

namespace DevFs.Policy;

/// <summary>
/// One entry of a policy's <c>devices:</c> list (top level or of a container): what it matches, and
/// the settings (with the policy's <c>defaults:</c> already applied) of the entry it gives.
/// </summary>
public sealed class DeviceRule
{
    internal DeviceRule(
        string source, int line, int column, string? container,
        Glob? devName, IReadOnlyList<string> subsystems, DeviceKind? kind,
        IReadOnlyList<NumberRange> majors, IReadOnlyList<NumberRange> minors, string? devType,
        IReadOnlyList<KeyValuePair<string, Glob>> attributes,
        AccessMode access, uint? mode, uint uid, uint gid, bool global, string? path,
        IoctlPolicy? ioctls = null)
    {
        Ioctls = ioctls ?? IoctlPolicy.BuiltIn;
        Source = source;
        Line = line;
        Column = column;
        Container = container;
        DevName = devName;
        Subsystems = subsystems;
        Kind = kind;
        Majors = majors;
        Minors = minors;
        DevType = devType;
        Attributes = attributes;
        Access = access;
        Mode = mode;
        Uid = uid;
        Gid = gid;
        Global = global;
        Path = path;
    }

    /// <summary>The policy source (file name) the rule comes from.</summary>
    public string Source { get; }

    /// <summary>1-based line of the rule in <see cref="Source"/>.</summary>
    public int Line { get; }

    /// <summary>1-based column of the rule in <see cref="Source"/>.</summary>
    public int Column { get; }

    /// <summary>The container whose <c>containers:</c> section holds the rule; null for a top-level rule.</summary>
    public string? Container { get; }

    // ---- match criteria: a null or empty criterion is not checked; all given ones must hold ----

    /// <summary><c>match.devname</c>: pattern over the device's DevName.</summary>
    public Glob? DevName { get; }

    /// <summary><c>match.subsystem</c>: the device's subsystem must be one of these (exact).</summary>
    public IReadOnlyList<string> Subsystems { get; }

    /// <summary><c>match.kind</c>: char or block.</summary>
    public DeviceKind? Kind { get; }

    /// <summary><c>match.major</c>: the major number must lie in one of these ranges.</summary>
    public IReadOnlyList<NumberRange> Majors { get; }

    /// <summary><c>match.minor</c>: the minor number must lie in one of these ranges.</summary>
    public IReadOnlyList<NumberRange> Minors { get; }

    /// <summary><c>match.devtype</c>: the device's DEVTYPE (exact).</summary>
    public string? DevType { get; }

    /// <summary><c>match.attributes</c>: sysfs attribute name and the pattern its value (on the device or a parent) must match.</summary>
    public IReadOnlyList<KeyValuePair<string, Glob>> Attributes { get; }

    // ---- settings, defaults applied ----

    public AccessMode Access { get; }

    /// <summary>Permission bits; null when neither the rule nor the defaults give one (then the device's DEVMODE, else 0600).</summary>
    public uint? Mode { get; }

    public uint Uid { get; }

    public uint Gid { get; }

    /// <summary>Visible in every container, whoever owns the device.</summary>
    public bool Global { get; }

    /// <summary>The rule's <c>path:</c> template (may hold {devname}, {name}, {major}, {minor}); null to use the device's DevName.</summary>
    public string? Path { get; }

    /// <summary>Which ioctls a proxy entry of this rule forwards (the rule's <c>ioctls:</c>, then <c>defaults: ioctls:</c>, then the built-in default).</summary>
    public IoctlPolicy Ioctls { get; }

    /// <summary>Whether every criterion of the rule holds for <paramref name="d"/>.</summary>
    public bool Matches(HostDevice d)
    {
        ArgumentNullException.ThrowIfNull(d);
        if (Kind is { } kind && d.Kind != kind)
            return false;
        if (Majors.Count > 0 && !InAny(Majors, d.Major))
            return false;
        if (Minors.Count > 0 && !InAny(Minors, d.Minor))
            return false;
        if (Subsystems.Count > 0 && !Subsystems.Contains(d.Subsystem, StringComparer.Ordinal))
            return false;
        if (DevType is not null && !string.Equals(DevType, d.DevType, StringComparison.Ordinal))
            return false;
        if (DevName is not null && !DevName.IsMatch(d.DevName))
            return false;
        foreach (var (name, pattern) in Attributes)
        {
            var value = d.Attributes.Find(name);
            if (value is null || !pattern.IsMatch(value))
                return false;
        }
        return true;
    }

    /// <summary>The entry this rule gives <paramref name="d"/> (whether or not it matches).</summary>
    public DeviceEntrySpec EntryFor(HostDevice d)
    {
        ArgumentNullException.ThrowIfNull(d);
        uint mode = Mode ?? (d.DevMode is { } dm ? dm & 0xFFFu : 0x180u /* 0600 */);
        return new DeviceEntrySpec(ExpandPath(d), Access, mode, Uid, Gid, Global, this);
    }

    /// <summary>"source:line:column", where the rule is written.</summary>
    public override string ToString() =>
        Container is null ? $"{Source}:{Line}:{Column}" : $"{Source}:{Line}:{Column} (container {Container})";

    private static bool InAny(IReadOnlyList<NumberRange> ranges, uint value)
    {
        foreach (var r in ranges)
        {
            if (r.Contains(value))
                return true;
        }
        return false;
    }

    private string ExpandPath(HostDevice d)
    {
        if (Path is null)
            return d.DevName;
        if (!Path.Contains('{'))
            return Path;
        var sb = new StringBuilder(Path.Length + d.DevName.Length);
        int i = 0;
        while (i < Path.Length)
        {
            int open = Path.IndexOf('{', i);
            if (open < 0)
            {
                sb.Append(Path, i, Path.Length - i);
                break;
            }
            sb.Append(Path, i, open - i);
            int close = Path.IndexOf('}', open);
            sb.Append(Placeholder(Path[(open + 1)..close], d));
            i = close + 1;
        }
        return sb.ToString();
    }

    internal static readonly string[] Placeholders = ["devname", "name", "major", "minor"];

    private static string Placeholder(string name, HostDevice d) => name switch
    {
        "devname" => d.DevName,
        "name" => d.DevName[(d.DevName.LastIndexOf('/') + 1)..],
        "major" => d.Major.ToString(CultureInfo.InvariantCulture),
        "minor" => d.Minor.ToString(CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"unknown placeholder {{{name}}}"),
    };
}
