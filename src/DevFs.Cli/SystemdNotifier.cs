using System.Net.Sockets;
using System.Text;

namespace DevFs.Cli;

/// <summary>
/// sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET. READY=1 once the mount is live (for
/// Type=notify units), WATCHDOG=1 at half the unit's WatchdogSec while the FUSE session is alive, and
/// STOPPING=1 on the way out. Does nothing when not started by systemd.
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endpoint;
    private Timer? _watchdog;

    public SystemdNotifier()
    {
        var path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path))
            return;
        // A leading '@' names a socket in the abstract namespace.
        _endpoint = new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    public bool Enabled => _socket is not null;

    public void Ready(string status) => Send($"READY=1\nSTATUS={status}\nMAINPID={Environment.ProcessId}");

    public void Stopping() => Send("STOPPING=1");

    /// <summary>Pets the watchdog while alive() holds; a hung or dead session stops the pets and systemd restarts us.</summary>
    public void StartWatchdog(Func<bool> alive)
    {
        if (!ulong.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), out var usec) || usec == 0)
            return;
        var period = TimeSpan.FromMicroseconds(usec / 2);
        _watchdog = new Timer(_ =>
        {
            if (alive())
                Send("WATCHDOG=1");
        }, null, TimeSpan.Zero, period);
    }

    private void Send(string message)
    {
        if (_socket is null || _endpoint is null)
            return;
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(message), _endpoint);
        }
        catch (SocketException)
        {
            // systemd went away or the socket is not ours: readiness is best effort.
        }
    }

    public void Dispose()
    {
        _watchdog?.Dispose();
        _socket?.Dispose();
    }
}
