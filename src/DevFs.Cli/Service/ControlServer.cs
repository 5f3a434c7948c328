using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using DevFs.View;
using Microsoft.Extensions.Logging;

namespace DevFs.Cli.Service;

/// <summary>
/// The service's control socket (STATE_DIR/control.sock, mode 0600, root only by SO_PEERCRED). A client
/// sends one line: a command and its arguments separated by spaces; the server answers with lines of
/// text and a last line "ok" or "error: WHY", except `events`, which streams until the client hangs up.
/// Commands: mount NAME [OPTIONS], unmount NAME, list, devices NAME, status, events,
/// assign DEVNAME CONTAINER [--move], unassign DEVNAME.
/// </summary>
public sealed class ControlServer : IDisposable
{
    public const string SocketName = "control.sock";
    private const int MaxRequestLength = 4096;

    private readonly DevFsService _service;
    private readonly ILogger _logger;
    private readonly Socket _listener;
    private readonly Thread _acceptThread;
    private volatile bool _stopping;

    public ControlServer(DevFsService service, ILogger logger)
    {
        _service = service;
        _logger = logger;
        SocketPath = Path.Combine(service.StateDirectory, SocketName);
        File.Delete(SocketPath);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        File.SetUnixFileMode(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _listener.Listen(16);
        _acceptThread = new Thread(Accept) { IsBackground = true, Name = "devfs-control" };
    }

    public string SocketPath { get; }

    public void Start() => _acceptThread.Start();

    private void Accept()
    {
        while (!_stopping)
        {
            Socket client;
            try
            {
                client = _listener.Accept();
            }
            catch (SocketException) when (_stopping)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            new Thread(() => Serve(client)) { IsBackground = true, Name = "devfs-control-client" }.Start();
        }
    }

    private void Serve(Socket client)
    {
        using var _ = client;
        using var stream = new NetworkStream(client);
        using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        try
        {
            var (pid, uid) = PeerCredentials(client);
            if (uid != 0)
            {
                _logger.LogWarning("Refused a control request from uid {Uid} pid {Pid}: only root may control devfs", uid, pid);
                writer.WriteLine("error: only root may control devfs");
                return;
            }
            var line = ReadLine(stream);
            if (line is null)
            {
                writer.WriteLine($"error: send one request line of at most {MaxRequestLength} bytes");
                return;
            }
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            _logger.LogInformation("Control request from pid {Pid}: {Request}", pid, line);
            var error = words switch
            {
                ["mount", var name] => _service.Mount(name, ""),
                ["mount", var name, var options] => _service.Mount(name, options),
                ["unmount", var name] => _service.Unmount(name),
                ["list"] => List(writer),
                ["devices", var name] => Devices(writer, name),
                ["status"] => Status(writer),
                ["assign", var device, var container] => _service.Assignments.Assign(device, container, Ownership.AssignmentOrigin.Assigned),
                ["assign", var device, var container, "--move"] => _service.Assignments.Assign(device, container, Ownership.AssignmentOrigin.Assigned, takeOver: true),
                ["unassign", var device] => _service.Assignments.Release(device),
                ["events"] => Events(writer, client),
                _ => "unknown request; use: mount NAME [OPTIONS] | unmount NAME | list | devices NAME | status | events | assign DEVNAME CONTAINER [--move] | unassign DEVNAME",
            };
            writer.WriteLine(error is null ? "ok" : "error: " + error.Replace('\n', ' '));
        }
        catch (IOException)
        {
            // The client went away mid-answer.
        }
    }

    private string? List(StreamWriter writer)
    {
        foreach (var (name, mount) in _service.Mounts())
            writer.WriteLine($"{name} {mount.Request.MountPoint} container={mount.View.Container} devices={mount.View.Devices().Count} open={mount.FileSystem.Handles.Count} policy={mount.Request.Policy.Source}");
        return null;
    }

    private string? Devices(StreamWriter writer, string name)
    {
        var mount = _service.Find(name);
        if (mount is null)
            return $"{name} is not mounted by this service";
        foreach (var device in mount.View.Devices())
            writer.WriteLine($"{device.Path} {(device.Device.Kind == DevFs.Devices.DeviceKind.Block ? "block" : "char")} {device.Device.Major}:{device.Device.Minor} {device.Access.ToString().ToLowerInvariant()} {Convert.ToString(device.Mode & StatMode.PermissionBits, 8)} {device.Uid}:{device.Gid}");
        return null;
    }

    private string? Status(StreamWriter writer)
    {
        var counters = _service.Registry.Counters;
        writer.WriteLine($"pid={Environment.ProcessId} mounts={_service.Mounts().Count} devices={_service.Registry.Count} assignments={_service.Assignments.Current.Count}");
        writer.WriteLine($"uevents received={counters.Received} dropped={counters.Dropped} resyncs={counters.Resyncs}");
        return null;
    }

    /// <summary>Streams events until the client hangs up.</summary>
    private string? Events(StreamWriter writer, Socket client)
    {
        using var ended = new ManualResetEventSlim();
        void OnEvent(string line)
        {
            try
            {
                lock (writer)
                    writer.WriteLine(line);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                ended.Set();
            }
        }
        _service.Event += OnEvent;
        try
        {
            // A hang-up shows as a readable socket with nothing to read.
            var probe = new byte[1];
            while (!ended.IsSet && !_stopping)
            {
                if (client.Poll(TimeSpan.FromMilliseconds(500), SelectMode.SelectRead) && client.Receive(probe) == 0)
                    break;
            }
        }
        catch (SocketException)
        {
        }
        finally
        {
            _service.Event -= OnEvent;
        }
        return null;
    }

    private static string? ReadLine(Stream stream)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (bytes.Count < MaxRequestLength)
        {
            if (stream.Read(one) == 0 || one[0] == (byte)'\n')
                return bytes.Count == 0 ? null : Encoding.UTF8.GetString(bytes.ToArray());
            bytes.Add(one[0]);
        }
        return null;
    }

    /// <summary>SO_PEERCRED: the connecting process's pid and uid, as the kernel saw them at connect.</summary>
    private static (int Pid, uint Uid) PeerCredentials(Socket socket)
    {
        const int SOL_SOCKET = 1;
        const int SO_PEERCRED = 17;
        Span<byte> ucred = stackalloc byte[12];
        socket.GetRawSocketOption(SOL_SOCKET, SO_PEERCRED, ucred);
        return (MemoryMarshal.Read<int>(ucred), MemoryMarshal.Read<uint>(ucred[4..]));
    }

    public void Dispose()
    {
        _stopping = true;
        _listener.Dispose();
        File.Delete(SocketPath);
    }
}
