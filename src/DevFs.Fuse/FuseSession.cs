using DevFs.Fuse.Abi;
using Microsoft.Extensions.Logging;

using static Tmds.Linux.LibC;

namespace DevFs.Fuse;

/// <summary>
/// Serves one FUSE connection: negotiates INIT on the mount's channel, then runs worker threads,
/// each reading requests from its own cloned channel and dispatching them. Ends when the kernel
/// ends the connection (read gives ENODEV after umount) or on DESTROY.
/// </summary>
public sealed class FuseSession : IDisposable
{
    private readonly FuseFileSystem _fs;
    private readonly FuseChannel _channel;
    private readonly FuseSessionOptions _options;
    private readonly ILogger _logger;
    private readonly List<FuseChannel> _clones = new();
    private readonly List<Thread> _workers = new();
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _running;

    public FuseSession(FuseFileSystem fs, FuseChannel channel, FuseSessionOptions options, ILogger logger)
    {
        _fs = fs;
        _channel = channel;
        _options = options;
        _logger = logger;
        Notifier = new FuseNotifier(channel);
        Dispatcher = new FuseDispatcher(fs, options, logger, Notifier);
    }

    public FuseDispatcher Dispatcher { get; }
    public FuseNotifier Notifier { get; }

    /// <summary>Completes when every worker has stopped: the mount is gone.</summary>
    public Task Ended => _ended.Task;

    /// <summary>Size of each worker's read buffer: a whole WRITE of max_write plus its headers.</summary>
    private int BufferSize => (int)Math.Max(FuseProtocol.MinReadBuffer, FuseProtocol.RequestHeaderRoom + _options.MaxPages * 4096);

    /// <summary>Negotiates INIT on the calling thread, then starts the workers and returns.</summary>
    public void Start()
    {
        var buffer = new byte[BufferSize];
        while (Dispatcher.Connection is null)
        {
            var n = _channel.Read(buffer);
            if (n < 0)
                throw new IOException($"the FUSE connection ended before INIT: {Errno.Describe(-n)}");
            Dispatcher.Dispatch(buffer.AsSpan(0, n), _channel);
        }
        _running = _options.Workers;
        for (var i = 0; i < _options.Workers; i++)
        {
            // Worker 0 reads the mount's own channel; the others each clone one.
            var channel = i == 0 ? _channel : _channel.Clone();
            if (i > 0)
                _clones.Add(channel);
            if (i == 0)
                channel.SpinBeforeSleep = _options.SpinBeforeSleep;
            var workerBuffer = i == 0 ? buffer : new byte[BufferSize];
            var thread = new Thread(() => Work(channel, workerBuffer))
            {
                IsBackground = true,
                Name = $"fuse-worker-{i}",
            };
            _workers.Add(thread);
            thread.Start();
        }
    }

    private void Work(FuseChannel channel, byte[] buffer)
    {
        try
        {
            while (!Dispatcher.Destroyed)
            {
                var n = channel.Read(buffer);
                if (n == -ENODEV)
                    break;
                if (n < 0)
                {
                    _logger.LogError("Reading /dev/fuse failed: {Error}; stopping this worker", Errno.Describe(-n));
                    break;
                }
                Dispatcher.Dispatch(buffer.AsSpan(0, n), channel);
            }
        }
        catch (Exception e)
        {
            _logger.LogCritical(e, "FUSE worker {Worker} crashed", Thread.CurrentThread.Name);
        }
        finally
        {
            if (Interlocked.Decrement(ref _running) == 0)
            {
                _fs.Destroyed();
                _ended.TrySetResult();
            }
        }
    }

    public void Dispose()
    {
        foreach (var clone in _clones)
            clone.Dispose();
        _channel.Dispose();
    }
}
