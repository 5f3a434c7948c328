using DevFs.Cli;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

return CommandLine.Run(args);
