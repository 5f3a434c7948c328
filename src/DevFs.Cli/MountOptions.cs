using DevFs.Fuse;
using DevFs.Policy;

namespace DevFs.Cli;

/// <summary>The -o options of a mount, as mount.fuse3 or a user passes them.</summary>
public sealed record MountOptions
{
    public string? PolicyFile { get; init; }
    public string? Container { get; init; }

    /// <summary>pid=PID or userns=/proc/PID/ns/user: the container's user namespace.</summary>
    public string? UserNamespaceSpec { get; init; }

    /// <summary>idmap=INSIDE:OUTSIDE:COUNT: the container's id range, when there is no process to read it from.</summary>
    public Ownership.IdRange? IdMapSpec { get; init; }
    public ulong MountFlags { get; init; } = FuseMount.MS_NOSUID | FuseMount.MS_NOEXEC;
    public int? Workers { get; init; }
    public bool Debug { get; init; }

    /// <summary>Options the kernel or mount(8) own, that a FUSE daemon accepts and leaves be.</summary>
    private static readonly HashSet<string> Ignored = new(StringComparer.Ordinal)
    {
        "rw", "allow_other", "default_permissions", "auto", "noauto", "user", "nouser", "users", "defaults",
        "_netdev", "nofail", "atime", "noatime", "relatime", "strictatime", "nodiratime", "diratime", "async", "sync",
    };

    public static MountOptions Parse(IEnumerable<string> optionLists)
    {
        var options = new MountOptions();
        foreach (var list in optionLists)
        {
            foreach (var option in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                options = options.With(option);
        }
        return options;
    }

    private MountOptions With(string option)
    {
        var eq = option.IndexOf('=');
        var key = eq < 0 ? option : option[..eq];
        var value = eq < 0 ? null : option[(eq + 1)..];
        switch (key)
        {
            case "policy":
                return this with { PolicyFile = Require(key, value) };
            case "container":
                var name = Require(key, value);
                if (name.Contains('/') || name is "." or "..")
                    throw new UsageException($"container={name}: a container name cannot contain '/' or be '.' or '..'");
                return this with { Container = name };
            case "workers":
                if (!int.TryParse(Require(key, value), out var workers) || workers is < 1 or > 64)
                    throw new UsageException($"workers={value}: give a number of threads from 1 to 64");
                return this with { Workers = workers };
            case "debug":
                return this with { Debug = true };
            case "nodev":
                return this with { MountFlags = MountFlags | FuseMount.MS_NODEV };
            case "dev":
                return this with { MountFlags = MountFlags & ~FuseMount.MS_NODEV };
            case "nosuid":
                return this with { MountFlags = MountFlags | FuseMount.MS_NOSUID };
            case "suid":
                return this with { MountFlags = MountFlags & ~FuseMount.MS_NOSUID };
            case "noexec":
                return this with { MountFlags = MountFlags | FuseMount.MS_NOEXEC };
            case "exec":
                return this with { MountFlags = MountFlags & ~FuseMount.MS_NOEXEC };
            case "ro":
                throw new UsageException("ro: a /dev cannot be read-only (devices are written to); leave it out");
            case "userns":
                return this with { UserNamespaceSpec = Require(key, value) };
            case "idmap":
                // INSIDE:OUTSIDE:COUNT for uids and gids alike, as in lxc.idmap: for hooks that run before
                // the container has a process to name.
                var parts = Require(key, value).Split(':');
                if (parts.Length != 3 || !uint.TryParse(parts[0], out var inside) || !uint.TryParse(parts[1], out var outside) ||
                    !uint.TryParse(parts[2], out var count) || count == 0)
                    throw new UsageException($"idmap={value}: give INSIDE:OUTSIDE:COUNT, e.g. idmap=0:100000:65536");
                return this with { IdMapSpec = new Ownership.IdRange(inside, outside, count) };
            case "pid":
                if (!int.TryParse(Require(key, value), out var pid) || pid <= 0)
                    throw new UsageException($"pid={value}: give the process id of a process inside the container");
                return this with { UserNamespaceSpec = $"/proc/{pid}/ns/user" };
            default:
                if (Ignored.Contains(key) || key.StartsWith("x-", StringComparison.Ordinal) || key is "fsname" or "subtype")
                    return this;
                throw new UsageException($"unknown option '{option}'; see 'devfs --help' for the options devfs takes");
        }
    }

    private static string Require(string key, string? value) =>
        string.IsNullOrEmpty(value) ? throw new UsageException($"option {key}= needs a value") : value;

    /// <summary>The user namespace named by userns= or pid=, or the initial one.</summary>
    public Ownership.UserNamespace ResolveUserNamespace()
    {
        if (UserNamespaceSpec is not null && IdMapSpec is not null)
            throw new UsageException("give either pid=/userns= or idmap=, not both");
        if (IdMapSpec is { } range)
        {
            var map = new Ownership.IdMap([range]);
            return new Ownership.UserNamespace(0, map, map);
        }
        if (UserNamespaceSpec is null)
            return Ownership.UserNamespace.Initial;
        try
        {
            return Ownership.UserNamespace.FromPath(UserNamespaceSpec);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
    }

    /// <summary>The policy file named, or the built-in default.</summary>
    public DevicePolicy LoadPolicy() => PolicyFile is null ? DevicePolicy.Default : DevicePolicy.Load(PolicyFile);
}
