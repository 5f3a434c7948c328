using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DevFs.Ownership;

public enum AssignmentOrigin
{
    /// <summary>Given by `devfs assign` at run time.</summary>
    Assigned,
    /// <summary>Made by the container itself (a loop device through its own loop-control).</summary>
    Created,
}

/// <summary>A host device (by DEVNAME) that belongs to one container.</summary>
public sealed record Assignment(string DevName, string Container, AssignmentOrigin Origin);

/// <summary>
/// Which container owns which device at run time, kept in one small text file (default
/// /run/devfs/assignments, a line "DEVNAME CONTAINER ORIGIN" each) so that every devfs process sees the
/// same answer, changes reach all of them (they watch the file), and assignments survive a restart of
/// devfs. Writers take an exclusive lock and replace the file atomically.
/// </summary>
public sealed class AssignmentStore : IDisposable
{
    public const string DefaultDirectory = "/run/devfs";
    public const string FileName = "assignments";

    private readonly string _directory;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Lock _reloadLock = new();
    private Dictionary<string, Assignment> _current = new(StringComparer.Ordinal);
    private FileSystemWatcher? _watcher;

    public AssignmentStore(string? directory = null, ILogger? logger = null)
    {
        _directory = directory ?? Environment.GetEnvironmentVariable("DEVFS_STATE_DIR") ?? DefaultDirectory;
        _logger = logger ?? NullLogger.Instance;
        Reload();
    }

    public string FilePath => Path.Combine(_directory, FileName);

    /// <summary>Raised (on a watcher thread) when the assignments changed, after they were reloaded.</summary>
    public event Action? Changed;

    public IReadOnlyCollection<Assignment> Current
    {
        get
        {
            lock (_lock)
                return _current.Values.ToArray();
        }
    }

    public string? OwnerOf(string devName)
    {
        lock (_lock)
            return _current.TryGetValue(devName, out var a) ? a.Container : null;
    }

    /// <summary>Follows changes made by other processes.</summary>
    public void StartWatching()
    {
        Directory.CreateDirectory(_directory);
        _watcher = new FileSystemWatcher(_directory, FileName) { NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite };
        _watcher.Changed += (_, _) => ReloadAndRaise();
        _watcher.Created += (_, _) => ReloadAndRaise();
        _watcher.Renamed += (_, _) => ReloadAndRaise();
        _watcher.Deleted += (_, _) => ReloadAndRaise();
        _watcher.EnableRaisingEvents = true;
        // A change between the first read and the watch would otherwise be missed.
        ReloadAndRaise();
    }

    /// <summary>
    /// Gives devName to container. Exclusive: a device another container owns is refused unless
    /// takeOver (a move). Returns null, or why not.
    /// </summary>
    public string? Assign(string devName, string container, AssignmentOrigin origin, bool takeOver = false)
    {
        if (!IsValidName(devName) || !IsValidContainer(container))
            return $"'{devName}' or '{container}' is not a valid device or container name";
        return Update(all =>
        {
            if (all.TryGetValue(devName, out var existing) && existing.Container != container && !takeOver)
                return $"{devName} belongs to container {existing.Container}; take it back first (devfs unassign {devName}) or move it (--move)";
            all[devName] = new Assignment(devName, container, origin);
            return null;
        });
    }

    /// <summary>Takes devName back (from container, when given). Returns null, or why not.</summary>
    public string? Release(string devName, string? container = null) =>
        Update(all =>
        {
            if (!all.TryGetValue(devName, out var existing))
                return $"{devName} is not assigned to any container";
            if (container is not null && existing.Container != container)
                return $"{devName} belongs to {existing.Container}, not {container}";
            all.Remove(devName);
            return null;
        });

    private string? Update(Func<Dictionary<string, Assignment>, string?> change)
    {
        Directory.CreateDirectory(_directory);
        using var fileLock = TakeLock();
        var all = Read();
        var error = change(all);
        if (error is not null)
            return error;
        var temp = FilePath + ".tmp";
        File.WriteAllLines(temp, all.Values.OrderBy(a => a.DevName, StringComparer.Ordinal)
            .Select(a => $"{a.DevName} {a.Container} {a.Origin.ToString().ToLowerInvariant()}"));
        File.Move(temp, FilePath, overwrite: true);
        ReloadAndRaise();
        return null;
    }

    private FileStream TakeLock()
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            try
            {
                // FileShare.None is an exclusive flock on Linux.
                return new FileStream(FilePath + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(5);
            }
        }
    }

    private void ReloadAndRaise()
    {
        if (Reload())
            Changed?.Invoke();
    }

    /// <summary>Rereads the file; true when the assignments differ from before.</summary>
    private bool Reload()
    {
        // One reload at a time: a watcher thread that read an older file must not replace what a
        // later read (this process's own write) already installed, and raise a stale change.
        lock (_reloadLock)
        {
            var fresh = Read();
            lock (_lock)
            {
                if (fresh.Count == _current.Count && fresh.All(kv => _current.TryGetValue(kv.Key, out var v) && v == kv.Value))
                    return false;
                _current = fresh;
                return true;
            }
        }
    }

    private Dictionary<string, Assignment> Read()
    {
        var all = new Dictionary<string, Assignment>(StringComparer.Ordinal);
        string[] lines;
        try
        {
            lines = File.ReadAllLines(FilePath);
        }
        catch (FileNotFoundException)
        {
            return all;
        }
        catch (DirectoryNotFoundException)
        {
            return all;
        }
        for (var i = 0; i < lines.Length; i++)
        {
            var fields = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 0)
                continue;
            if (fields.Length != 3 || ParseOrigin(fields[2]) is not { } origin || !IsValidName(fields[0]) || !IsValidContainer(fields[1]))
            {
                // A damaged line loses that one assignment, never the others.
                _logger.LogWarning("{File}:{Line}: ignoring '{Text}': expected 'DEVNAME CONTAINER assigned|created'", FilePath, i + 1, lines[i]);
                continue;
            }
            all[fields[0]] = new Assignment(fields[0], fields[1], origin);
        }
        return all;
    }

    /// <summary>Only the words the store writes: Enum.TryParse would also take "7" and "assigned,created".</summary>
    private static AssignmentOrigin? ParseOrigin(string text) => text.ToLowerInvariant() switch
    {
        "assigned" => AssignmentOrigin.Assigned,
        "created" => AssignmentOrigin.Created,
        _ => null,
    };

    /// <summary>What Assign accepts is what the file may hold: a container name is one path component.</summary>
    private static bool IsValidContainer(string name) => IsValidName(name) && !name.Contains('/');

    private static bool IsValidName(string name) =>
        name.Length is > 0 and < 256 && !name.Any(char.IsWhiteSpace) && !name.Split('/').Any(p => p is "" or "." or "..");

    public void Dispose() => _watcher?.Dispose();
}
