using System.IO;
using System.Text;

namespace XFormers.Tests;

/// <summary>
/// The stock variants are a product (<see cref="StockVariants.Table"/>); their <c>[Attention]</c> declarations, which
/// the generator reads, are written from it into <c>src/XFormers.Runtime/StockVariants.Declarations.cs</c>.
/// </summary>
public class StockVariantTableTests
{
    private const string WriteVariable = "XFORMERS_WRITE_STOCK_VARIANTS";

    [Fact]
    public void Declarations_are_written_from_the_table()
    {
        string path = Path.Combine(ConsumerProjectTests.RepositoryRoot(), "src", "XFormers.Runtime", "StockVariants.Declarations.cs");
        string expected = Declarations();
        string actual = File.Exists(path) ? File.ReadAllText(path).ReplaceLineEndings("\n") : "";
        if (actual != expected && Environment.GetEnvironmentVariable(WriteVariable) == "1")
        {
            File.WriteAllText(path, expected);
            return;
        }
        actual.ShouldBe(expected, $"StockVariants.Declarations.cs is not what the table in StockVariants.cs makes; run this test with {WriteVariable}=1 to write it, then build again.");
    }

    [Fact]
    public void Registry_holds_the_table_and_nothing_else()
    {
        var registered = AttentionRegistry.Variants.Select(k => k.Variant).Where(v => v.Name.StartsWith("XFormers.StockVariants.", StringComparison.Ordinal)).ToArray();
        registered.Select(v => v.Name["XFormers.StockVariants.".Length..]).ShouldBe(StockVariants.All().Select(v => v.Name), ignoreOrder: true);
        foreach (var v in registered)
        {
            var row = StockVariants.All().Single(s => "XFormers.StockVariants." + s.Name == v.Name);
            (v.Mask, v.Bias, v.DType, v.HeadDim, v.BiasGradient, v.Dropout).ShouldBe((row.Mask, row.Bias, row.DType, row.HeadDim, row.BiasGradient, row.Dropout), v.Name);
        }
    }

    /// <summary>The declarations file, one attributed method per variant, a heading per row and dtype.</summary>
    private static string Declarations()
    {
        var text = new StringBuilder();
        text.Append("using XFormers.Dsl;\n\nnamespace XFormers;\n\n");
        text.Append("// Written from the table in StockVariants.cs by StockVariantTableTests: change the table, not this file.\n");
        text.Append("internal static partial class StockVariants\n{\n");
        bool first = true;
        foreach (var product in StockVariants.Table)
        {
            foreach (var dtype in product.DTypes)
            {
                if (!first)
                    text.Append('\n');
                first = false;
                text.Append($"    // {dtype}: {string.Join(", ", product.Masks)} × {string.Join(", ", product.Biases)} × head dim {string.Join(", ", product.HeadDims)}{(product.Dropout ? ", with dropout" : "")}\n");
                bool firstOfGroup = true;
                foreach (var v in product.Variants().Where(v => v.DType == dtype))
                {
                    if (!firstOfGroup)
                        text.Append('\n');
                    firstOfGroup = false;
                    string gradient = v.BiasGradient ? "BiasGradient = true, " : "";
                    string dropout = v.Dropout ? ", Dropout = true" : "";
                    text.Append($"    [Attention(Mask = MaskKind.{v.Mask}, Bias = BiasKind.{v.Bias}, {gradient}HeadDim = {v.HeadDim}, DType = DType.{v.DType}{dropout})]\n");
                    text.Append($"    internal static partial AttentionKernel {v.Name}();\n");
                }
            }
        }
        text.Append("}\n");
        return text.ToString();
    }
}
