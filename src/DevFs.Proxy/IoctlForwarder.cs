using System.Collections.Frozen;
using System.Runtime.InteropServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace DevFs.Proxy;

/// <summary>How an ioctl's argument reaches the real device (docs/ioctl.md).</summary>
public enum IoctlArgKind
{
    /// <summary>_IOC says which bytes move: the kernel sent them (input) and takes outputSize bytes back.</summary>
    Sized,

    /// <summary>No argument (LOOP_CLR_FD, LOOP_CTL_GET_FREE): called with 0.</summary>
    None,

    /// <summary>A plain number passed as it is (LOOP_CTL_ADD's index, LOOP_SET_BLOCK_SIZE's size).</summary>
    Value,

    /// <summary>A pointer to a fixed-layout struct without pointers or fds: copied from/to the caller's memory.</summary>
    Memory,

    /// <summary>The argument is a descriptor in the caller's table (LOOP_SET_FD, LOOP_CHANGE_FD).</summary>
    CallerFd,

    /// <summary>LOOP_CONFIGURE: struct loop_config in the caller's memory, whose first u32 is a caller descriptor.</summary>
    LoopConfigure,
}

/// <summary>The catalog's entry for a command: how its argument moves, and the sizes for Memory.</summary>
public readonly record struct IoctlShape(IoctlArgKind Kind, int InSize = 0, int OutSize = 0);

/// <summary>What forwarding gave: an errno (0 = success), the ioctl's result, the bytes for the kernel, or why it was refused.</summary>
public readonly record struct IoctlOutcome(int Error, int Result, byte[] Output, string? Refusal)
{
    public static IoctlOutcome Failed(int error) => new(error, 0, [], null);

    public static IoctlOutcome Refused(int error, string reason) => new(error, 0, [], reason);
}

/// <summary>
/// Performs an ioctl on a proxy handle's real descriptor. Restricted FUSE ioctls move only the
/// _IOC_SIZE(cmd) bytes the kernel copies; everything else (size-less legacy numbers, pointers,
/// descriptors) is translated here from a fixed catalog, or not forwarded at all: an argument the
/// daemon does not understand would be a pointer into the daemon's own memory, or a descriptor in its
/// own table. Commands run with the daemon's credentials, so the policy decides first (IoctlPolicy).
/// </summary>
public static unsafe class IoctlForwarder
{
    private const int LoopConfigSize = 304;    // struct loop_config: fd, block_size, loop_info64 (232), reserved[8]
    private const int LoopInfo64Size = 232;
    private const int LoopConfigFlagsOffset = 8 + 52; // loop_config.info.lo_flags
    private const uint LO_FLAGS_READ_ONLY = 1;
    private const int IfReqSize = 40;          // struct ifreq on 64-bit
    private const int ScratchSize = 32768;     // >= the largest _IOC_SIZE (16383) plus room for drivers that overrun it
    private const int PageSize = 4096;

    private static readonly FrozenDictionary<uint, IoctlShape> s_catalog = new Dictionary<uint, IoctlShape>
    {
        // terminals: legacy numbers without _IOC size; struct termios (36 bytes), struct winsize (8)
        [0x5401] = new(IoctlArgKind.Memory, 0, 36),   // TCGETS
        [0x5402] = new(IoctlArgKind.Memory, 36, 0),   // TCSETS
        [0x5413] = new(IoctlArgKind.Memory, 0, 8),    // TIOCGWINSZ
        [0x5414] = new(IoctlArgKind.Memory, 8, 0),    // TIOCSWINSZ
        // random: RNDADDENTROPY's _IOC size covers only the header of a variable-length struct
        [0x40085203] = new(IoctlArgKind.Sized, -1),   // RNDADDENTROPY: never forwarded (see Classify)
        [0x5204] = new(IoctlArgKind.None),            // RNDZAPENTCNT
        [0x5206] = new(IoctlArgKind.None),            // RNDCLEARPOOL
        [0x5207] = new(IoctlArgKind.None),            // RNDRESEEDCRNG
        // loop devices
        [0x4C00] = new(IoctlArgKind.CallerFd),        // LOOP_SET_FD
        [0x4C01] = new(IoctlArgKind.None),            // LOOP_CLR_FD
        [0x4C04] = new(IoctlArgKind.Memory, LoopInfo64Size, 0), // LOOP_SET_STATUS64
        [0x4C05] = new(IoctlArgKind.Memory, 0, LoopInfo64Size), // LOOP_GET_STATUS64
        [0x4C06] = new(IoctlArgKind.CallerFd),        // LOOP_CHANGE_FD
        [0x4C07] = new(IoctlArgKind.None),            // LOOP_SET_CAPACITY
        [0x4C08] = new(IoctlArgKind.Value),           // LOOP_SET_DIRECT_IO
        [0x4C09] = new(IoctlArgKind.Value),           // LOOP_SET_BLOCK_SIZE
        [0x4C0A] = new(IoctlArgKind.LoopConfigure, LoopConfigSize, 0), // LOOP_CONFIGURE
        [0x4C80] = new(IoctlArgKind.Value),           // LOOP_CTL_ADD
        [0x4C81] = new(IoctlArgKind.Value),           // LOOP_CTL_REMOVE
        [0x4C82] = new(IoctlArgKind.None),            // LOOP_CTL_GET_FREE
        // tun: declared with int size, but TUNSETIFF/TUNGETIFF move a whole struct ifreq
        [0x400454CA] = new(IoctlArgKind.Memory, IfReqSize, IfReqSize), // TUNSETIFF
        [0x800454D2] = new(IoctlArgKind.Memory, 0, IfReqSize),         // TUNGETIFF
        // block devices: legacy numbers without _IOC size
        [0x125E] = new(IoctlArgKind.Memory, 0, 4),    // BLKROGET
        [0x125F] = new(IoctlArgKind.None),            // BLKRRPART
        [0x1260] = new(IoctlArgKind.Memory, 0, 8),    // BLKGETSIZE
        [0x1261] = new(IoctlArgKind.None),            // BLKFLSBUF
        [0x1268] = new(IoctlArgKind.Memory, 0, 4),    // BLKSSZGET
        [0x1277] = new(IoctlArgKind.Memory, 16, 0),   // BLKDISCARD
        [0x127B] = new(IoctlArgKind.Memory, 0, 4),    // BLKPBSZGET
    }.ToFrozenDictionary();

    [ThreadStatic]
    private static nint t_scratch;

    /// <summary>
    /// How cmd can be forwarded, or null with the reason it cannot: a size-less command the catalog
    /// does not know has an argument of unknown meaning, and a command whose struct holds more than
    /// _IOC_SIZE says (or a pointer) cannot be made whole.
    /// </summary>
    public static IoctlShape? Classify(uint cmd, out string? whyNot)
    {
        whyNot = null;
        if (s_catalog.TryGetValue(cmd, out var shape))
        {
            if (shape.Kind == IoctlArgKind.Sized && shape.InSize < 0)
            {
                whyNot = "its argument is a variable-length struct larger than _IOC_SIZE; a restricted FUSE ioctl cannot carry it";
                return null;
            }
            return shape;
        }
        var dir = cmd >> 30;
        var size = (cmd >> 16) & 0x3FFF;
        if (dir != 0 && size > 0)
            return new IoctlShape(IoctlArgKind.Sized);
        whyNot = "the command has no _IOC size, so the kernel moves no data for it through a restricted FUSE ioctl, and DevFs has no translation for it";
        return null;
    }

    /// <summary>Runs the ioctl on the handle's real descriptor as shape says.</summary>
    public static IoctlOutcome Forward(ProxyHandle handle, uint callerPid, uint cmd, ulong arg, IoctlShape shape,
        ReadOnlySpan<byte> input, uint outputSize)
    {
        var scratch = Scratch();
        new Span<byte>((void*)scratch, ScratchSize).Clear();
        switch (shape.Kind)
        {
            case IoctlArgKind.Sized:
            {
                var size = Math.Max((int)((cmd >> 16) & 0x3FFF), Math.Max(input.Length, (int)outputSize));
                if (size > ScratchSize / 2)
                    return IoctlOutcome.Failed(EINVAL);
                input.CopyTo(new Span<byte>((void*)scratch, size));
                var r = handle.Ioctl(cmd, (nuint)scratch);
                return r < 0 ? IoctlOutcome.Failed(-r) : new(0, r, new Span<byte>((void*)scratch, (int)outputSize).ToArray(), null);
            }
            case IoctlArgKind.None:
            {
                var r = handle.Ioctl(cmd, 0);
                return r < 0 ? IoctlOutcome.Failed(-r) : new(0, r, [], null);
            }
            case IoctlArgKind.Value:
            {
                var r = handle.Ioctl(cmd, (nuint)arg);
                return r < 0 ? IoctlOutcome.Failed(-r) : new(0, r, [], null);
            }
            case IoctlArgKind.Memory:
                return WithCaller(callerPid, caller => Memory(handle, caller, cmd, arg, shape, scratch));
            case IoctlArgKind.CallerFd:
                return WithCaller(callerPid, caller =>
                {
                    var check = TakeBackingFile(caller, arg > int.MaxValue ? -1 : (int)arg, out var fd, out _);
                    if (check is not null)
                        return check.Value;
                    try
                    {
                        var r = handle.Ioctl(cmd, (nuint)fd);
                        return r < 0 ? IoctlOutcome.Failed(-r) : new(0, r, [], null);
                    }
                    finally
                    {
                        close(fd);
                    }
                });
            case IoctlArgKind.LoopConfigure:
                return WithCaller(callerPid, caller =>
                {
                    var config = new Span<byte>((void*)scratch, LoopConfigSize);
                    var error = caller.ReadMemory(arg, config);
                    if (error != 0)
                        return IoctlOutcome.Failed(error);
                    var callerFd = MemoryMarshal.Read<int>(config);
                    var check = TakeBackingFile(caller, callerFd, out var fd, out var readOnly);
                    if (check is not null)
                        return check.Value;
                    try
                    {
                        MemoryMarshal.Write(config, fd);
                        if (readOnly)
                        {
                            var flags = MemoryMarshal.Read<uint>(config[LoopConfigFlagsOffset..]) | LO_FLAGS_READ_ONLY;
                            MemoryMarshal.Write(config[LoopConfigFlagsOffset..], flags);
                        }
                        var r = handle.Ioctl(cmd, (nuint)scratch);
                        return r < 0 ? IoctlOutcome.Failed(-r) : new(0, r, [], null);
                    }
                    finally
                    {
                        close(fd);
                    }
                });
            default:
                return IoctlOutcome.Failed(ENOTTY);
        }
    }

    private static IoctlOutcome WithCaller(uint callerPid, Func<CallerProcess, IoctlOutcome> body)
    {
        var error = CallerProcess.Open(callerPid, out var caller);
        if (error != 0)
            return IoctlOutcome.Refused(EPERM, $"cannot reach the calling process {callerPid} to translate the argument: {new System.ComponentModel.Win32Exception(error).Message}");
        using (caller)
        {
            var outcome = body(caller!);
            if (!caller!.StillAlive)
                return IoctlOutcome.Failed(EINTR);
            return outcome;
        }
    }

    private static IoctlOutcome Memory(ProxyHandle handle, CallerProcess caller, uint cmd, ulong arg, IoctlShape shape, nint scratch)
    {
        var buffer = new Span<byte>((void*)scratch, Math.Max(shape.InSize, shape.OutSize));
        var error = caller.ReadMemory(arg, buffer[..shape.InSize]);
        if (error != 0)
            return IoctlOutcome.Failed(error);
        var r = handle.Ioctl(cmd, (nuint)scratch);
        if (r < 0)
            return IoctlOutcome.Failed(-r);
        error = caller.WriteMemory(arg, buffer[..shape.OutSize]);
        return error != 0 ? IoctlOutcome.Failed(error) : new(0, r, [], null);
    }

    /// <summary>
    /// Takes the caller's descriptor for a loop device's backing file and checks it: not O_PATH, open
    /// for reading, a regular file or a block device. Null when it may be used (fd then belongs to the
    /// caller of this method), else the refusal.
    /// </summary>
    private static IoctlOutcome? TakeBackingFile(CallerProcess caller, int callerFd, out int fd, out bool readOnly)
    {
        readOnly = false;
        fd = caller.TakeFd(callerFd);
        if (fd < 0)
            return IoctlOutcome.Refused(-fd == EBADF ? EBADF : EPERM,
                $"cannot take descriptor {callerFd} of process {caller.Pid}: {new System.ComponentModel.Win32Exception(-fd).Message}");
        var flags = fcntl(fd, F_GETFL);
        stat st;
        var statResult = fstat(fd, &st);
        string? refusal = null;
        var error = EINVAL;
        if (flags < 0 || statResult != 0)
            refusal = "cannot inspect the backing descriptor";
        else if ((flags & O_PATH) != 0)
        {
            refusal = "the backing descriptor is an O_PATH descriptor, which grants no I/O";
            error = EBADF;
        }
        else if ((flags & O_ACCMODE) == O_WRONLY)
        {
            refusal = "the backing descriptor is open write-only; a loop device must read it";
            error = EBADF;
        }
        else if (((uint)st.st_mode & 0xF000) is not (0x8000u or 0x6000u))
            refusal = $"the backing descriptor is not a regular file or block device (mode 0{Convert.ToString((uint)st.st_mode & 0xF000, 8)})";
        if (refusal is not null)
        {
            close(fd);
            fd = -1;
            return IoctlOutcome.Refused(error, refusal);
        }
        readOnly = (flags & O_ACCMODE) == O_RDONLY;
        return null;
    }

    /// <summary>
    /// This thread's zeroed scratch region, followed by a PROT_NONE guard page: a driver that writes
    /// past the struct it declared lands in scratch space or faults (EFAULT), never in the heap.
    /// </summary>
    private static nint Scratch()
    {
        if (t_scratch != 0)
            return t_scratch;
        const int PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20;
        var region = Native.Mmap(0, ScratchSize + PageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == -1)
            throw new OutOfMemoryException("cannot map the ioctl scratch region");
        Native.Mprotect(region + ScratchSize, PageSize, 0);
        t_scratch = region;
        return region;
    }
}
