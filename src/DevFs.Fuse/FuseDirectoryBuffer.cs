using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using DevFs.Fuse.Abi;

namespace DevFs.Fuse;

/// <summary>Builds the body of a READDIR or READDIRPLUS reply: records padded to 8 bytes, up to the size asked for.</summary>
public sealed class FuseDirectoryBuffer(uint size)
{
    private readonly byte[] _buffer = new byte[size];
    private int _used;

    public ReadOnlySpan<byte> Data => _buffer.AsSpan(0, _used);

    /// <summary>Adds a READDIR record; false when it does not fit (the caller stops there).</summary>
    /// <param name="nextOffset">The offset the kernel passes back to continue after this entry.</param>
    public bool TryAdd(ulong ino, string name, uint fileType, ulong nextOffset)
    {
        var dirent = new fuse_dirent { ino = ino, off = nextOffset, type = fileType };
        return TryAppend(name, ref dirent, default, withEntry: false);
    }

    /// <summary>Adds a READDIRPLUS record; entry.nodeid 0 means "no lookup reference taken".</summary>
    public bool TryAddPlus(in fuse_entry_out entry, string name, uint fileType, ulong nextOffset)
    {
        var dirent = new fuse_dirent { ino = entry.attr.ino, off = nextOffset, type = fileType };
        return TryAppend(name, ref dirent, entry, withEntry: true);
    }

    private bool TryAppend(string name, ref fuse_dirent dirent, in fuse_entry_out entry, bool withEntry)
    {
        var nameLength = Encoding.UTF8.GetByteCount(name);
        var headerSize = (withEntry ? Unsafe.SizeOf<fuse_entry_out>() : 0) + Unsafe.SizeOf<fuse_dirent>();
        var recordSize = (headerSize + nameLength + 7) & ~7;
        if (_used + recordSize > _buffer.Length)
            return false;
        var record = _buffer.AsSpan(_used, recordSize);
        record.Clear();
        dirent.namelen = (uint)nameLength;
        var at = 0;
        if (withEntry)
        {
            MemoryMarshal.Write(record, in entry);
            at = Unsafe.SizeOf<fuse_entry_out>();
        }
        MemoryMarshal.Write(record[at..], in dirent);
        Encoding.UTF8.GetBytes(name, record[(at + Unsafe.SizeOf<fuse_dirent>())..]);
        _used += recordSize;
        return true;
    }
}
