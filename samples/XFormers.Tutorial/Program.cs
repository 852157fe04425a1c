using System.CommandLine;
using Spectre.Console;
using XFormers;
using XFormers.Samples;
using XFormers.Tutorial;

// XFormers for .NET, the xFormers tutorial section by section.
//   dotnet run --project samples/XFormers.Tutorial              all sections
//   dotnet run --project samples/XFormers.Tutorial -- info      devices and every registered variant
//   ... -- --section 4 --device cpu                             one section, forced onto the CPU
var device = Cli.DeviceOption();
device.Recursive = true;
var section = Cli.Int("--section", $"run one section (1..{Tutorial.SectionCount}) instead of all", min: 1, max: Tutorial.SectionCount);

var root = new RootCommand("The xFormers tutorial, section by section, on the GPU when there is one, else on the CPU.") { device, section };
root.SetAction(RunTutorial);

var info = new Command("info", "the devices ILGPU finds and every registered attention variant (like python -m xformers.info)");
info.SetAction(parsed =>
{
    using var context = XFormersContext.Create(Cli.Device(parsed.GetValue(device)));
    new Tutorial(context, AnsiConsole.Console).Info();
    return 0;
});
root.Add(info);

// `run` is the default; the name still works.
var run = new Command("run", "run the tutorial (the default)") { section };
run.SetAction(RunTutorial);
root.Add(run);

return Cli.Run(root, args);

int RunTutorial(ParseResult parsed)
{
    using var context = XFormersContext.Create(Cli.Device(parsed.GetValue(device)));
    var tutorial = new Tutorial(context, AnsiConsole.Console);
    if (parsed.GetValue(section) is int n)
        tutorial.Run(n);
    else
        tutorial.RunAll();
    return 0;
}
