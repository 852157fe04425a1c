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
/// `dotnet pack` gives one package (and its symbols package) whose consumer gets the attributes, the generator (an
/// analyzer, with Scriban beside it) and the runtime from a single PackageReference. A fresh console project outside
/// the solution, with the default implicit usings and the README's example as Program.cs (System.Half, a
/// [B, H, M, K] buffer passed as a view, forward and backward, a safetensors round trip), restores only that
/// package (offline: the local feed plus the packages this machine already restored), builds, and runs on the CPU.
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
            var package = Directory.GetFiles(feed, "*.nupkg").ShouldHaveSingleItem();
            string version = Path.GetFileNameWithoutExtension(package)["XFormers.".Length..];
            File.Exists(Path.ChangeExtension(package, ".snupkg")).ShouldBeTrue("a symbols package beside the package");
            CheckPackageMetadata(package);

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
                    <ImplicitUsings>enable</ImplicitUsings>
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
            runOutput.ShouldContain("read back bit for bit");
            File.Exists(Path.Combine(app, "attention.safetensors")).ShouldBeTrue();
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Only the runtime makes a package: samples, tests, the bench, the DSL and the generator do not.</summary>
    [Fact]
    public void Only_the_runtime_is_packable()
    {
        string root = ConsumerProjectTests.RepositoryRoot();
        var projects = Regex.Matches(File.ReadAllText(Path.Combine(root, "XFormers.slnx")), "Path=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToArray();
        projects.Length.ShouldBeGreaterThanOrEqualTo(7);
        var packable = projects.Where(project =>
        {
            var (exit, output) = ConsumerProjectTests.Dotnet(root, "msbuild", Path.Combine(root, project), "-getProperty:IsPackable");
            exit.ShouldBe(0, output);
            return output.Trim() == "true";
        }).ToArray();
        packable.ShouldBe(new[] { "src/XFormers.Runtime/XFormers.Runtime.csproj" });
    }

    /// <summary>The package's repository link, and a readme whose links work on a package page and whose words a user knows.</summary>
    private static void CheckPackageMetadata(string package)
    {
        using var zip = System.IO.Compression.ZipFile.OpenRead(package);
        string Read(string name)
        {
            using var reader = new StreamReader(zip.GetEntry(name).ShouldNotBeNull(name).Open());
            return reader.ReadToEnd();
        }
        var nuspec = Read("XFormers.nuspec");
        nuspec.ShouldContain("<repository type=\"git\" url=\"https://");
        nuspec.ShouldContain("<readme>README.md</readme>");
        var readme = Read("README.md");
        readme.ShouldContain("MemoryEfficientAttention");
        Regex.Matches(readme, @"\]\(([^)]*)\)").Select(m => m.Groups[1].Value).ShouldAllBe(link => link.StartsWith("https://"));
        foreach (var jargon in new[] { "design card", "package registry", "the seed's", "{{" })
            readme.ShouldNotContain(jargon, Case.Insensitive);
        zip.Entries.Where(e => e.FullName.StartsWith("lib/")).Select(e => e.FullName).OrderBy(n => n, StringComparer.Ordinal).ShouldBe(
            new[] { "lib/net10.0/XFormers.Dsl.dll", "lib/net10.0/XFormers.Dsl.xml", "lib/net10.0/XFormers.Runtime.dll", "lib/net10.0/XFormers.Runtime.xml" },
            ignoreOrder: false, "the runtime and the attributes; the trainer is a project of its own");
        Read("lib/net10.0/XFormers.Runtime.xml").ShouldNotContain("XFormers.Training");
        zip.GetEntry("analyzers/dotnet/cs/XFormers.Generators.dll").ShouldNotBeNull();
        zip.Entries.Where(e => e.FullName.StartsWith("analyzers/")).Select(e => e.FullName).OrderBy(n => n, StringComparer.Ordinal).ShouldBe(
            new[] { "analyzers/dotnet/cs/Scriban.Signed.dll", "analyzers/dotnet/cs/XFormers.Generators.dll" }, ignoreOrder: false,
            "the generator and the template engine it loads, nothing else");
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
