using Spectre.Console;

namespace XFormers.Tutorial;

public sealed partial class Tutorial
{
    // 2. Memory and speed against naive attention: needs the accelerator's naive reference (GPU harness branch).
    private void MemoryAndSpeed()
    {
        Heading(2, "Memory and speed vs naive attention");
        console.MarkupLine("[grey]pending: arrives with the naive accelerator reference[/]");
    }

    // 7. TinyGPT training: arrives with the trainer.
    private void Training()
    {
        Heading(7, "Training TinyGPT");
        console.MarkupLine("[grey]pending: arrives with the trainer[/]");
    }
}
