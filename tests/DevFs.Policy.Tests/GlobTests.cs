namespace DevFs.Policy.Tests;

public class GlobTests
{
    [TestCase("tty", "tty", true)]
    [TestCase("tty", "tty0", false)]
    [TestCase("tty", "ttyS0", false)]
    [TestCase("tty", "TTY", false)]
    [TestCase("tty*", "tty", true)]
    [TestCase("tty*", "ttyS0", true)]
    [TestCase("tty?", "tty0", true)]
    [TestCase("tty?", "tty63", false)]
    [TestCase("tty?", "tty", false)]
    [TestCase("loop[0-9]*", "loop0", true)]
    [TestCase("loop[0-9]*", "loop12", true)]
    [TestCase("loop[0-9]*", "loop0p1", true)]
    [TestCase("loop[0-9]*", "loop-control", false)]
    [TestCase("loop[0-9]*", "loop", false)]
    [TestCase("loop[0-9]", "loop12", false)]
    [TestCase("tty[!S]*", "tty0", true)]
    [TestCase("tty[!S]*", "ttyS0", false)]
    [TestCase("tty[^S]*", "ttyS0", false)]
    [TestCase("sd[a-c]", "sdb", true)]
    [TestCase("sd[a-c]", "sdd", false)]
    [TestCase("[]x]", "]", true)]
    [TestCase("[a-]", "-", true)]
    [TestCase("[!]]", "]", false)]
    [TestCase("a\\*b", "a*b", true)]
    [TestCase("a\\*b", "axb", false)]
    [TestCase("*", "null", true)]
    [TestCase("*", "net/tun", false)]
    [TestCase("*/*", "net/tun", true)]
    [TestCase("net/*", "net/tun", true)]
    [TestCase("net/*", "net", false)]
    [TestCase("input/*", "input/by-id/kbd", false)]
    [TestCase("input/**", "input/by-id/kbd", true)]
    [TestCase("input/**", "input/event3", true)]
    [TestCase("input/**", "input", false)]
    [TestCase("**", "null", true)]
    [TestCase("**", "bus/usb/001/002", true)]
    [TestCase("**/tun", "net/tun", true)]
    [TestCase("**/tun", "tun", true)]
    [TestCase("**/tun", "a/b/tun", true)]
    [TestCase("**/tun", "xtun", false)]
    [TestCase("bus/**/002", "bus/usb/001/002", true)]
    [TestCase("bus/**/002", "bus/002", true)]
    [TestCase("dri/card?", "dri/card0", true)]
    [TestCase("?", "/", false)]
    [TestCase("x**y", "xa/by", true)]
    public void Matches(string pattern, string name, bool expected)
    {
        Assert.That(Glob.Parse(pattern).IsMatch(name), Is.EqualTo(expected), $"'{pattern}' vs '{name}'");
    }

    [TestCase("", "empty")]
    [TestCase("loop[0-9", "no closing ']'")]
    [TestCase("[", "no closing ']'")]
    [TestCase("[]", "no closing ']'")]
    [TestCase("[z-a]", "runs backwards")]
    [TestCase("a\\", "lone '\\'")]
    [TestCase("***", "'***' is not a wildcard")]
    [TestCase("[a/b]", "cannot contain '/'")]
    public void InvalidPatterns(string pattern, string reason)
    {
        Assert.That(Glob.TryParse(pattern, out var glob, out var error), Is.False);
        Assert.That(glob, Is.Null);
        Assert.That(error, Does.Contain(reason));
        Assert.That(() => Glob.Parse(pattern), Throws.TypeOf<FormatException>());
    }

    [Test]
    public void LiteralPatternsAreRecognised()
    {
        Assert.That(Glob.Parse("net/tun").IsLiteral, Is.True);
        Assert.That(Glob.Parse("net/t\\*n").IsLiteral, Is.True);
        Assert.That(Glob.Parse("tty?").IsLiteral, Is.False);
    }

    [Test]
    public void ManyStarsDoNotBacktrackExponentially()
    {
        var glob = Glob.Parse("*a*a*a*a*a*a*a*a*a*a*a*a*b");
        var name = new string('a', 200);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.That(glob.IsMatch(name), Is.False);
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)));
    }
}
