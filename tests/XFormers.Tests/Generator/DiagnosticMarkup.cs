using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace XFormers.Tests.Generator;

/// <summary>
/// Source with the expected diagnostics marked where they belong, as Roslyn's analyzer tests write them:
/// <c>[Attention({|XFA0004:HeadDim = 50|})]</c> expects XFA0004 on exactly the text <c>HeadDim = 50</c>.
/// </summary>
internal sealed record DiagnosticMarkup(string Source, IReadOnlyList<string> Expected)
{
    private const string Open = "{|";
    private const string Close = "|}";

    public static DiagnosticMarkup Parse(string markup)
    {
        var source = new System.Text.StringBuilder();
        var spans = new List<(string Id, TextSpan Span)>();
        int at = 0;
        while (true)
        {
            int open = markup.IndexOf(Open, at, StringComparison.Ordinal);
            if (open < 0)
                break;
            int colon = markup.IndexOf(':', open);
            int close = markup.IndexOf(Close, colon, StringComparison.Ordinal);
            source.Append(markup, at, open - at);
            var id = markup.Substring(open + Open.Length, colon - open - Open.Length);
            var text = markup.Substring(colon + 1, close - colon - 1);
            spans.Add((id, new TextSpan(source.Length, text.Length)));
            source.Append(text);
            at = close + Close.Length;
        }
        source.Append(markup, at, markup.Length - at);

        var lines = SourceText.From(source.ToString()).Lines;
        var expected = spans.Select(s => Describe(s.Id, GeneratorHarness.DeclarationsPath, lines.GetLinePositionSpan(s.Span))).ToList();
        return new DiagnosticMarkup(source.ToString(), expected);
    }

    /// <summary>
    /// <c>XFA0004 Declarations.cs(7,16)-(7,28)</c>: the ID, the file and the 1-based line/column span, so a failure
    /// shows where the diagnostic landed.
    /// </summary>
    public static string Describe(Diagnostic diagnostic)
    {
        var span = diagnostic.Location.GetLineSpan();
        return Describe(diagnostic.Id, span.Path, span.Span);
    }

    private static string Describe(string id, string path, LinePositionSpan span) =>
        $"{id} {path}({span.Start.Line + 1},{span.Start.Character + 1})-({span.End.Line + 1},{span.End.Character + 1})";
}
