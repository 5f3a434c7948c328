using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace DevFs.Cli;

public static class Logging
{
    /// <summary>
    /// One line per message on stderr; under systemd (JOURNAL_STREAM set) with syslog priority prefixes
    /// so that journald keeps the levels. A detached daemon without a journal logs to syslog instead: its
    /// stderr is /dev/null.
    /// </summary>
    public static ILoggerFactory Create(bool debug, bool detached = false) => LoggerFactory.Create(builder =>
    {
        builder.SetMinimumLevel(debug ? LogLevel.Debug : LogLevel.Information);
        builder.AddFilter("devfs", debug ? LogLevel.Debug : LogLevel.Information);
        var journald = Environment.GetEnvironmentVariable("JOURNAL_STREAM") is not null;
        if (detached && !journald)
        {
            if (SyslogLoggerProvider.Available)
                builder.AddProvider(new SyslogLoggerProvider());
            return;
        }
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
    });
}
