using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace DevFs.Cli;

public static class Logging
{
    /// <summary>
    /// One line per message; under systemd (JOURNAL_STREAM set) with syslog priority prefixes so that
    /// journald keeps the levels.
    /// </summary>
    public static ILoggerFactory Create(bool debug) => LoggerFactory.Create(builder =>
    {
        builder.SetMinimumLevel(debug ? LogLevel.Debug : LogLevel.Information);
        var journald = Environment.GetEnvironmentVariable("JOURNAL_STREAM") is not null;
        // Logs go to stderr: stdout stays for what commands print.
        builder.AddConsole(o =>
        {
            o.LogToStandardErrorThreshold = LogLevel.Trace;
            o.FormatterName = journald ? ConsoleFormatterNames.Systemd : ConsoleFormatterNames.Simple;
        });
        if (journald)
        {
            builder.AddSystemdConsole(o => o.IncludeScopes = false);
        }
        else
        {
            builder.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
                o.ColorBehavior = LoggerColorBehavior.Disabled;
            });
        }
        builder.AddFilter("devfs", debug ? LogLevel.Debug : LogLevel.Information);
    });
}
