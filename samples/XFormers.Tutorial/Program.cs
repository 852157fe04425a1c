using System;
using System.Linq;
using Spectre.Console;
using XFormers;
using XFormers.Tutorial;

// XFormers for .NET, the xFormers tutorial section by section.
//   dotnet run --project samples/XFormers.Tutorial              all sections
//   dotnet run --project samples/XFormers.Tutorial -- info      devices and every registered variant
//   ... -- --section 4 --device cpu                             one section, forced onto the CPU
string command = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "run";
string? Option(string name)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
}

var preference = Option("--device") switch
{
    null => AcceleratorPreference.Auto,
    "cpu" => AcceleratorPreference.Cpu,
    "cuda" => AcceleratorPreference.Cuda,
    var other => throw new ArgumentException($"--device {other}: use cpu or cuda."),
};

using var context = XFormersContext.Create(preference);
var tutorial = new Tutorial(context, AnsiConsole.Console);
switch (command)
{
    case "info":
        tutorial.Info();
        break;
    case "run":
        if (Option("--section") is { } section)
            tutorial.Run(int.Parse(section));
        else
            tutorial.RunAll();
        break;
    default:
        AnsiConsole.MarkupLine($"[red]unknown command '{Markup.Escape(command)}'[/]: use run (default) or info.");
        return 2;
}
return 0;
