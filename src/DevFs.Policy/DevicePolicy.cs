using DevFs.Devices;

namespace DevFs.Policy;

/// <summary>
/// A parsed, validated device policy: what a container's /dev contains. See docs/policy.md for the schema.
/// Immutable and safe to share between threads.
/// </summary>
public sealed class DevicePolicy
{
    private const string DefaultResource = "DevFs.Policy.default.yaml";
    private const string DefaultSourceName = "<built-in default.yaml>";

    private static readonly Lazy<DevicePolicy> s_default = new(LoadDefault);

    private readonly IReadOnlyDictionary<string, IReadOnlyList<DeviceRule>> _containerRules;

    internal DevicePolicy(
        string source,
        IReadOnlyList<DirectoryRule> directories,
        IReadOnlyList<SymlinkRule> symlinks,
        IReadOnlyList<DeviceRule> devices,
        IReadOnlyList<string> containers,
        IReadOnlyDictionary<string, IReadOnlyList<DeviceRule>> containerRules)
    {
        Source = source;
        Directories = directories;
        Symlinks = symlinks;
        Devices = devices;
        Containers = containers;
        _containerRules = containerRules;
    }

    /// <summary>The file name (or other name) the policy was read from; used in diagnostics.</summary>
    public string Source { get; }

    /// <summary>Directories every container's /dev holds (pts, shm, mqueue, ...), in file order.</summary>
    public IReadOnlyList<DirectoryRule> Directories { get; }

    /// <summary>Symbolic links every container's /dev holds (fd, stdin, ptmx, ...), in file order.</summary>
    public IReadOnlyList<SymlinkRule> Symlinks { get; }

    /// <summary>The top-level device rules, in file order.</summary>
    public IReadOnlyList<DeviceRule> Devices { get; }

    /// <summary>Names of the containers that have their own section under <c>containers:</c>, in file order.</summary>
    public IReadOnlyList<string> Containers { get; }

    /// <summary>The policy compiled into DevFs (policies/default.yaml).</summary>
    public static DevicePolicy Default => s_default.Value;

    /// <summary>The device rules of one container's section (tried before <see cref="Devices"/>); empty when it has none.</summary>
    public IReadOnlyList<DeviceRule> DevicesFor(string container) =>
        _containerRules.TryGetValue(container, out var rules) ? rules : [];

    /// <summary>
    /// What <paramref name="device"/> looks like in the /dev of <paramref name="container"/> (null: a mount
    /// without container=NAME): the first matching rule decides, the container's own rules first, then
    /// the top-level rules. Null when no rule matches: the device is not shown.
    /// </summary>
    public DeviceEntrySpec? Match(HostDevice device, string? container = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        return FindRule(device, container)?.EntryFor(device);
    }

    /// <summary>The rule that decides <paramref name="device"/> for <paramref name="container"/>, as <see cref="Match"/> picks it.</summary>
    public DeviceRule? FindRule(HostDevice device, string? container = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (container is not null && _containerRules.TryGetValue(container, out var own))
        {
            foreach (var rule in own)
            {
                if (rule.Matches(device))
                    return rule;
            }
        }
        foreach (var rule in Devices)
        {
            if (rule.Matches(device))
                return rule;
        }
        return null;
    }

    /// <summary>Reads and validates a policy file. Throws <see cref="PolicyException"/> with every problem found.</summary>
    public static DevicePolicy Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new PolicyException([new PolicyError(path, 1, 1, $"cannot read the policy file: {e.Message}")]);
        }
        return Parse(text, path);
    }

    /// <summary>
    /// Parses and validates policy text. <paramref name="sourceName"/> names it in error messages.
    /// Throws <see cref="PolicyException"/> with every problem found.
    /// </summary>
    public static DevicePolicy Parse(string yamlText, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(yamlText);
        ArgumentNullException.ThrowIfNull(sourceName);
        return PolicyReader.Read(yamlText, sourceName);
    }

    private static DevicePolicy LoadDefault()
    {
        using var stream = typeof(DevicePolicy).Assembly.GetManifestResourceStream(DefaultResource)
            ?? throw new InvalidOperationException($"the DevFs.Policy assembly lacks its embedded resource {DefaultResource}");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd(), DefaultSourceName);
    }
}
