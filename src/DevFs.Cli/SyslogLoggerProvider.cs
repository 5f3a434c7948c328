using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace DevFs.Cli;

/// <summary>
/// Logs to the local syslog socket (/dev/log, which journald and rsyslog both read), one RFC 3164
/// datagram per message with facility daemon. Used by a daemon that detached from its terminal and is
/// not under systemd, so that its decisions (refusals, audit lines) are not lost. Best effort: a missing
/// or full socket drops the message rather than stalling a FUSE worker.
/// </summary>
public sealed class SyslogLoggerProvider : ILoggerProvider
{
    /// <summary>The socket; DEVFS_SYSLOG_SOCKET overrides it (tests).</summary>
    public static string SocketPath => Environment.GetEnvironmentVariable("DEVFS_SYSLOG_SOCKET") ?? "/dev/log";

    private const int FacilityDaemon = 3;
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
    private readonly UnixDomainSocketEndPoint _endpoint = new(SocketPath);
    private readonly string _tag = $"devfs[{Environment.ProcessId}]";

    public static bool Available => File.Exists(SocketPath);

    public ILogger CreateLogger(string categoryName) => new SyslogLogger(this);

    private void Send(LogLevel level, string message)
    {
        var priority = FacilityDaemon * 8 + level switch
        {
            LogLevel.Critical => 2,
            LogLevel.Error => 3,
            LogLevel.Warning => 4,
            LogLevel.Information => 6,
            _ => 7,
        };
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes($"<{priority}>{_tag}: {message}"), _endpoint);
        }
        catch (SocketException)
        {
        }
    }

    public void Dispose() => _socket.Dispose();

    private sealed class SyslogLogger(SyslogLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
                return;
            var message = formatter(state, exception);
            if (exception is not null)
                message += ": " + exception.Message;
            provider.Send(logLevel, message.Replace('\n', ' '));
        }
    }
}
