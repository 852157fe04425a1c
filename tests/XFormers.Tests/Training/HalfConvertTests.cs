using XFormers.Kernels;
using XFormers.Training;

namespace XFormers.Tests.Training;

public sealed class HalfConvertTests
{
    [Fact]
    public void Rounds_to_nearest_even_like_System_Half_over_the_whole_range()
    {
        var random = new Random(5);
        var samples = new List<float> { 0f, -0f, 65504f, 65519.99f, 65520f, 1e9f, float.PositiveInfinity, float.NegativeInfinity, 5.9604645e-8f, 2.9802322e-8f, 2.98023259e-8f, 6.1035156e-5f, 6.1032e-5f, 1.0004883f, 1.0007324f };
        for (int i = 0; i < 200_000; i++)
            samples.Add(BitConverter.Int32BitsToSingle(random.Next()) * (random.Next(2) == 0 ? 1 : -1));
        foreach (var value in samples)
        {
            if (float.IsNaN(value))
                continue;
            var expected = BitConverter.HalfToUInt16Bits((System.Half)value);
            ElementMath.RoundToHalfBits(value).ShouldBe(expected, $"{value:R}");
            float back = (float)default(HalfConvert).FromFloat(value);
            back.ShouldBe((float)(System.Half)value, $"{value:R}");
        }
        float.IsNaN((float)default(HalfConvert).FromFloat(float.NaN)).ShouldBeTrue();
    }
}
