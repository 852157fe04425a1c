using System.Collections.Generic;
using System.Linq;
using System.Text;

// The runtime compiles this file too (for its decode kernel), under its own namespace so that an assembly that sees both
// the generator's and the runtime's internals (the tests) finds one PtxWriter in each namespace.
#if XFORMERS_RUNTIME
namespace XFormers.Hopper
#else
namespace XFormers.Generators.Hopper
#endif
{
    /// <summary>A PTX register (or a register array's element): its name as PTX spells it.</summary>
    internal readonly struct Reg
    {
        public Reg(string name) => Name = name;

        public string Name { get; }

        public override string ToString() => Name;
    }

    /// <summary>
    /// A run of registers declared together (<c>.reg .f32 %s&lt;64&gt;;</c>): a fragment, a row's values, a packed operand.
    /// </summary>
    internal sealed class RegArray
    {
        public RegArray(string name, int count)
        {
            Name = name;
            Count = count;
        }

        public string Name { get; }
        public int Count { get; }

        public Reg this[int index] => new("%" + Name + index);

        /// <summary>The registers <paramref name="first"/> … first + count − 1 as a PTX vector operand: <c>{%s0, %s1, …}</c>.</summary>
        public string List(int first, int count) =>
            "{" + string.Join(", ", Enumerable.Range(first, count).Select(i => this[i].Name)) + "}";

        public string List() => List(0, Count);
    }

    /// <summary>
    /// Writes one PTX module: declarations are collected apart from the body so that a kernel's code can ask for a register
    /// where it needs one; the body is indented by structure, every label is unique, and instructions are one call each.
    /// </summary>
    internal sealed class PtxWriter
    {
        private readonly StringBuilder declarations = new();
        private readonly StringBuilder body = new();
        private readonly HashSet<string> declared = new();
        private int labels;

        /// <summary>A scalar register of a PTX type (<c>b32</c>, <c>u32</c>, <c>s32</c>, <c>f32</c>, <c>b64</c>, <c>u64</c>, <c>pred</c>).</summary>
        public Reg Scalar(string type, string name)
        {
            if (declared.Add(name))
                declarations.Append("    .reg .").Append(type).Append(" %").Append(name).Append(";\n");
            return new Reg("%" + name);
        }

        public Reg U32(string name) => Scalar("u32", name);
        public Reg S32(string name) => Scalar("s32", name);
        public Reg B32(string name) => Scalar("b32", name);
        public Reg F32(string name) => Scalar("f32", name);
        public Reg U64(string name) => Scalar("u64", name);
        public Reg B64(string name) => Scalar("b64", name);
        public Reg Pred(string name) => Scalar("pred", name);

        private int temporaries;

        /// <summary>A fresh register for one short-lived value (an address, a converted index).</summary>
        public Reg Temp(string type) => Scalar(type, "tmp_" + type + "_" + temporaries++);

        /// <summary><paramref name="count"/> registers <c>%name0</c> … of one type.</summary>
        public RegArray Array(string type, string name, int count)
        {
            if (declared.Add(name))
                declarations.Append("    .reg .").Append(type).Append(" %").Append(name).Append('<').Append(count).Append(">;\n");
            return new RegArray(name, count);
        }

        /// <summary>One instruction: <c>opcode a, b, c;</c>.</summary>
        public void Op(string opcode, params object[] operands) =>
            Line(operands.Length == 0 ? opcode + ";" : opcode + " " + string.Join(", ", operands) + ";");

        /// <summary>One instruction under a guard predicate: <c>@p opcode …;</c> (<c>@!p</c> when <paramref name="negate"/>).</summary>
        public void OpIf(Reg guard, bool negate, string opcode, params object[] operands) =>
            Line((negate ? "@!" : "@") + guard + " " + opcode + (operands.Length == 0 ? "" : " " + string.Join(", ", operands)) + ";");

        public void Line(string text) => body.Append("    ").Append(text).Append('\n');

        /// <summary>A comment line; ptxas takes ASCII only, so the few symbols the kernels' comments use are spelled out.</summary>
        public void Comment(string text) => Line("// " + Ascii(text));

        /// <summary>Text as ASCII: ᵀ → ^T, · → *, − → -, → → ->, other non-ASCII characters → ?.</summary>
        public static string Ascii(string text)
        {
            var result = new StringBuilder(text.Length);
            foreach (char c in text)
            {
                switch (c)
                {
                    case '\u1D40': result.Append("^T"); break;
                    case '\u00B7': result.Append('*'); break;
                    case '\u2212': result.Append('-'); break;
                    case '\u2192': result.Append("->"); break;
                    case '\u2013': case '\u2014': result.Append('-'); break;
                    default: result.Append(c < 128 ? c : '?'); break;
                }
            }
            return result.ToString();
        }

        public void Blank() => body.Append('\n');

        /// <summary>A label unique in the module, named for what follows it.</summary>
        public string NewLabel(string stem) => "$L_" + stem + "_" + labels++;

        public void Label(string label) => body.Append(label).Append(":\n");

        public void Branch(string label) => Op("bra.uni", label);

        public void BranchIf(Reg guard, bool negate, string label) => OpIf(guard, negate, "bra", label);

        /// <summary>The kernel's body: its register declarations, then its code.</summary>
        public string Body() => declarations.ToString() + "\n" + body.ToString();

        /// <summary>PTX float literal (<c>0fXXXXXXXX</c>): exact, whatever the culture.</summary>
        public static string Float(float value)
        {
            var bits = System.BitConverter.ToInt32(System.BitConverter.GetBytes(value), 0);
            return "0f" + bits.ToString("X8");
        }
    }
}
