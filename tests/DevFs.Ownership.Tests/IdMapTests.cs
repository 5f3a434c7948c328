namespace DevFs.Ownership.Tests;

public class IdMapTests
{
    // As /proc/PID/uid_map prints it: right-aligned columns, a newline at the end.
    private const string RealMap =
        "         0     100000      65536\n" +
        "     65536    1000000          1\n" +
        "   1000000    2000000       1000\n";

    [Test]
    public void ParsesEveryRangeOfARealMap()
    {
        var map = IdMap.Parse(RealMap);
        Assert.That(map.Ranges, Is.EqualTo(new[]
        {
            new IdRange(0, 100000, 65536),
            new IdRange(65536, 1000000, 1),
            new IdRange(1000000, 2000000, 1000),
        }));
    }

    [TestCase(0u, 100000u)]
    [TestCase(1u, 100001u)]
    [TestCase(65535u, 165535u)]        // last id of the first range
    [TestCase(65536u, 1000000u)]       // the one-id range
    [TestCase(1000000u, 2000000u)]     // first id of the last range
    [TestCase(1000999u, 2000999u)]     // last id of the last range
    public void MapsIdsInsideRanges(uint inside, uint host) =>
        Assert.That(IdMap.Parse(RealMap).ToHost(inside), Is.EqualTo(host));

    [TestCase(65537u)]                 // just past the one-id range
    [TestCase(999999u)]                // just before the last range
    [TestCase(1001000u)]               // just past the last range
    [TestCase(uint.MaxValue)]
    public void IdsOutsideEveryRangeHaveNoHostId(uint inside) =>
        Assert.That(IdMap.Parse(RealMap).ToHost(inside), Is.Null);

    [Test]
    public void RangeReachingTheTopOfTheIdSpaceDoesNotOverflow()
    {
        var map = IdMap.Parse("4294967294 10 1\n");
        Assert.That(map.ToHost(4294967294), Is.EqualTo(10u));
        Assert.That(map.ToHost(uint.MaxValue), Is.Null);
        Assert.That(map.ToHost(0), Is.Null);
    }

    [Test]
    public void IdentityMapsEveryIdToItself()
    {
        Assert.That(IdMap.Identity.ToHost(0), Is.EqualTo(0u));
        Assert.That(IdMap.Identity.ToHost(100000), Is.EqualTo(100000u));
        Assert.That(IdMap.Identity.ToHost(uint.MaxValue - 1), Is.EqualTo(uint.MaxValue - 1));
    }

    [Test]
    public void EmptyTextIsAnEmptyMap()
    {
        var map = IdMap.Parse("");
        Assert.That(map.Ranges, Is.Empty);
        Assert.That(map.ToHost(0), Is.Null);
    }

    [TestCase("0 100000\n", 1, "0 100000")]                          // two fields
    [TestCase("0 100000 65536 7\n", 1, "0 100000 65536 7")]          // four fields
    [TestCase("0 100000 65536\nzero 1 2\n", 2, "zero 1 2")]          // not a number
    [TestCase("0 100000 65536\n\n1 -5 2\n", 3, "1 -5 2")]            // negative
    [TestCase("0 100000 0\n", 1, "0 100000 0")]                      // empty range
    [TestCase("0 100000 4294967296\n", 1, "0 100000 4294967296")]    // beyond 32 bits
    public void MalformedLinesAreRefusedByLine(string text, int line, string shown)
    {
        var e = Assert.Throws<FormatException>(() => IdMap.Parse(text));
        Assert.That(e!.Message, Does.Contain($"line {line}"));
        Assert.That(e.Message, Does.Contain($"'{shown}'"));
    }
}
