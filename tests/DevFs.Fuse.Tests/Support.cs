global using NUnit.Framework;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using DevFs.Fuse.Abi;
using Microsoft.Extensions.Logging.Abstractions;

namespace DevFs.Fuse.Tests;

/// <summary>Errno values as the kernel defines them (asm-generic/errno-base.h), independent of the code under test.</summary>
internal static class Errno
{
    public const int EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, EAGAIN = 11, EACCES = 13, EEXIST = 17, EINVAL = 22, ENOTTY = 25,
        ENOSYS = 38, ENOTEMPTY = 39;
}

/// <summary>Captures every message as header + body + data concatenated.</summary>
internal sealed class RecordingSink : IFuseReplySink
{
    public List<byte[]> Messages { get; } = new();

    public int Send(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body, ReadOnlySpan<byte> data)
    {
        var all = new byte[header.Length + body.Length + data.Length];
        header.CopyTo(all);
        body.CopyTo(all.AsSpan(header.Length));
        data.CopyTo(all.AsSpan(header.Length + body.Length));
        lock (Messages)
            Messages.Add(all);
        return 0;
    }
}

internal sealed record Call(string Op, ulong Node, object?[] Args, FuseRequest Request);

/// <summary>Records the decoded arguments of each call, then answers through <see cref="Answer"/>.</summary>
internal sealed class RecordingFs : FuseFileSystem
{
    public List<Call> Calls { get; } = new();
    public Action<FuseRequest> Answer { get; set; } = r => r.ReplyOk();
    public bool Throw { get; set; }
    public FuseConnectionInfo? Connection { get; private set; }
    public FuseNotifier? Notifier { get; private set; }
    public int DestroyedCount { get; private set; }
    public List<(ulong Node, ulong Nlookup)> Forgets { get; } = new();

    private void Handle(FuseRequest r, string op, ulong node, params object?[] args)
    {
        Calls.Add(new Call(op, node, args, r));
        if (Throw)
            throw new InvalidOperationException("handler failure for " + op);
        Answer(r);
    }

    public override void Initialized(FuseConnectionInfo connection, FuseNotifier notifier)
    {
        Connection = connection;
        Notifier = notifier;
    }

    public override void Forget(ulong nodeId, ulong nlookup) => Forgets.Add((nodeId, nlookup));
    public override void Lookup(FuseRequest r, ulong parent, string name) => Handle(r, "Lookup", parent, name);
    public override void GetAttr(FuseRequest r, ulong nodeId, ulong? fh) => Handle(r, "GetAttr", nodeId, fh);
    public override void SetAttr(FuseRequest r, ulong nodeId, in fuse_setattr_in attr) => Handle(r, "SetAttr", nodeId, attr);
    public override void ReadLink(FuseRequest r, ulong nodeId) => Handle(r, "ReadLink", nodeId);
    public override void Symlink(FuseRequest r, ulong parent, string name, string target) => Handle(r, "Symlink", parent, name, target);
    public override void MkNod(FuseRequest r, ulong parent, string name, uint mode, uint rdev, uint umask) => Handle(r, "MkNod", parent, name, mode, rdev, umask);
    public override void MkDir(FuseRequest r, ulong parent, string name, uint mode, uint umask) => Handle(r, "MkDir", parent, name, mode, umask);
    public override void Unlink(FuseRequest r, ulong parent, string name) => Handle(r, "Unlink", parent, name);
    public override void RmDir(FuseRequest r, ulong parent, string name) => Handle(r, "RmDir", parent, name);
    public override void Rename(FuseRequest r, ulong parent, string name, ulong newParent, string newName, uint flags) => Handle(r, "Rename", parent, name, newParent, newName, flags);
    public override void Open(FuseRequest r, ulong nodeId, int flags) => Handle(r, "Open", nodeId, flags);
    public override void Create(FuseRequest r, ulong parent, string name, uint mode, uint umask, int flags) => Handle(r, "Create", parent, name, mode, umask, flags);
    public override void Read(FuseRequest r, ulong nodeId, ulong fh, ulong offset, uint size, int flags) => Handle(r, "Read", nodeId, fh, offset, size, flags);
    public override void Write(FuseRequest r, ulong nodeId, ulong fh, ulong offset, ReadOnlySpan<byte> data, int flags) => Handle(r, "Write", nodeId, fh, offset, data.ToArray(), flags);
    public override void Flush(FuseRequest r, ulong nodeId, ulong fh) => Handle(r, "Flush", nodeId, fh);
    public override void Release(FuseRequest r, ulong nodeId, ulong fh, int flags) => Handle(r, "Release", nodeId, fh, flags);
    public override void Fsync(FuseRequest r, ulong nodeId, ulong fh, bool dataOnly) => Handle(r, "Fsync", nodeId, fh, dataOnly);
    public override void OpenDir(FuseRequest r, ulong nodeId, int flags) => Handle(r, "OpenDir", nodeId, flags);
    public override void ReadDir(FuseRequest r, ulong nodeId, ulong fh, ulong offset, uint size, bool plus) => Handle(r, "ReadDir", nodeId, fh, offset, size, plus);
    public override void ReleaseDir(FuseRequest r, ulong nodeId, ulong fh) => Handle(r, "ReleaseDir", nodeId, fh);
    public override void StatFs(FuseRequest r, ulong nodeId) => Handle(r, "StatFs", nodeId);
    public override void Access(FuseRequest r, ulong nodeId, uint mask) => Handle(r, "Access", nodeId, mask);
    public override void Ioctl(FuseRequest r, ulong nodeId, ulong fh, FuseIoctlFlags flags, uint cmd, ulong arg, ReadOnlySpan<byte> input, uint outputSize) =>
        Handle(r, "Ioctl", nodeId, fh, flags, cmd, arg, input.ToArray(), outputSize);
    public override void Poll(FuseRequest r, ulong nodeId, ulong fh, ulong kh, bool scheduleNotify, uint events) => Handle(r, "Poll", nodeId, fh, kh, scheduleNotify, events);
    public override void Destroyed() => DestroyedCount++;
}

/// <summary>A bare filesystem: every default of FuseFileSystem.</summary>
internal sealed class BareFs : FuseFileSystem;

internal static class Wire
{
    public const int InHeader = 40, OutHeader = 16;

    public static byte[] Bytes<T>(in T value) where T : unmanaged =>
        MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    public static byte[] Cat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>A NUL-terminated UTF-8 string.</summary>
    public static byte[] Z(string s) => Cat(Encoding.UTF8.GetBytes(s), [0]);

    public static byte[] Request(FuseOpcode opcode, ulong unique, ulong nodeId, byte[] body, ushort extWords = 0, byte[]? ext = null,
        uint uid = 1000, uint gid = 1001, uint pid = 4242) => Request((uint)opcode, unique, nodeId, body, extWords, ext, uid, gid, pid);

    public static byte[] Request(uint opcode, ulong unique, ulong nodeId, byte[] body, ushort extWords = 0, byte[]? ext = null,
        uint uid = 1000, uint gid = 1001, uint pid = 4242)
    {
        ext ??= [];
        var header = new fuse_in_header
        {
            len = (uint)(InHeader + body.Length + ext.Length),
            opcode = opcode,
            unique = unique,
            nodeid = nodeId,
            uid = uid,
            gid = gid,
            pid = pid,
            total_extlen = extWords,
        };
        return Cat(Bytes(header), body, ext);
    }

    public static fuse_init_in ModernInit(uint minor = 40, FuseInitFlags flags = DefaultKernelFlags) => new()
    {
        major = 7,
        minor = minor,
        max_readahead = 131072,
        flags = (uint)flags,
        flags2 = (uint)((ulong)flags >> 32),
    };

    public const FuseInitFlags DefaultKernelFlags =
        FuseInitFlags.FUSE_ASYNC_READ | FuseInitFlags.FUSE_POSIX_LOCKS | FuseInitFlags.FUSE_BIG_WRITES | FuseInitFlags.FUSE_MAX_PAGES |
        FuseInitFlags.FUSE_DO_READDIRPLUS | FuseInitFlags.FUSE_READDIRPLUS_AUTO | FuseInitFlags.FUSE_WRITEBACK_CACHE |
        FuseInitFlags.FUSE_PARALLEL_DIROPS | FuseInitFlags.FUSE_INIT_EXT | FuseInitFlags.FUSE_SECURITY_CTX | FuseInitFlags.FUSE_CACHE_SYMLINKS;

    public static uint U32(byte[] m, int at) => BinaryPrimitives.ReadUInt32LittleEndian(m.AsSpan(at));
    public static int I32(byte[] m, int at) => BinaryPrimitives.ReadInt32LittleEndian(m.AsSpan(at));
    public static ulong U64(byte[] m, int at) => BinaryPrimitives.ReadUInt64LittleEndian(m.AsSpan(at));
    public static ushort U16(byte[] m, int at) => BinaryPrimitives.ReadUInt16LittleEndian(m.AsSpan(at));

    /// <summary>Little-endian writer for expected bytes, laid out by hand from linux/fuse.h.</summary>
    public sealed class Expect(int size)
    {
        public byte[] Buffer { get; } = new byte[size];
        public Expect U32(int at, uint v) { BinaryPrimitives.WriteUInt32LittleEndian(Buffer.AsSpan(at), v); return this; }
        public Expect I32(int at, int v) { BinaryPrimitives.WriteInt32LittleEndian(Buffer.AsSpan(at), v); return this; }
        public Expect U64(int at, ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(Buffer.AsSpan(at), v); return this; }
        public Expect U16(int at, ushort v) { BinaryPrimitives.WriteUInt16LittleEndian(Buffer.AsSpan(at), v); return this; }
        public Expect Bytes(int at, byte[] v) { v.CopyTo(Buffer, at); return this; }
        /// <summary>fuse_out_header: len, error, unique.</summary>
        public Expect Header(int error, ulong unique) => U32(0, (uint)size).I32(4, error).U64(8, unique);
    }
}

/// <summary>A dispatcher with a recording sink and filesystem, INIT already done unless asked otherwise.</summary>
internal sealed class Harness
{
    public const uint MaxPages = 64;
    public const uint MaxWrite = MaxPages * 4096;
    public RecordingFs Fs { get; }
    public RecordingSink Sink { get; } = new();
    public FuseDispatcher Dispatcher { get; }
    private ulong _unique = 1000;
    public ulong LastUnique { get; private set; }

    public Harness(bool init = true, FuseFileSystem? fs = null, RecordingFs? recording = null)
    {
        Fs = recording ?? new RecordingFs();
        Dispatcher = new FuseDispatcher(fs ?? Fs, new FuseSessionOptions { MaxPages = MaxPages, Workers = 2 }, NullLogger.Instance,
            new FuseNotifier(Sink));
        if (init)
        {
            var reply = Send(FuseOpcode.FUSE_INIT, 0, Wire.Bytes(Wire.ModernInit()));
            Assert.That(reply, Is.Not.Null);
            Assert.That(Wire.I32(reply!, 4), Is.Zero);
            Sink.Messages.Clear();
        }
    }

    public ulong NextUnique() => LastUnique = ++_unique * 2;

    /// <summary>Dispatches one request; returns its reply (asserting at most one) or null.</summary>
    public byte[]? Send(FuseOpcode opcode, ulong node, byte[] body) => SendRaw(Wire.Request(opcode, NextUnique(), node, body));

    public byte[]? Send(uint opcode, ulong node, byte[] body) => SendRaw(Wire.Request(opcode, NextUnique(), node, body));

    public byte[]? SendRaw(byte[] message)
    {
        if (message.Length >= 16)
            LastUnique = Wire.U64(message, 8);
        var before = Sink.Messages.Count;
        Dispatcher.Dispatch(message, Sink);
        var after = Sink.Messages.Count;
        Assert.That(after - before, Is.LessThanOrEqualTo(1), "more than one reply to a request");
        return after > before ? Sink.Messages[^1] : null;
    }

    /// <summary>Asserts reply is exactly a 16-byte error header for the last request.</summary>
    public void AssertError(byte[]? reply, int errno)
    {
        Assert.That(reply, Is.Not.Null, "no reply");
        Assert.That(reply, Is.EqualTo(new Wire.Expect(16).Header(-errno, LastUnique).Buffer));
    }

    public void AssertOk(byte[]? reply) => AssertError(reply, 0);
}
