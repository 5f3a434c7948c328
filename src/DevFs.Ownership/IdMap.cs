namespace DevFs.Ownership;

/// <summary>
/// A user namespace's uid_map or gid_map: lines "INSIDE OUTSIDE COUNT". Translates ids as the container
/// sees them into the host's ids the FUSE connection (made in the initial namespace) speaks.
/// </summary>
public sealed class IdMap
{
    /// <summary>The initial namespace's map: every id is itself.</summary>
    public static readonly IdMap Identity = new([new IdRange(0, 0, uint.MaxValue)]);

    /// <summary>What an id outside every range shows as (the kernel's overflowuid).</summary>
    public const uint Overflow = 65534;

    private readonly IReadOnlyList<IdRange> _ranges;

    public IdMap(IReadOnlyList<IdRange> ranges) => _ranges = ranges;

    public IReadOnlyList<IdRange> Ranges => _ranges;

    /// <summary>Parses /proc/PID/uid_map text; throws FormatException saying which line is wrong.</summary>
    public static IdMap Parse(string text)
    {
        var ranges = new List<IdRange>();
        var lineNumber = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNumber++;
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 0)
                continue;
            if (fields.Length != 3 || !uint.TryParse(fields[0], out var inside) || !uint.TryParse(fields[1], out var outside) ||
                !uint.TryParse(fields[2], out var count) || count == 0)
                throw new FormatException($"id map line {lineNumber} '{line.Trim()}' is not 'INSIDE OUTSIDE COUNT'");
            ranges.Add(new IdRange(inside, outside, count));
        }
        return new IdMap(ranges);
    }

    /// <summary>The host id of a container id, or null when the container has no such id.</summary>
    public uint? ToHost(uint inside)
    {
        foreach (var range in _ranges)
        {
            if (inside >= range.Inside && inside - range.Inside < range.Count)
                return range.Outside + (inside - range.Inside);
        }
        return null;
    }
}

public readonly record struct IdRange(uint Inside, uint Outside, uint Count);
