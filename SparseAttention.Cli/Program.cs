using SparseAttention.Cli;
using SparseAttention.Cli.Commands;

var arguments = CommandLine.Parse(args);
try
{
    return arguments.Command switch
    {
        "demo" => DemoCommand.Run(arguments),
        "layout" => LayoutCommand.Run(arguments),
        "bench" => BenchCommand.Run(arguments),
        "ptx" => PtxCommand.Run(arguments),
        "compare" => CompareCommand.Run(arguments),
        "fingerprint" => FingerprintCommand.Run(arguments),
        _ => CommandLine.Usage($"unknown command '{arguments.Command}'"),
    };
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}
