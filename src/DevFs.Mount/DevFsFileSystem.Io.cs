using DevFs.Fuse;
using DevFs.Fuse.Abi;
using DevFs.Proxy;
using DevFs.View;
using Microsoft.Extensions.Logging;
using static Tmds.Linux.LibC;

namespace DevFs.Mount;

/// <summary>I/O on open entries: proxy handles forwarded to the real device, and files made in the mount.</summary>
public sealed partial class DevFsFileSystem
{
    private void OpenProxy(FuseRequest request, DeviceNode device, int flags)
    {
        if (device.Revoked)
        {
            request.ReplyError(ENODEV);
            return;
        }
        if (!Permissions.Allows(device, request.Caller, AccessWanted(flags)))
        {
            _logger.LogWarning("Refused open of {Path} ({Device}) for uid {Uid} gid {Gid} pid {Pid}: mode {Mode} does not allow it",
                device.Path, device.Device.DevName, request.Caller.Uid, request.Caller.Gid, request.Caller.Pid, Convert.ToString(device.Mode & 0xfff, 8));
            request.ReplyError(EACCES);
            return;
        }
        var error = DeviceNodeOpener.Open(device.Device, flags, _devRoot, out var file);
        if (error != 0)
        {
            _logger.LogInformation("Opening host device {Device} for {Path} failed: {Error}", device.Device.DevName, device.Path, Errno.Describe(error));
            request.ReplyError(error);
            return;
        }
        var handle = new ProxyHandle(device.Device, file!, device, flags, request.Caller.Pid);
        var fh = _handles.Add(handle);
        // The device may have gone between the check above and now: revoke rather than leak.
        if (device.Revoked)
            handle.Revoke();
        var openFlags = FuseOpenFlags.FOPEN_DIRECT_IO;
        if (!handle.Seekable)
            openFlags |= FuseOpenFlags.FOPEN_STREAM | FuseOpenFlags.FOPEN_NONSEEKABLE;
        request.ReplyOpen(fh, openFlags);
    }

    public override void Read(FuseRequest request, ulong nodeId, ulong fh, ulong offset, uint size, int flags)
    {
        if (fh == 0)
        {
            if (_view.Find(nodeId) is not FileNode file)
            {
                request.ReplyError(EBADF);
                return;
            }
            _view.ReadFile(file, (long)offset, (int)size, out var data);
            request.ReplyData(data);
            return;
        }
        var handle = _handles.Get(fh);
        if (handle is null)
        {
            request.ReplyError(EBADF);
            return;
        }
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent((int)size);
        try
        {
            var n = handle.Read(buffer.AsSpan(0, (int)size), (long)offset);
            if (n < 0)
                request.ReplyError(-n);
            else
                request.ReplyData(buffer.AsSpan(0, n));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public override void Write(FuseRequest request, ulong nodeId, ulong fh, ulong offset, ReadOnlySpan<byte> data, int flags)
    {
        if (fh == 0)
        {
            var error = _view.Find(nodeId) is FileNode file ? _view.WriteFile(file, (long)offset, data) : EBADF;
            if (error != 0)
                request.ReplyError(error);
            else
                request.ReplyWrite((uint)data.Length);
            return;
        }
        var handle = _handles.Get(fh);
        if (handle is null)
        {
            request.ReplyError(EBADF);
            return;
        }
        var n = handle.Write(data, (long)offset);
        if (n < 0)
            request.ReplyError(-n);
        else
            request.ReplyWrite((uint)n);
    }

    public override void Fsync(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly)
    {
        var handle = fh == 0 ? null : _handles.Get(fh);
        ReplyDone(request, handle is null ? 0 : -handle.Fsync(dataOnly));
    }

    public override void Release(FuseRequest request, ulong nodeId, ulong fh, int flags)
    {
        if (fh != 0)
            _handles.Remove(fh)?.Close();
        request.ReplyOk();
    }

    public override void Poll(FuseRequest request, ulong nodeId, ulong fh, ulong kh, bool scheduleNotify, uint events)
    {
        var handle = fh == 0 ? null : _handles.Get(fh);
        if (handle is null)
        {
            request.ReplyPoll(FuseDefaultPollMask);
            return;
        }
        var revents = handle.PollNow((short)events);
        request.ReplyPoll(revents < 0 ? (uint)(POLLERR | POLLHUP) : (uint)revents);
    }
}
