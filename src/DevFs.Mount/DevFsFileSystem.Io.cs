using DevFs.Fuse;
using DevFs.Fuse.Abi;
using DevFs.Policy;
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
            _logger.LogWarning("Refused open of {Path} ({Device}) for container {Container} pid {Pid} uid {Uid}: the device was removed or taken back; answered ENODEV",
                device.Path, device.Device.DevName, _view.Container ?? "-", request.Caller.Pid, request.Caller.Uid);
            request.ReplyError(ENODEV);
            return;
        }
        if (!Permissions.Allows(device, request.Caller, AccessWanted(flags)))
        {
            _logger.LogWarning("Refused open of {Path} ({Device}) for container {Container} pid {Pid} uid {Uid} gid {Gid}: mode {Mode} does not allow it; answered EACCES",
                device.Path, device.Device.DevName, _view.Container ?? "-", request.Caller.Pid, request.Caller.Uid, request.Caller.Gid, Convert.ToString(device.Mode & 0xfff, 8));
            request.ReplyError(EACCES);
            return;
        }
        var error = DeviceNodeOpener.Open(device.Device, flags, _devRoot, out var file);
        if (error != 0)
        {
            _logger.LogInformation("Opening host device {Device} for {Path} (container {Container} pid {Pid}) failed: {Error}",
                device.Device.DevName, device.Path, _view.Container ?? "-", request.Caller.Pid, Errno.Describe(error));
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
            // The real descriptor is always non-blocking. A caller that wants to block waits on the
            // poller, not on this worker: its request is parked and answered when data comes.
            if (n == -EAGAIN && (flags & O_NONBLOCK) == 0)
            {
                if (MountPoller()?.ParkRead(handle, new ParkedRequest(request), (int)size, (long)offset) == true)
                    return;
                n = -ENODEV;
            }
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
        if (n == -EAGAIN && (flags & O_NONBLOCK) == 0)
        {
            var copy = data.ToArray();
            if (MountPoller()?.ParkWrite(handle, new ParkedRequest(request), copy, (long)offset) == true)
                return;
            n = -ENODEV;
        }
        if (n < 0)
            request.ReplyError(-n);
        else
            request.ReplyWrite((uint)n);
    }

    /// <summary>The mount's poller (started on first use), waking poll waiters with NOTIFY_POLL; null once the mount's handles are closed.</summary>
    private ProxyPoller? MountPoller() => _handles.Poller(kh => _notifier.PollWakeup(kh));

    /// <summary>
    /// A parked read or write as the poller sees it: the proxy layer knows nothing of FUSE, so the request
    /// token is adapted here. The poller completes it once; later answers are ignored by FuseRequest.
    /// </summary>
    private sealed class ParkedRequest(FuseRequest request) : IParkedIo
    {
        public bool IsCompleted => request.IsAnswered;
        public void CompleteWithData(ReadOnlySpan<byte> data) => request.ReplyData(data);
        public void CompleteWithCount(uint count) => request.ReplyWrite(count);
        public void CompleteWithError(int errno) => request.ReplyError(errno);
        public void OnInterrupted(Action callback) => request.OnInterrupt(callback);
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
        if (revents < 0)
        {
            request.ReplyPoll((uint)(POLLERR | POLLHUP));
            return;
        }
        // Not ready and the caller will wait: watch the real descriptor and wake kh once it is.
        if (revents == 0 && scheduleNotify)
        {
            var poller = MountPoller();
            if (poller is null || !poller.WatchPoll(handle, kh, events))
            {
                request.ReplyPoll((uint)(POLLERR | POLLHUP));
                return;
            }
            // Readiness may have come between the check and the watch: the poller's arm reports it
            // (epoll checks at once), so the wakeup follows this answer rather than being lost.
        }
        request.ReplyPoll((uint)revents);
    }

    public override void Ioctl(FuseRequest request, ulong nodeId, ulong fh, FuseIoctlFlags flags, uint cmd, ulong arg, ReadOnlySpan<byte> input, uint outputSize)
    {
        var handle = fh == 0 ? null : _handles.Get(fh);
        if (handle is null)
        {
            request.ReplyError(fh == 0 ? ENOTTY : EBADF);
            return;
        }
        if (handle.Revoked)
        {
            request.ReplyError(ENODEV);
            return;
        }
        var device = handle.Owner as DeviceNode;
        if ((flags & (FuseIoctlFlags.FUSE_IOCTL_COMPAT | FuseIoctlFlags.FUSE_IOCTL_COMPAT_X32)) != 0)
        {
            RefuseIoctl(request, device, handle, cmd, ENOTTY, "a 32-bit caller: struct layouts differ and are not translated");
            return;
        }
        var shape = IoctlForwarder.Classify(cmd, out var whyNot);
        if (shape is null)
        {
            RefuseIoctl(request, device, handle, cmd, ENOTTY, whyNot!);
            return;
        }
        var decision = (device?.Spec.Rule.Ioctls ?? IoctlPolicy.BuiltIn).Decide(cmd);
        if (!decision.Allowed)
        {
            RefuseIoctl(request, device, handle, cmd, EPERM, decision.Reason);
            return;
        }
        if (_loopControl.Refusal(handle.Device, cmd, arg) is { } notOurs)
        {
            RefuseIoctl(request, device, handle, cmd, EPERM, notOurs);
            return;
        }
        var outcome = IoctlForwarder.Forward(handle, request.Caller.Pid, cmd, arg, shape.Value, input, outputSize);
        if (outcome.Refusal is not null)
        {
            RefuseIoctl(request, device, handle, cmd, outcome.Error, outcome.Refusal);
            return;
        }
        if (outcome.Error != 0)
        {
            _logger.LogDebug("ioctl {Command} on {Device} for pid {Pid}: {Error}", IoctlCommand.Describe(cmd), handle.Device.DevName,
                request.Caller.Pid, Errno.Describe(outcome.Error));
            request.ReplyError(outcome.Error);
            return;
        }
        _loopControl.Succeeded(handle.Device, cmd, arg, outcome.Result);
        request.ReplyIoctl(outcome.Result, outcome.Output.AsSpan(0, Math.Min(outcome.Output.Length, (int)outputSize)));
    }

    private void RefuseIoctl(FuseRequest request, DeviceNode? device, ProxyHandle handle, uint cmd, int error, string reason)
    {
        _logger.LogWarning("Refused ioctl {Command} on {Path} ({Device}) for container {Container} pid {Pid} uid {Uid}: {Reason}; answered {Errno}",
            IoctlCommand.Describe(cmd), device?.Path ?? "?", handle.Device.DevName, _view.Container ?? "-", request.Caller.Pid,
            request.Caller.Uid, reason, error == EPERM ? "EPERM" : error == ENOTTY ? "ENOTTY" : Errno.Describe(error));
        request.ReplyError(error);
    }
}
