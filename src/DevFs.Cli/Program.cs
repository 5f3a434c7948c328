using DevFs.Cli;

return CommandLine.Run(args);
