using System.Globalization;
using DevFs.Devices;

namespace DevFs.Policy;

/// <summary>Turns policy YAML into a <see cref="DevicePolicy"/>, collecting every error with its position.</summary>
internal sealed class PolicyReader
{
    internal const uint MaxMajor = 4095;       // 12 bits
    internal const uint MaxMinor = 1048575;    // 20 bits
    internal const uint MaxId = uint.MaxValue - 1; // (uid_t)-1 means "no change" to the kernel
    private const int MaxPathLength = 4095;
    private const int MaxSegmentLength = 255;

    private static readonly string[] TopKeys = ["version", "defaults", "directories", "symlinks", "devices", "containers"];
    private static readonly string[] DefaultsKeys = ["access", "mode", "uid", "gid", "ioctls"];
    private static readonly string[] DirectoryKeys = ["path", "mode", "uid", "gid"];
    private static readonly string[] SymlinkKeys = ["path", "target"];
    private static readonly string[] RuleKeys = ["match", "access", "mode", "uid", "gid", "global", "path", "ioctls"];
    private static readonly string[] IoctlKeys = ["allow", "deny"];
    private static readonly string[] MatchKeys = ["devname", "subsystem", "kind", "major", "minor", "devtype", "attributes"];
    private static readonly string[] ContainerKeys = ["devices"];

    private readonly string _source;
    private readonly List<PolicyError> _errors = [];

    // defaults: (access, mode, uid, gid)
    private AccessMode _defaultAccess = AccessMode.Auto;
    private uint? _defaultMode;
    private uint _defaultUid;
    private uint _defaultGid;
    private IoctlList _defaultIoctls = IoctlList.Empty;

    private PolicyReader(string source) => _source = source;

    public static DevicePolicy Read(string text, string source)
    {
        var reader = new PolicyReader(source);
        var policy = reader.ReadPolicy(text);
        if (reader._errors.Count > 0 || policy is null)
        {
            var sorted = reader._errors
                .Select((e, i) => (e, i))
                .OrderBy(x => x.e.Line).ThenBy(x => x.e.Column).ThenBy(x => x.i)
                .Select(x => x.e)
                .ToList();
            throw new PolicyException(sorted);
        }
        return policy;
    }

    private DevicePolicy? ReadPolicy(string text)
    {
        var root = YamlTree.Read(text, _source, _errors);
        if (_errors.Count > 0)
            return null;
        if (root is null || root is YScalar { IsNull: true })
        {
            Error(1, 1, "the policy is empty; it needs at least 'version: 1' (see docs/policy.md)");
            return null;
        }
        if (root is not YMapping top)
        {
            Error(root, $"the top level of a policy must be a mapping with the keys {string.Join(", ", TopKeys)}; found {root.KindName}");
            return null;
        }

        var keys = Keys(top, "the policy's top level", TopKeys);

        if (!keys.TryGetValue("version", out var version))
            Error(top, "missing 'version: 1' at the top level; every policy must say which schema version it uses");
        else if (Scalar(version.Value, "version", "1") is { } v && v != "1")
            Error(version.Value, $"version must be 1, not '{v}'; this DevFs reads schema version 1 only");

        if (keys.TryGetValue("defaults", out var defaults))
            ReadDefaults(defaults.Value);

        var directories = new List<DirectoryRule>();
        var symlinks = new List<SymlinkRule>();
        var usedPaths = new Dictionary<string, (string What, int Line)>(StringComparer.Ordinal);
        if (keys.TryGetValue("directories", out var dirs))
        {
            foreach (var item in List(dirs.Value, "directories", "a list of { path: NAME, mode: \"0755\" } entries"))
                ReadDirectory(item, directories, usedPaths);
        }
        if (keys.TryGetValue("symlinks", out var links))
        {
            foreach (var item in List(links.Value, "symlinks", "a list of { path: NAME, target: TARGET } entries"))
                ReadSymlink(item, symlinks, usedPaths);
        }

        var devices = new List<DeviceRule>();
        if (keys.TryGetValue("devices", out var devs))
            ReadRules(devs.Value, null, devices);

        var containers = new List<string>();
        var containerRules = new Dictionary<string, IReadOnlyList<DeviceRule>>(StringComparer.Ordinal);
        if (keys.TryGetValue("containers", out var cs))
            ReadContainers(cs.Value, containers, containerRules);

        return new DevicePolicy(_source, directories, symlinks, devices, containers, containerRules);
    }

    // ---------------------------------------------------------------- sections

    private void ReadDefaults(YNode node)
    {
        if (node is YScalar { IsNull: true })
            return;
        if (node is not YMapping map)
        {
            Error(node, $"defaults must be a mapping with the keys {string.Join(", ", DefaultsKeys)}; found {node.KindName}");
            return;
        }
        var keys = Keys(map, "defaults", DefaultsKeys);
        if (keys.TryGetValue("access", out var a) && Access(a.Value) is { } access)
            _defaultAccess = access;
        if (keys.TryGetValue("mode", out var m))
            _defaultMode = Mode(m.Value);
        if (keys.TryGetValue("uid", out var u) && Id(u.Value, "uid") is { } uid)
            _defaultUid = uid;
        if (keys.TryGetValue("gid", out var g) && Id(g.Value, "gid") is { } gid)
            _defaultGid = gid;
        if (keys.TryGetValue("ioctls", out var io) && Ioctls(io.Value, "defaults.ioctls") is { } ioctls)
            _defaultIoctls = ioctls;
    }

    private void ReadDirectory(YNode node, List<DirectoryRule> into, Dictionary<string, (string, int)> used)
    {
        if (node is not YMapping map)
        {
            Error(node, $"a directory entry must be a mapping like {{ path: pts, mode: \"0755\" }}; found {node.KindName}");
            return;
        }
        var keys = Keys(map, "directory entry", DirectoryKeys);
        string? path = null;
        if (!keys.TryGetValue("path", out var p))
            Error(map, "directory entry has no path; add path: NAME (relative to /dev, e.g. pts)");
        else
            path = Path(p.Value, "path", allowPlaceholders: false);
        uint mode = 0x1ED; // 0755
        bool ok = path is not null;
        if (keys.TryGetValue("mode", out var m))
        {
            if (Mode(m.Value) is { } parsed)
                mode = parsed;
            else
                ok = false;
        }
        uint uid = 0, gid = 0;
        if (keys.TryGetValue("uid", out var u))
        {
            if (Id(u.Value, "uid") is { } x) uid = x; else ok = false;
        }
        if (keys.TryGetValue("gid", out var g))
        {
            if (Id(g.Value, "gid") is { } x) gid = x; else ok = false;
        }
        if (ok && Claim(path!, "directory", p.Value, used))
            into.Add(new DirectoryRule(path!, mode, uid, gid));
    }

    private void ReadSymlink(YNode node, List<SymlinkRule> into, Dictionary<string, (string, int)> used)
    {
        if (node is not YMapping map)
        {
            Error(node, $"a symlink entry must be a mapping like {{ path: fd, target: /proc/self/fd }}; found {node.KindName}");
            return;
        }
        var keys = Keys(map, "symlink entry", SymlinkKeys);
        string? path = null, target = null;
        if (!keys.TryGetValue("path", out var p))
            Error(map, "symlink entry has no path; add path: NAME (relative to /dev, e.g. fd)");
        else
            path = Path(p.Value, "path", allowPlaceholders: false);
        if (!keys.TryGetValue("target", out var t))
        {
            Error(map, path is null
                ? "symlink entry has no target; add target: WHERE_IT_POINTS (e.g. /proc/self/fd)"
                : $"symlink '{path}' has no target; add target: WHERE_IT_POINTS (e.g. /proc/self/fd)");
        }
        else if (Scalar(t.Value, "target", "the text the link points to, e.g. /proc/self/fd") is { } tv)
        {
            if (tv.Length == 0)
                Error(t.Value, "target is empty; give the text the link points to, e.g. /proc/self/fd");
            else if (tv.Contains('\0'))
                Error(t.Value, "target contains a NUL character");
            else if (tv.Length > MaxPathLength)
                Error(t.Value, $"target is longer than {MaxPathLength} characters");
            else
                target = tv;
        }
        if (path is not null && target is not null && Claim(path, "symlink", p.Value, used))
            into.Add(new SymlinkRule(path, target));
    }

    private bool Claim(string path, string what, YNode at, Dictionary<string, (string What, int Line)> used)
    {
        if (used.TryGetValue(path, out var first))
        {
            Error(at, $"'{path}' is already a {first.What} (line {first.Line}); each directory and symlink path may appear once");
            return false;
        }
        used[path] = (what, at.Line);
        return true;
    }

    private void ReadContainers(YNode node, List<string> names, Dictionary<string, IReadOnlyList<DeviceRule>> rules)
    {
        if (node is YScalar { IsNull: true })
            return;
        if (node is not YMapping map)
        {
            Error(node, $"containers must be a mapping of container names to {{ devices: [...] }}; found {node.KindName}");
            return;
        }
        foreach (var (name, (key, value)) in Keys(map, "containers", null))
        {
            if (name.Length == 0 || name.Any(c => c is ',' or '/' or '=' or '\0' || char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                Error(key, $"container name '{name}' is not usable as mount option container=NAME; use letters, digits, '-', '_', '.', ':' or '@'");
                continue;
            }
            var list = new List<DeviceRule>();
            if (value is YScalar { IsNull: true })
            {
                // "web:" with nothing below: a container without rules of its own.
            }
            else if (value is not YMapping cmap)
            {
                Error(value, $"container '{name}' must be a mapping with the key devices (a list of device rules); found {value.KindName}");
            }
            else
            {
                var ckeys = Keys(cmap, $"container '{name}'", ContainerKeys);
                if (ckeys.TryGetValue("devices", out var devs))
                    ReadRules(devs.Value, name, list);
            }
            names.Add(name);
            rules[name] = list;
        }
    }

    // ---------------------------------------------------------------- device rules

    private void ReadRules(YNode node, string? container, List<DeviceRule> into)
    {
        string where = container is null ? "devices" : $"devices of container '{container}'";
        foreach (var item in List(node, where, "a list of device rules, each with match: and settings"))
        {
            if (ReadRule(item, container) is { } rule)
                into.Add(rule);
        }
    }

    private DeviceRule? ReadRule(YNode node, string? container)
    {
        if (node is not YMapping map)
        {
            Error(node, $"a device rule must be a mapping with the keys {string.Join(", ", RuleKeys)}; found {node.KindName}");
            return null;
        }
        int errorsBefore = _errors.Count;
        var keys = Keys(map, "device rule", RuleKeys);

        Glob? devName = null;
        var subsystems = new List<string>();
        DeviceKind? kind = null;
        var majors = new List<NumberRange>();
        var minors = new List<NumberRange>();
        string? devType = null;
        var attributes = new List<KeyValuePair<string, Glob>>();

        if (!keys.TryGetValue("match", out var m))
        {
            Error(map, "device rule has no match; add match: with at least one of " + string.Join(", ", MatchKeys) +
                " (write match: { devname: \"**\" } to mean every device)");
        }
        else if (m.Value is YScalar { IsNull: true } || m.Value is YMapping { Entries.Count: 0 })
        {
            Error(m.Value, "match is empty and would match every device; give at least one of " + string.Join(", ", MatchKeys) +
                " (write match: { devname: \"**\" } if every device is really meant)");
        }
        else if (m.Value is not YMapping match)
        {
            Error(m.Value, $"match must be a mapping of criteria ({string.Join(", ", MatchKeys)}); found {m.Value.KindName}");
        }
        else
        {
            var mk = Keys(match, "match", MatchKeys);
            if (mk.TryGetValue("devname", out var dn) && Scalar(dn.Value, "devname", "a name pattern such as \"loop[0-9]*\"") is { } pattern)
                devName = GlobOf(dn.Value, "devname", pattern);
            if (mk.TryGetValue("subsystem", out var ss))
            {
                foreach (var item in ScalarOrList(ss.Value, "subsystem", "a subsystem name such as block, or a list of them"))
                {
                    if (Scalar(item, "subsystem", "a subsystem name such as block") is { } s)
                    {
                        if (s.Length == 0)
                            Error(item, "subsystem is empty; give a subsystem name such as block, mem, misc or tty");
                        else
                            subsystems.Add(s);
                    }
                }
            }
            if (mk.TryGetValue("kind", out var k) && Scalar(k.Value, "kind", "char or block") is { } ks)
            {
                kind = ks switch { "char" => DeviceKind.Char, "block" => DeviceKind.Block, _ => null };
                if (kind is null)
                    Error(k.Value, $"kind must be char or block, not '{ks}'");
            }
            if (mk.TryGetValue("major", out var ma))
                Ranges(ma.Value, "major", MaxMajor, majors);
            if (mk.TryGetValue("minor", out var mi))
                Ranges(mi.Value, "minor", MaxMinor, minors);
            if (mk.TryGetValue("devtype", out var dt) && Scalar(dt.Value, "devtype", "a DEVTYPE such as disk or partition") is { } dts)
            {
                if (dts.Length == 0)
                    Error(dt.Value, "devtype is empty; give a DEVTYPE such as disk, partition or usb_device");
                else
                    devType = dts;
            }
            if (mk.TryGetValue("attributes", out var at))
                ReadAttributes(at.Value, attributes);
        }

        var access = _defaultAccess;
        if (keys.TryGetValue("access", out var a) && Access(a.Value) is { } ac)
            access = ac;
        uint? mode = _defaultMode;
        if (keys.TryGetValue("mode", out var mo))
            mode = Mode(mo.Value);
        uint uid = _defaultUid, gid = _defaultGid;
        if (keys.TryGetValue("uid", out var u) && Id(u.Value, "uid") is { } ui)
            uid = ui;
        if (keys.TryGetValue("gid", out var g) && Id(g.Value, "gid") is { } gi)
            gid = gi;
        bool global = false;
        if (keys.TryGetValue("global", out var gl) && Bool(gl.Value, "global") is { } gb)
            global = gb;
        string? path = null;
        if (keys.TryGetValue("path", out var p))
            path = Path(p.Value, "path", allowPlaceholders: true);
        var ruleIoctls = IoctlList.Empty;
        if (keys.TryGetValue("ioctls", out var io) && Ioctls(io.Value, "ioctls") is { } parsedIoctls)
            ruleIoctls = parsedIoctls;

        if (_errors.Count > errorsBefore)
            return null;
        var where = container is null ? $"{_source}:{map.Line}:{map.Column}" : $"{_source}:{map.Line}:{map.Column} (container {container})";
        return new DeviceRule(_source, map.Line, map.Column, container,
            devName, subsystems, kind, majors, minors, devType, attributes,
            access, mode, uid, gid, global, path,
            new IoctlPolicy(ruleIoctls, _defaultIoctls, where));
    }

    private void ReadAttributes(YNode node, List<KeyValuePair<string, Glob>> into)
    {
        if (node is not YMapping map)
        {
            Error(node, $"attributes must be a mapping of sysfs attribute names to value patterns, e.g. {{ idVendor: \"046d\" }}; found {node.KindName}");
            return;
        }
        if (map.Entries.Count == 0)
        {
            Error(node, "attributes is empty; give name: pattern pairs such as idVendor: \"046d\", or leave attributes out");
            return;
        }
        foreach (var (name, (key, value)) in Keys(map, "attributes", null))
        {
            if (name.Length == 0 || name.Contains('\0') || name.Split('/').Any(s => s is "" or "." or ".."))
            {
                Error(key, $"attribute name '{name}' is not a sysfs attribute name; use a name such as idVendor or queue/rotational");
                continue;
            }
            if (Scalar(value, $"attribute {name}", "a value pattern such as \"046d\"") is { } pattern &&
                GlobOf(value, $"attribute {name}", pattern) is { } glob)
            {
                into.Add(new(name, glob));
            }
        }
    }

    private void Ranges(YNode node, string what, uint max, List<NumberRange> into)
    {
        string expected = $"a number, a range like \"0-255\", or a list of those";
        foreach (var item in ScalarOrList(node, what, expected))
        {
            if (Scalar(item, what, expected) is not { } text)
                continue;
            text = text.Trim();
            int dash = text.IndexOf('-', 1 < text.Length ? 1 : 0);
            string firstText = dash > 0 ? text[..dash].Trim() : text;
            string lastText = dash > 0 ? text[(dash + 1)..].Trim() : text;
            if (!Decimal(firstText, out uint first) || !Decimal(lastText, out uint last))
            {
                Error(item, $"{what} '{text}' is not a number or range; expected N or N-M with decimal numbers, e.g. 7 or \"0-255\"");
                continue;
            }
            if (first > max || last > max)
            {
                Error(item, $"{what} '{text}' is out of range; {what} numbers go from 0 to {max}");
                continue;
            }
            if (last < first)
            {
                Error(item, $"{what} range '{text}' ends before it starts; write it as {last}-{first}");
                continue;
            }
            into.Add(new NumberRange(first, last));
        }
    }

    // ---------------------------------------------------------------- values

    /// <summary><c>ioctls: { allow: [...], deny: [...] }</c>: numbers (0x5401, 21505), names from the table, or "*".</summary>
    private IoctlList? Ioctls(YNode node, string what)
    {
        if (node is YScalar { IsNull: true })
            return IoctlList.Empty;
        if (node is not YMapping map)
        {
            Error(node, $"{what} must be a mapping with the keys allow and deny, e.g. {{ allow: [RNDGETENTCNT, 0x5401], deny: [\"*\"] }}; found {node.KindName}");
            return null;
        }
        var keys = Keys(map, what, IoctlKeys);
        var ok = true;
        var allow = new HashSet<uint>();
        var deny = new HashSet<uint>();
        bool allowAll = false, denyAll = false;
        foreach (var (key, into) in new[] { ("allow", allow), ("deny", deny) })
        {
            if (!keys.TryGetValue(key, out var list))
                continue;
            const string expected = "a command number (0x5401), a known name (TCGETS) or \"*\" for every command";
            foreach (var item in ScalarOrList(list.Value, $"{what}.{key}", "a list of " + expected))
            {
                if (Scalar(item, $"{what}.{key}", expected) is not { } text)
                {
                    ok = false;
                    continue;
                }
                if (text.Trim() == "*")
                {
                    if (key == "allow") allowAll = true; else denyAll = true;
                    continue;
                }
                if (!IoctlCommand.TryParse(text, out var cmd))
                {
                    var hint = Suggest(text.Trim().ToLowerInvariant(), IoctlCommand.Names.Select(n => n.ToLowerInvariant()).ToArray()) is { } s
                        ? $" (did you mean '{s.ToUpperInvariant()}'?)" : "";
                    Error(item, $"{what}.{key}: '{text}' is not an ioctl command; expected {expected}{hint}. Known names are listed in docs/ioctl.md");
                    ok = false;
                    continue;
                }
                into.Add(cmd);
            }
        }
        foreach (var cmd in allow.Intersect(deny))
        {
            Error(map, $"{what}: command {IoctlCommand.Describe(cmd)} is both allowed and denied; keep it in one list");
            ok = false;
        }
        return ok ? new IoctlList(allow, allowAll, deny, denyAll) : null;
    }

    private AccessMode? Access(YNode node)
    {
        if (Scalar(node, "access", "proxy, node or auto") is not { } s)
            return null;
        switch (s)
        {
            case "auto": return AccessMode.Auto;
            case "proxy": return AccessMode.Proxy;
            case "node": return AccessMode.Node;
            default:
                Error(node, $"access must be proxy, node or auto, not '{s}'");
                return null;
        }
    }

    /// <summary>
    /// Permission bits, always read as octal: "0600", 0600 (a YAML int written in octal), 600,
    /// 0o600 and "1777" all work.
    /// </summary>
    private uint? Mode(YNode node)
    {
        const string expected = "octal permission bits such as \"0660\" or \"1777\"";
        if (Scalar(node, "mode", expected) is not { } s)
            return null;
        string digits = s.Trim();
        if (digits.StartsWith("0o", StringComparison.OrdinalIgnoreCase))
            digits = digits[2..];
        uint value = 0;
        bool ok = digits.Length is > 0 and <= 5;
        foreach (char c in digits)
        {
            if (c is < '0' or > '7')
            {
                ok = false;
                break;
            }
            value = value * 8 + (uint)(c - '0');
        }
        if (!ok || value > 0xFFF)
        {
            Error(node, $"mode '{s}' is not an octal permission; expected {expected} (at most 7777)");
            return null;
        }
        return value;
    }

    private uint? Id(YNode node, string what)
    {
        if (Scalar(node, what, "a numeric id") is not { } s)
            return null;
        if (!Decimal(s.Trim(), out uint id) || id > MaxId)
        {
            Error(node, $"{what} must be a number from 0 to {MaxId}, not '{s}' (names are not looked up)");
            return null;
        }
        return id;
    }

    private bool? Bool(YNode node, string what)
    {
        if (Scalar(node, what, "true or false") is not { } s)
            return null;
        switch (s)
        {
            case "true" or "True" or "TRUE": return true;
            case "false" or "False" or "FALSE": return false;
            default:
                Error(node, $"{what} must be true or false, not '{s}'");
                return null;
        }
    }

    private string? Path(YNode node, string what, bool allowPlaceholders)
    {
        if (Scalar(node, what, "a path relative to /dev such as net/tun") is not { } p)
            return null;
        if (p.Length == 0)
        {
            Error(node, $"{what} is empty; give a path relative to /dev such as net/tun");
            return null;
        }
        if (p.StartsWith('/'))
        {
            string hint = p.StartsWith("/dev/", StringComparison.Ordinal) ? p[5..] : p.TrimStart('/');
            Error(node, $"{what} '{p}' is absolute; write it relative to /dev, e.g. '{hint}'");
            return null;
        }
        if (p.Contains('\0'))
        {
            Error(node, $"{what} contains a NUL character");
            return null;
        }
        if (p.Length > MaxPathLength)
        {
            Error(node, $"{what} is longer than {MaxPathLength} characters");
            return null;
        }
        // Placeholders are checked first so that "{devname}" counts as one ordinary segment.
        string check = p;
        if (allowPlaceholders)
        {
            int i = 0;
            while ((i = p.IndexOf('{', i)) >= 0)
            {
                int close = p.IndexOf('}', i);
                string name = close < 0 ? "" : p[(i + 1)..close];
                if (close < 0 || !DeviceRule.Placeholders.Contains(name))
                {
                    Error(node, $"{what} '{p}' has an unknown placeholder '{(close < 0 ? p[i..] : p[i..(close + 1)])}'; " +
                        "expected {devname}, {name}, {major} or {minor}");
                    return null;
                }
                i = close + 1;
            }
            check = p.Replace("{devname}", "x").Replace("{name}", "x").Replace("{major}", "0").Replace("{minor}", "0");
        }
        else if (p.Contains('{') || p.Contains('}'))
        {
            // harmless but almost certainly a mistake: placeholders exist only in device rules
            Error(node, $"{what} '{p}' contains '{{' or '}}'; placeholders such as {{devname}} work only in a device rule's path");
            return null;
        }
        foreach (var segment in check.Split('/'))
        {
            if (segment is "." or "..")
            {
                Error(node, $"{what} '{p}' contains '{segment}'; a path must stay inside /dev and name each directory plainly, e.g. net/tun");
                return null;
            }
            if (segment.Length == 0)
            {
                Error(node, $"{what} '{p}' has an empty segment (a doubled or trailing '/'); write it like net/tun");
                return null;
            }
            if (segment.Length > MaxSegmentLength)
            {
                Error(node, $"{what} '{p}' has a name longer than {MaxSegmentLength} characters");
                return null;
            }
        }
        return p;
    }

    private Glob? GlobOf(YNode node, string what, string pattern)
    {
        if (Glob.TryParse(pattern, out var glob, out var error))
            return glob;
        Error(node, $"{what} pattern '{pattern}' is invalid: {error}. Patterns use * (within a name segment), ** (across '/'), ?, [a-z] and [!x]");
        return null;
    }

    // ---------------------------------------------------------------- structure helpers

    /// <summary>The value of a scalar node; reports an error (and returns null) for a list, a mapping or nothing.</summary>
    private string? Scalar(YNode node, string what, string expected)
    {
        switch (node)
        {
            case YScalar { IsNull: true }:
                Error(node, $"{what} has no value; expected {expected}");
                return null;
            case YScalar s:
                return s.Value;
            default:
                Error(node, $"{what} must be {expected}, not {node.KindName}");
                return null;
        }
    }

    private IReadOnlyList<YNode> List(YNode node, string what, string expected)
    {
        switch (node)
        {
            case YSequence seq:
                return seq.Items;
            case YScalar { IsNull: true }:
                return [];
            default:
                Error(node, $"{what} must be {expected}; found {node.KindName}");
                return [];
        }
    }

    private IReadOnlyList<YNode> ScalarOrList(YNode node, string what, string expected)
    {
        switch (node)
        {
            case YSequence { Items.Count: 0 }:
                Error(node, $"{what} is an empty list; expected {expected}");
                return [];
            case YSequence seq:
                return seq.Items;
            case YMapping:
                Error(node, $"{what} must be {expected}, not a mapping");
                return [];
            default:
                return [node];
        }
    }

    /// <summary>
    /// The entries of a mapping by key name. Reports non-scalar keys, duplicate keys and (when
    /// <paramref name="allowed"/> is given) unknown keys; those entries are left out.
    /// </summary>
    private Dictionary<string, (YScalar Key, YNode Value)> Keys(YMapping map, string what, string[]? allowed)
    {
        var result = new Dictionary<string, (YScalar, YNode)>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var (keyNode, value) in map.Entries)
        {
            if (keyNode is not YScalar key || key.IsNull)
            {
                Error(keyNode, $"a key in {what} must be a plain name, not {keyNode.KindName}");
                continue;
            }
            string name = key.Value;
            if (result.TryGetValue(name, out var first))
            {
                Error(key, $"duplicate key '{name}' in {what} (first at line {first.Item1.Line}); each key may appear once");
                continue;
            }
            if (allowed is not null && !allowed.Contains(name))
            {
                string hint = Suggest(name, allowed) is { } s ? $" (did you mean '{s}'?)" : "";
                Error(key, $"unknown key '{name}' in {what}; expected one of: {string.Join(", ", allowed)}{hint}");
                // remember it so a repeated misspelling is reported once as unknown, then as duplicate
            }
            result[name] = (key, value);
            order.Add(name);
        }
        // Unknown keys stay in the dictionary only to detect duplicates; hide them from callers.
        if (allowed is not null)
        {
            foreach (var name in order)
            {
                if (!allowed.Contains(name))
                    result.Remove(name);
            }
        }
        return allowed is null ? Ordered(result, order) : result;
    }

    // Keeps file order for open-ended mappings (containers, attributes).
    private static Dictionary<string, (YScalar Key, YNode Value)> Ordered(Dictionary<string, (YScalar, YNode)> d, List<string> order)
    {
        var o = new Dictionary<string, (YScalar Key, YNode Value)>(StringComparer.Ordinal);
        foreach (var name in order)
            o[name] = d[name];
        return o;
    }

    private static string? Suggest(string name, string[] allowed)
    {
        string? best = null;
        int bestDistance = 3;
        foreach (var candidate in allowed)
        {
            int d = Distance(name.ToLowerInvariant(), candidate);
            if (d < bestDistance)
            {
                best = candidate;
                bestDistance = d;
            }
        }
        return best;
    }

    private static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
            prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(prev[j] + 1, cur[j - 1] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    private static bool Decimal(string s, out uint value)
    {
        value = 0;
        return s.Length > 0 && s.All(char.IsAsciiDigit) &&
               uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    private void Error(YNode at, string message) => Error(at.Line, at.Column, message);

    private void Error(int line, int column, string message) => _errors.Add(new PolicyError(_source, line, column, message));
}
