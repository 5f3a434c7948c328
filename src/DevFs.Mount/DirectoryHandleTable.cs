using DevFs.View;

namespace DevFs.Mount;

/// <summary>What OPENDIR saw, so that READDIR offsets stay stable while the directory changes.</summary>
public sealed record DirectoryListing(ulong NodeId, ulong ParentId, IReadOnlyList<ViewNode> Entries);

public sealed class DirectoryHandleTable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, DirectoryListing> _open = new();
    private ulong _next = 1;

    public ulong Add(DirectoryListing listing)
    {
        lock (_lock)
        {
            var fh = _next++;
            _open[fh] = listing;
            return fh;
        }
    }

    public DirectoryListing? Get(ulong fh)
    {
        lock (_lock)
            return _open.GetValueOrDefault(fh);
    }

    public void Remove(ulong fh)
    {
        lock (_lock)
            _open.Remove(fh);
    }
}
