using System.Collections.Frozen;
using System.Globalization;

namespace DevFs.Policy;

/// <summary>
/// ioctl command numbers: the _IOC fields (Linux generic layout: nr 8 bits, type 8, size 14, dir 2)
/// and the small table of well-known names a policy may use instead of numbers (docs/ioctl.md).
/// </summary>
public static class IoctlCommand
{
    public const uint DirNone = 0, DirWrite = 1, DirRead = 2;

    public static uint Direction(uint cmd) => cmd >> 30;

    public static uint Size(uint cmd) => (cmd >> 16) & 0x3FFF;

    /// <summary>A command whose _IOC fields say it only reads (the kernel copies Size bytes out and nothing in).</summary>
    public static bool IsSizedQuery(uint cmd) => Direction(cmd) == DirRead && Size(cmd) > 0;

    /// <summary>Name, number, and whether it is a query (reads state, changes nothing) for the built-in default.</summary>
    private static readonly (string Name, uint Cmd, bool Query)[] Table =
    [
        // terminals (size-less legacy numbers)
        ("TCGETS", 0x5401, true),
        ("TCSETS", 0x5402, false),
        ("TIOCGWINSZ", 0x5413, true),
        ("TIOCSWINSZ", 0x5414, false),
        // random
        ("RNDGETENTCNT", 0x80045200, true),
        ("RNDADDTOENTCNT", 0x40045201, false),
        ("RNDGETPOOL", 0x80085202, false),
        ("RNDADDENTROPY", 0x40085203, false),
        ("RNDZAPENTCNT", 0x5204, false),
        ("RNDCLEARPOOL", 0x5206, false),
        ("RNDRESEEDCRNG", 0x5207, false),
        // loop devices and loop-control (size-less numbers)
        ("LOOP_SET_FD", 0x4C00, false),
        ("LOOP_CLR_FD", 0x4C01, false),
        ("LOOP_SET_STATUS", 0x4C02, false),
        ("LOOP_GET_STATUS", 0x4C03, true),
        ("LOOP_SET_STATUS64", 0x4C04, false),
        ("LOOP_GET_STATUS64", 0x4C05, true),
        ("LOOP_CHANGE_FD", 0x4C06, false),
        ("LOOP_SET_CAPACITY", 0x4C07, false),
        ("LOOP_SET_DIRECT_IO", 0x4C08, false),
        ("LOOP_SET_BLOCK_SIZE", 0x4C09, false),
        ("LOOP_CONFIGURE", 0x4C0A, false),
        ("LOOP_CTL_ADD", 0x4C80, false),
        ("LOOP_CTL_REMOVE", 0x4C81, false),
        ("LOOP_CTL_GET_FREE", 0x4C82, false),
        // tun/tap
        ("TUNSETIFF", 0x400454CA, false),
        ("TUNSETPERSIST", 0x400454CB, false),
        ("TUNSETOWNER", 0x400454CC, false),
        ("TUNSETGROUP", 0x400454CE, false),
        ("TUNGETFEATURES", 0x800454CF, true),
        ("TUNSETOFFLOAD", 0x400454D0, false),
        ("TUNGETIFF", 0x800454D2, true),
        ("TUNGETVNETHDRSZ", 0x800454D7, true),
        ("TUNSETVNETHDRSZ", 0x400454D8, false),
        // block devices
        ("BLKROGET", 0x125E, true),
        ("BLKRRPART", 0x125F, false),
        ("BLKGETSIZE", 0x1260, true),
        ("BLKFLSBUF", 0x1261, false),
        ("BLKSSZGET", 0x1268, true),
        ("BLKGETSIZE64", 0x80081272, true),
        ("BLKDISCARD", 0x1277, false),
        ("BLKPBSZGET", 0x127B, true),
    ];

    private static readonly FrozenDictionary<string, uint> s_byName = Table.ToFrozenDictionary(e => e.Name, e => e.Cmd, StringComparer.Ordinal);
    private static readonly FrozenDictionary<uint, string> s_byNumber = Table.ToFrozenDictionary(e => e.Cmd, e => e.Name);
    private static readonly FrozenSet<uint> s_queries = Table.Where(e => e.Query).Select(e => e.Cmd).ToFrozenSet();

    /// <summary>Every name the policy understands.</summary>
    public static IEnumerable<string> Names => Table.Select(e => e.Name);

    public static bool TryGetNumber(string name, out uint cmd) => s_byName.TryGetValue(name, out cmd);

    public static string? NameOf(uint cmd) => s_byNumber.GetValueOrDefault(cmd);

    /// <summary>"0x80045200 (RNDGETENTCNT)" or "0x1234".</summary>
    public static string Describe(uint cmd) => NameOf(cmd) is { } name ? $"0x{cmd:x} ({name})" : $"0x{cmd:x}";

    /// <summary>A read-only query: _IOC says read-only with a size, or the table lists it as one.</summary>
    public static bool IsQuery(uint cmd) => IsSizedQuery(cmd) || s_queries.Contains(cmd);

    /// <summary>Parses 0x5401, 21505 or a name from the table; false otherwise.</summary>
    public static bool TryParse(string text, out uint cmd)
    {
        text = text.Trim();
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return uint.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out cmd) && text.Length > 2;
        if (text.Length > 0 && text.All(char.IsAsciiDigit))
            return uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out cmd);
        return TryGetNumber(text, out cmd);
    }
}

/// <summary>One <c>ioctls:</c> section: commands allowed and denied; "*" in a list means every command.</summary>
public sealed class IoctlList
{
    public static readonly IoctlList Empty = new([], false, [], false);

    public IoctlList(IReadOnlyCollection<uint> allow, bool allowAll, IReadOnlyCollection<uint> deny, bool denyAll)
    {
        Allow = allow.ToFrozenSet();
        AllowAll = allowAll;
        Deny = deny.ToFrozenSet();
        DenyAll = denyAll;
    }

    public FrozenSet<uint> Allow { get; }
    public bool AllowAll { get; }
    public FrozenSet<uint> Deny { get; }
    public bool DenyAll { get; }
    public bool IsEmpty => Allow.Count == 0 && Deny.Count == 0 && !AllowAll && !DenyAll;
}

/// <summary>The outcome of <see cref="IoctlPolicy.Decide"/>: allowed or not, and why (for the audit log).</summary>
public readonly record struct IoctlDecision(bool Allowed, string Reason);

/// <summary>
/// Which ioctl commands a proxy entry forwards: the rule's own <c>ioctls:</c>, then the policy's
/// <c>defaults: ioctls:</c>, then the built-in default (read-only queries only). In each, deny wins
/// over allow. See docs/ioctl.md.
/// </summary>
public sealed class IoctlPolicy
{
    public static readonly IoctlPolicy BuiltIn = new(IoctlList.Empty, IoctlList.Empty, "");

    private readonly string _where;

    public IoctlPolicy(IoctlList rule, IoctlList defaults, string where)
    {
        Rule = rule;
        Defaults = defaults;
        _where = where;
    }

    public IoctlList Rule { get; }
    public IoctlList Defaults { get; }

    public IoctlDecision Decide(uint cmd) =>
        Evaluate(Rule, cmd, $"the rule's ioctls ({_where})")
        ?? Evaluate(Defaults, cmd, "defaults.ioctls")
        ?? (IoctlCommand.IsQuery(cmd)
            ? new(true, "a read-only query (built-in default)")
            : new(false, "not a read-only query and not in any ioctls.allow list (the built-in default denies it)"));

    private static IoctlDecision? Evaluate(IoctlList list, uint cmd, string where)
    {
        if (list.Deny.Contains(cmd))
            return new(false, $"denied by {where}.deny");
        if (list.Allow.Contains(cmd))
            return new(true, $"allowed by {where}.allow");
        if (list.DenyAll)
            return new(false, $"denied by {where}.deny: \"*\"");
        if (list.AllowAll)
            return new(true, $"allowed by {where}.allow: \"*\"");
        return null;
    }
}
