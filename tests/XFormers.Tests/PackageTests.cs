using System.IO;
using System.Text.RegularExpressions;

namespace XFormers.Tests;

/// <summary>Tests that drive the dotnet CLI; they share build outputs, so they run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DotnetCliCollection
{
    public const string Name = "dotnet CLI";
}

/// <summary>
/// `dotnet pack` gives one package whose consumer gets the attributes, the generator (an analyzer, with Fluid
/// beside it) and the runtime from a single PackageReference. A fresh project outside the solution, whose
/// Program.cs is the README's example, restores only that package (offline: the local feed plus the packages
/// this machine already restored), builds, and runs on the CPU accelerator.
/// </summary>
[Collection(DotnetCliCollection.Name)]
public class PackageTests
{
    [Fact]
    public void PackageAloneBuildsAndRunsTheReadmeExample()
    {
        string root = ConsumerProjectTests.RepositoryRoot();
        string work = Directory.CreateTempSubdirectory("xformers-package-").FullName;
        try
        {
            string feed = Path.Combine(work, "feed");
            var (packExit, packOutput) = ConsumerProjectTests.Dotnet(root, "pack", Path.Combine(root, "src", "XFormers.Runtime"), "-c", ConsumerProjectTests.Configuration, "-o", feed);
            packExit.ShouldBe(0, packOutput);
            var package = Directory.GetFiles(feed, "XFormers.*.nupkg").ShouldHaveSingleItem();
            string version = Path.GetFileNameWithoutExtension(package)["XFormers.".Length..];

            string app = Path.Combine(work, "app");
            Directory.CreateDirectory(app);
            string globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed}" />
                    <add key="restored" value="{globalPackages}" />
                  </packageSources>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(app, "App.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <RestorePackagesPath>{Path.Combine(work, "packages")}</RestorePackagesPath>
                    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="XFormers" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), ReadmeExample(root));

            var (runExit, runOutput) = ConsumerProjectTests.Dotnet(app, "run", "-c", "Release");
            runExit.ShouldBe(0, runOutput);
            runOutput.ShouldContain("O [2, 512, 8, 64], dQ [2, 512, 8, 64] on CPU accelerator");
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The README's first C# code block.</summary>
    private static string ReadmeExample(string root)
    {
        var readme = File.ReadAllText(Path.Combine(root, "README.md"));
        var match = Regex.Match(readme, "```csharp\\n(.*?)```", RegexOptions.Singleline);
        match.Success.ShouldBeTrue("README.md has no ```csharp block");
        return match.Groups[1].Value;
    }
}
