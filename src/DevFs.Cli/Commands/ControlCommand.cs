using System.Net.Sockets;
using System.Text;
using DevFs.Cli.Service;
using DevFs.Ownership;

namespace DevFs.Cli.Commands;

/// <summary>
/// devfs ctl REQUEST...: talks to the running service. `devfs ctl mount web -o container=web,pid=123`,
/// `devfs ctl list`, `devfs ctl devices web`, `devfs ctl status`, `devfs ctl events`, `devfs ctl unmount web`.
/// </summary>
public static class ControlCommand
{
    public static int Run(string[] args)
    {
        if (args.Length == 0)
            throw new UsageException("ctl needs a request: mount NAME [-o OPTIONS] | unmount NAME | list | devices NAME | status | events | assign DEVNAME CONTAINER [--move] | unassign DEVNAME");
        var words = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "-o" && i + 1 < args.Length)
                words.Add(args[++i]);
            else
                words.Add(args[i]);
        }
        if (words.Any(w => w.Contains(' ') || w.Contains('\n')))
            throw new UsageException("request words cannot contain spaces or newlines");
        var stateDirectory = Environment.GetEnvironmentVariable("DEVFS_STATE_DIR") ?? AssignmentStore.DefaultDirectory;
        var socketPath = Path.Combine(stateDirectory, ControlServer.SocketName);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        }
        catch (SocketException e)
        {
            Console.Error.WriteLine($"devfs: cannot reach the devfs service at {socketPath} ({e.Message}); start it with 'devfs serve' or 'systemctl start devfs'");
            return CommandLine.Failed;
        }
        using var stream = new NetworkStream(socket);
        stream.Write(Encoding.UTF8.GetBytes(string.Join(' ', words) + "\n"));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        // Lines print as they come (events stream); the last line, "ok" or "error: WHY", is the status.
        while (reader.ReadLine() is { } line)
        {
            if (line == "ok")
                return CommandLine.Ok;
            if (line.StartsWith("error: ", StringComparison.Ordinal))
            {
                Console.Error.WriteLine($"devfs: {line["error: ".Length..]}");
                return CommandLine.Failed;
            }
            Console.WriteLine(line);
        }
        Console.Error.WriteLine("devfs: the service closed the connection without an answer");
        return CommandLine.Failed;
    }
}
