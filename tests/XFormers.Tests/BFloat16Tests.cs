namespace XFormers.Tests;

public class BFloat16Tests
{
    /// <summary>The bfloat16 nearest to x, found by comparing the two candidates in double; ties go to the even one.</summary>
    private static ushort NearestByDistance(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        ushort down = (ushort)(bits >> 16);
        ushort up = (ushort)(down + 1);
        double dDown = Math.Abs((double)BitConverter.UInt32BitsToSingle((uint)down << 16) - x);
        float upValue = BitConverter.UInt32BitsToSingle((uint)up << 16);
        double dUp = Math.Abs((double)upValue - x);
        if ((bits & 0xFFFF) == 0)
            return down;
        if (float.IsInfinity(upValue) && !float.IsInfinity(x))
        {
            // Past the largest finite bfloat16: IEEE rounds to infinity once x reaches the midpoint.
            double max = Math.Abs((double)BitConverter.UInt32BitsToSingle((uint)down << 16));
            double midpoint = max + Math.Pow(2, Math.ILogB(max) - 8);
            return Math.Abs(x) >= midpoint ? up : down;
        }
        if (dDown < dUp)
            return down;
        if (dUp < dDown)
            return up;
        return (down & 1) == 0 ? down : up;
    }

    [Fact]
    public void RoundsToNearestEvenOnRandomBitPatterns()
    {
        var random = new Random(42);
        for (int n = 0; n < 200_000; n++)
        {
            float x = BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32));
            if (float.IsNaN(x))
                continue;
            BFloat16.FromFloat(x).RawValue.ShouldBe(NearestByDistance(x), $"x = {x:R} (0x{BitConverter.SingleToUInt32Bits(x):X8})");
        }
    }

    [Theory]
    [InlineData(1.0f, (ushort)0x3F80)]
    [InlineData(-2.0f, (ushort)0xC000)]
    [InlineData(1.00390625f, (ushort)0x3F80)] // 1 + 2^-8: a tie, rounds to the even 1.0
    [InlineData(1.01171875f, (ushort)0x3F82)] // 1 + 3·2^-8: a tie, rounds up to the even 1 + 2^-6
    [InlineData(float.PositiveInfinity, (ushort)0x7F80)]
    [InlineData(float.MaxValue, (ushort)0x7F80)] // rounds past the largest bfloat16 to infinity
    public void KnownValues(float x, ushort expected) => BFloat16.FromFloat(x).RawValue.ShouldBe(expected);

    [Fact]
    public void NanStaysNanAndWideningIsExact()
    {
        float.IsNaN(BFloat16.FromFloat(float.NaN).ToFloat()).ShouldBeTrue();
        for (int raw = 0; raw < 0x10000; raw += 7)
        {
            var b = new BFloat16((ushort)raw);
            float f = b.ToFloat();
            BitConverter.SingleToUInt32Bits(f).ShouldBe((uint)raw << 16);
            if (!float.IsNaN(f))
                BFloat16.FromFloat(f).ShouldBe(b);
        }
    }
}

public class HalfRoundingTests
{
    /// <summary>Host narrowing to ILGPU.Half rounds to nearest even, like System.Half (ILGPU.Half's own cast truncates).</summary>
    [Fact]
    public void FromFloatRoundsLikeSystemHalf()
    {
        var random = new Random(7);
        for (int n = 0; n < 200_000; n++)
        {
            float x = n % 2 == 0
                ? BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32))
                : (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-30, 20)));
            if (float.IsNaN(x))
                continue;
            ushort expected = BitConverter.HalfToUInt16Bits((System.Half)x);
            var actual = ElementType.FromFloat<Half>(x);
            System.Runtime.CompilerServices.Unsafe.As<Half, ushort>(ref actual).ShouldBe(expected, $"x = {x:R}");
        }
    }
}
