using System.Diagnostics;
using NUnit.Framework;

namespace DevFs.Integration.Tests;

public sealed record CommandResult(int ExitCode, string Stdout, string Stderr)
{
    public string Output => Stdout + Stderr;
}

/// <summary>Runs real programs (cat, dd, ls, stat, unshare, the devfs binary) as a user would.</summary>
public static class Run
{
    public static CommandResult Command(string program, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{program} {string.Join(' ', args)} did not finish in time");
        }
        return new CommandResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    public static CommandResult Shell(string script, TimeSpan? timeout = null) => Command("/bin/sh", ["-c", script], timeout);
}
