// Structures and constants of the FUSE kernel protocol, mirroring include/uapi/linux/fuse.h.
// Names follow the kernel's so that the header can be read side by side with this file.
#pragma warning disable IDE1006 // kernel naming
using System.Runtime.InteropServices;

namespace DevFs.Fuse.Abi;

public static class FuseProtocol
{
    public const uint KernelVersion = 7;
    /// <summary>The minor version this library implements; INIT answers min(this, kernel's).</summary>
    public const uint KernelMinorVersion = 38;
    public const ulong RootId = 1;
    /// <summary>A read from /dev/fuse needs a buffer of at least this many bytes.</summary>
    public const int MinReadBuffer = 8192;
    /// <summary>Room the kernel needs in the read buffer beside max_write (headers of a WRITE).</summary>
    public const int RequestHeaderRoom = 80;
    /// <summary>FUSE_DEV_IOC_CLONE = _IOR(229, 0, uint32_t): attach a new /dev/fuse fd to a session.</summary>
    public const uint DevIocClone = 0x8004E500;
    public const int MaxErrno = 511;
}

public enum FuseOpcode : uint
{
    FUSE_LOOKUP = 1,
    FUSE_FORGET = 2,
    FUSE_GETATTR = 3,
    FUSE_SETATTR = 4,
    FUSE_READLINK = 5,
    FUSE_SYMLINK = 6,
    FUSE_MKNOD = 8,
    FUSE_MKDIR = 9,
    FUSE_UNLINK = 10,
    FUSE_RMDIR = 11,
    FUSE_RENAME = 12,
    FUSE_LINK = 13,
    FUSE_OPEN = 14,
    FUSE_READ = 15,
    FUSE_WRITE = 16,
    FUSE_STATFS = 17,
    FUSE_RELEASE = 18,
    FUSE_FSYNC = 20,
    FUSE_SETXATTR = 21,
    FUSE_GETXATTR = 22,
    FUSE_LISTXATTR = 23,
    FUSE_REMOVEXATTR = 24,
    FUSE_FLUSH = 25,
    FUSE_INIT = 26,
    FUSE_OPENDIR = 27,
    FUSE_READDIR = 28,
    FUSE_RELEASEDIR = 29,
    FUSE_FSYNCDIR = 30,
    FUSE_GETLK = 31,
    FUSE_SETLK = 32,
    FUSE_SETLKW = 33,
    FUSE_ACCESS = 34,
    FUSE_CREATE = 35,
    FUSE_INTERRUPT = 36,
    FUSE_BMAP = 37,
    FUSE_DESTROY = 38,
    FUSE_IOCTL = 39,
    FUSE_POLL = 40,
    FUSE_NOTIFY_REPLY = 41,
    FUSE_BATCH_FORGET = 42,
    FUSE_FALLOCATE = 43,
    FUSE_READDIRPLUS = 44,
    FUSE_RENAME2 = 45,
    FUSE_LSEEK = 46,
    FUSE_COPY_FILE_RANGE = 47,
    FUSE_SETUPMAPPING = 48,
    FUSE_REMOVEMAPPING = 49,
    FUSE_SYNCFS = 50,
    FUSE_TMPFILE = 51,
    FUSE_STATX = 52,
}

/// <summary>Codes of unsolicited messages to the kernel (unique = 0, error = code).</summary>
public enum FuseNotifyCode : int
{
    FUSE_NOTIFY_POLL = 1,
    FUSE_NOTIFY_INVAL_INODE = 2,
    FUSE_NOTIFY_INVAL_ENTRY = 3,
    FUSE_NOTIFY_STORE = 4,
    FUSE_NOTIFY_RETRIEVE = 5,
    FUSE_NOTIFY_DELETE = 6,
}

/// <summary>INIT flags (fuse_init_in.flags | flags2 &lt;&lt; 32).</summary>
[Flags]
public enum FuseInitFlags : ulong
{
    None = 0,
    FUSE_ASYNC_READ = 1UL << 0,
    FUSE_POSIX_LOCKS = 1UL << 1,
    FUSE_FILE_OPS = 1UL << 2,
    FUSE_ATOMIC_O_TRUNC = 1UL << 3,
    FUSE_EXPORT_SUPPORT = 1UL << 4,
    FUSE_BIG_WRITES = 1UL << 5,
    FUSE_DONT_MASK = 1UL << 6,
    FUSE_SPLICE_WRITE = 1UL << 7,
    FUSE_SPLICE_MOVE = 1UL << 8,
    FUSE_SPLICE_READ = 1UL << 9,
    FUSE_FLOCK_LOCKS = 1UL << 10,
    FUSE_HAS_IOCTL_DIR = 1UL << 11,
    FUSE_AUTO_INVAL_DATA = 1UL << 12,
    FUSE_DO_READDIRPLUS = 1UL << 13,
    FUSE_READDIRPLUS_AUTO = 1UL << 14,
    FUSE_ASYNC_DIO = 1UL << 15,
    FUSE_WRITEBACK_CACHE = 1UL << 16,
    FUSE_NO_OPEN_SUPPORT = 1UL << 17,
    FUSE_PARALLEL_DIROPS = 1UL << 18,
    FUSE_HANDLE_KILLPRIV = 1UL << 19,
    FUSE_POSIX_ACL = 1UL << 20,
    FUSE_ABORT_ERROR = 1UL << 21,
    FUSE_MAX_PAGES = 1UL << 22,
    FUSE_CACHE_SYMLINKS = 1UL << 23,
    FUSE_NO_OPENDIR_SUPPORT = 1UL << 24,
    FUSE_EXPLICIT_INVAL_DATA = 1UL << 25,
    FUSE_MAP_ALIGNMENT = 1UL << 26,
    FUSE_SUBMOUNTS = 1UL << 27,
    FUSE_HANDLE_KILLPRIV_V2 = 1UL << 28,
    FUSE_SETXATTR_EXT = 1UL << 29,
    FUSE_INIT_EXT = 1UL << 30,
    FUSE_INIT_RESERVED = 1UL << 31,
    FUSE_SECURITY_CTX = 1UL << 32,
    FUSE_HAS_INODE_DAX = 1UL << 33,
    FUSE_CREATE_SUPP_GROUP = 1UL << 34,
}

/// <summary>fuse_open_out.open_flags.</summary>
[Flags]
public enum FuseOpenFlags : uint
{
    None = 0,
    FOPEN_DIRECT_IO = 1 << 0,
    FOPEN_KEEP_CACHE = 1 << 1,
    FOPEN_NONSEEKABLE = 1 << 2,
    FOPEN_CACHE_DIR = 1 << 3,
    FOPEN_STREAM = 1 << 4,
    FOPEN_NOFLUSH = 1 << 5,
}

/// <summary>fuse_setattr_in.valid.</summary>
[Flags]
public enum FuseSetAttrValid : uint
{
    FATTR_MODE = 1 << 0,
    FATTR_UID = 1 << 1,
    FATTR_GID = 1 << 2,
    FATTR_SIZE = 1 << 3,
    FATTR_ATIME = 1 << 4,
    FATTR_MTIME = 1 << 5,
    FATTR_FH = 1 << 6,
    FATTR_ATIME_NOW = 1 << 7,
    FATTR_MTIME_NOW = 1 << 8,
    FATTR_LOCKOWNER = 1 << 9,
    FATTR_CTIME = 1 << 10,
    FATTR_KILL_SUIDGID = 1 << 11,
}

/// <summary>fuse_ioctl_in.flags.</summary>
[Flags]
public enum FuseIoctlFlags : uint
{
    FUSE_IOCTL_COMPAT = 1 << 0,
    FUSE_IOCTL_UNRESTRICTED = 1 << 1,
    FUSE_IOCTL_RETRY = 1 << 2,
    FUSE_IOCTL_32BIT = 1 << 3,
    FUSE_IOCTL_DIR = 1 << 4,
    FUSE_IOCTL_COMPAT_X32 = 1 << 5,
}

public static class FuseFlagBits
{
    public const uint FUSE_GETATTR_FH = 1 << 0;
    public const uint FUSE_RELEASE_FLUSH = 1 << 0;
    public const uint FUSE_FSYNC_FDATASYNC = 1 << 0;
    public const uint FUSE_POLL_SCHEDULE_NOTIFY = 1 << 0;
    public const uint RENAME_NOREPLACE = 1 << 0;
    public const uint RENAME_EXCHANGE = 1 << 1;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_in_header
{
    public uint len;
    public uint opcode;
    public ulong unique;
    public ulong nodeid;
    public uint uid;
    public uint gid;
    public uint pid;
    public ushort total_extlen;
    public ushort padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_out_header
{
    public uint len;
    public int error;
    public ulong unique;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_attr
{
    public ulong ino;
    public ulong size;
    public ulong blocks;
    public ulong atime;
    public ulong mtime;
    public ulong ctime;
    public uint atimensec;
    public uint mtimensec;
    public uint ctimensec;
    public uint mode;
    public uint nlink;
    public uint uid;
    public uint gid;
    public uint rdev;
    public uint blksize;
    public uint flags;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_kstatfs
{
    public ulong blocks;
    public ulong bfree;
    public ulong bavail;
    public ulong files;
    public ulong ffree;
    public uint bsize;
    public uint namelen;
    public uint frsize;
    public uint padding;
    public unsafe fixed uint spare[6];
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_entry_out
{
    public ulong nodeid;
    public ulong generation;
    public ulong entry_valid;
    public ulong attr_valid;
    public uint entry_valid_nsec;
    public uint attr_valid_nsec;
    public fuse_attr attr;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_forget_in
{
    public ulong nlookup;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_forget_one
{
    public ulong nodeid;
    public ulong nlookup;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_batch_forget_in
{
    public uint count;
    public uint dummy;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_getattr_in
{
    public uint getattr_flags;
    public uint dummy;
    public ulong fh;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_attr_out
{
    public ulong attr_valid;
    public uint attr_valid_nsec;
    public uint dummy;
    public fuse_attr attr;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_mknod_in
{
    public uint mode;
    public uint rdev;
    public uint umask;
    public uint padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_mkdir_in
{
    public uint mode;
    public uint umask;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_rename_in
{
    public ulong newdir;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_rename2_in
{
    public ulong newdir;
    public uint flags;
    public uint padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_setattr_in
{
    public uint valid;
    public uint padding;
    public ulong fh;
    public ulong size;
    public ulong lock_owner;
    public ulong atime;
    public ulong mtime;
    public ulong ctime;
    public uint atimensec;
    public uint mtimensec;
    public uint ctimensec;
    public uint mode;
    public uint unused4;
    public uint uid;
    public uint gid;
    public uint unused5;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_open_in
{
    public uint flags;
    public uint open_flags;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_create_in
{
    public uint flags;
    public uint mode;
    public uint umask;
    public uint open_flags;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_open_out
{
    public ulong fh;
    public uint open_flags;
    public int backing_id;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_release_in
{
    public ulong fh;
    public uint flags;
    public uint release_flags;
    public ulong lock_owner;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_flush_in
{
    public ulong fh;
    public uint unused;
    public uint padding;
    public ulong lock_owner;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_read_in
{
    public ulong fh;
    public ulong offset;
    public uint size;
    public uint read_flags;
    public ulong lock_owner;
    public uint flags;
    public uint padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_write_in
{
    public ulong fh;
    public ulong offset;
    public uint size;
    public uint write_flags;
    public ulong lock_owner;
    public uint flags;
    public uint padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_write_out
{
    public uint size;
    public uint padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_statfs_out
{
    public fuse_kstatfs st;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_fsync_in
{
    public ulong fh;
    public uint fsync_flags;
    public uint padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_access_in
{
    public uint mask;
    public uint padding;
}

/// <summary>INIT request. Kernels before 7.36 send only the first four fields (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct fuse_init_in
{
    public uint major;
    public uint minor;
    public uint max_readahead;
    public uint flags;
    public uint flags2;
    public unsafe fixed uint unused[11];
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_init_out
{
    public uint major;
    public uint minor;
    public uint max_readahead;
    public uint flags;
    public ushort max_background;
    public ushort congestion_threshold;
    public uint max_write;
    public uint time_gran;
    public ushort max_pages;
    public ushort map_alignment;
    public uint flags2;
    public unsafe fixed uint unused[7];
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_interrupt_in
{
    public ulong unique;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_ioctl_in
{
    public ulong fh;
    public uint flags;
    public uint cmd;
    public ulong arg;
    public uint in_size;
    public uint out_size;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_ioctl_out
{
    public int result;
    public uint flags;
    public uint in_iovs;
    public uint out_iovs;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_poll_in
{
    public ulong fh;
    public ulong kh;
    public uint flags;
    public uint events;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_poll_out
{
    public uint revents;
    public uint padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_notify_poll_wakeup_out
{
    public ulong kh;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_notify_inval_inode_out
{
    public ulong ino;
    public long off;
    public long len;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_notify_inval_entry_out
{
    public ulong parent;
    public uint namelen;
    public uint flags;
}

[StructLayout(LayoutKind.Sequential)]
public struct fuse_notify_delete_out
{
    public ulong parent;
    public ulong child;
    public uint namelen;
    public uint padding;
}

/// <summary>Header of one READDIR record; the name follows, the record is padded to 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct fuse_dirent
{
    public ulong ino;
    public ulong off;
    public uint namelen;
    public uint type;
}

/// <summary>Header of one READDIRPLUS record.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct fuse_direntplus
{
    public fuse_entry_out entry_out;
    public fuse_dirent dirent;
}
