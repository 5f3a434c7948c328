using System.Text.RegularExpressions;

namespace DevFs.Policy.Tests;

/// <summary>Every YAML example in docs/policy.md must be a valid policy (or a valid fragment of one).</summary>
public class DocsTests
{
    [Test]
    public void EveryYamlExampleInTheDocsParses()
    {
        var doc = File.ReadAllText(Path.Combine(ShippedPolicyTests.RepoRoot(), "docs/policy.md"));
        var blocks = Regex.Matches(doc, "```yaml\n(.*?)```", RegexOptions.Singleline).Select(m => m.Groups[1].Value).ToList();
        Assert.That(blocks, Has.Count.GreaterThan(8));
        foreach (var block in blocks)
        {
            string text = block.StartsWith("version:", StringComparison.Ordinal) ? block
                : block.StartsWith("  - ", StringComparison.Ordinal) ? "version: 1\ndevices:\n" + block
                : "version: 1\n" + block;
            Assert.That(() => DevicePolicy.Parse(text, "docs"), Throws.Nothing, block);
        }
    }
}
