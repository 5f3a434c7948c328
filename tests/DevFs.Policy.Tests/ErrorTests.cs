namespace DevFs.Policy.Tests;

public class ErrorTests
{
    private const string Src = "bad.yaml";

    private static PolicyException Fail(string yaml) =>
        Assert.Throws<PolicyException>(() => DevicePolicy.Parse(yaml, Src))!;

    /// <summary>Asserts that parsing gives exactly one error, at line:column, whose message contains the phrase.</summary>
    private static void OneError(string yaml, int line, int column, string phrase)
    {
        var e = Fail(yaml);
        Assert.That(e.Errors, Has.Count.EqualTo(1), e.Message);
        Assert.That(e.Errors[0].ToString(), Does.StartWith($"{Src}:{line}:{column}: "), e.Message);
        Assert.That(e.Errors[0].Message, Does.Contain(phrase));
        Assert.That(e.Message, Is.EqualTo(e.Errors[0].ToString()));
    }

    [TestCase("")]
    [TestCase("   \n")]
    [TestCase("# only a comment\n")]
    [TestCase("---\n")]
    [TestCase("~\n")]
    public void EmptyFile(string yaml) => OneError(yaml, 1, 1, "the policy is empty");

    [TestCase("- a\n- b\n", 1, 1, "found a list")]
    [TestCase("hello\n", 1, 1, "found a single value")]
    [TestCase("\n\n  [1, 2]\n", 3, 3, "must be a mapping")]
    public void WrongTopLevelType(string yaml, int line, int column, string phrase) => OneError(yaml, line, column, phrase);

    [Test]
    public void MissingVersion() => OneError("devices: []\n", 1, 1, "missing 'version: 1'");

    [Test]
    public void WrongVersion() => OneError("version: 2\n", 1, 10, "version must be 1, not '2'");

    [Test]
    public void TwoDocuments() => OneError("version: 1\n---\nversion: 1\n", 2, 1, "one YAML document");

    [Test]
    public void UnclosedFlowMapping() =>
        OneError("version: 1\ndevices:\n  - match: { devname: \"null\"\n    mode: \"0666\"\n", 3, 12, "YAML syntax error: this '{' is not closed");

    [Test]
    public void UnclosedFlowSequence() =>
        OneError("version: 1\ndirectories: [ { path: pts }\nsymlinks: []\n", 2, 14, "YAML syntax error: this '[' is not closed");

    [Test]
    public void UnclosedQuote() => OneError("version: 1\nsymlinks:\n  - { path: 'fd, target: x }\n", 3, 13, "YAML syntax error");

    [Test]
    public void YamlMessagesLoseYamlDotNetMarks()
    {
        var e = Fail("version: 1\ndevices: a: b\n");
        Assert.That(e.Errors.Single().Message, Does.StartWith("YAML syntax error: "));
        Assert.That(e.Errors.Single().Message, Does.Not.Contain("Idx:"));
        Assert.That(e.Errors.Single().Line, Is.EqualTo(2));
    }

    [Test]
    public void YamlSyntaxErrorBadIndentation() =>
        OneError("version: 1\ndevices:\n  - match: { devname: x }\n   mode: \"0666\"\n", 4, 4, "YAML syntax error");

    [Test]
    public void TabIndentation() => OneError("version: 1\ndevices:\n\t- match: {devname: x}\n", 3, 1, "YAML syntax error: a tab is used for indentation");

    [Test]
    public void DuplicateTopLevelKey() =>
        OneError("version: 1\ndevices: []\nversion: 1\n", 3, 1, "duplicate key 'version' in the policy's top level (first at line 1)");

    [Test]
    public void DuplicateKeyInRule() =>
        OneError("version: 1\ndevices:\n  - match: { devname: x }\n    mode: \"0600\"\n    mode: \"0666\"\n", 5, 5, "duplicate key 'mode' in device rule (first at line 4)");

    [Test]
    public void DuplicateKeyInMatch() =>
        OneError("version: 1\ndevices:\n  - match: { devname: x, devname: y }\n", 3, 26, "duplicate key 'devname' in match");

    [Test]
    public void UnknownKeyInRule() =>
        OneError("version: 1\ndevices:\n  - match: { devname: x }\n    acess: proxy\n", 4, 5,
            "unknown key 'acess' in device rule; expected one of: match, access, mode, uid, gid, global, path, ioctls (did you mean 'access'?)");

    [Test]
    public void UnknownTopLevelKey() =>
        OneError("version: 1\ndevice:\n  - match: { devname: x }\n", 2, 1,
            "unknown key 'device' in the policy's top level; expected one of: version, defaults, directories, symlinks, devices, containers (did you mean 'devices'?)");

    [Test]
    public void UnknownMatchKey() =>
        OneError("version: 1\ndevices:\n  - match: { name: x }\n", 3, 14, "unknown key 'name' in match; expected one of: devname, subsystem, kind, major, minor, devtype, attributes");

    [Test]
    public void UnknownDefaultsKey() =>
        OneError("version: 1\ndefaults:\n  global: true\n", 3, 3, "unknown key 'global' in defaults; expected one of: access, mode, uid, gid");

    [Test]
    public void UnknownContainerKey() =>
        OneError("version: 1\ncontainers:\n  web:\n    rules: []\n", 4, 5, "unknown key 'rules' in container 'web'; expected one of: devices");

    [Test]
    public void BadAccess() =>
        OneError("version: 1\ndevices:\n  - match: { devname: x }\n    access: fast\n", 4, 13, "access must be proxy, node or auto, not 'fast'");

    [TestCase("\"0999\"", "mode '0999' is not an octal permission")]
    [TestCase("0999", "mode '0999' is not an octal permission")]
    [TestCase("\"17777\"", "mode '17777' is not an octal permission")]
    [TestCase("rw-rw-rw-", "mode 'rw-rw-rw-' is not an octal permission")]
    [TestCase("\"\"", "mode '' is not an octal permission")]
    [TestCase("[6, 6, 6]", "mode must be octal permission bits")]
    public void BadMode(string mode, string phrase) =>
        OneError($"version: 1\ndevices:\n  - match: {{ devname: x }}\n    mode: {mode}\n", 4, 11, phrase);

    [Test]
    public void EmptyValue() =>
        OneError("version: 1\ndevices:\n  - match: { devname: x }\n    mode:\n    uid: 0\n", 4, 10, "mode has no value");

    [TestCase("uid: root", 4, 10, "uid must be a number from 0 to 4294967294, not 'root'")]
    [TestCase("gid: -1", 4, 10, "gid must be a number")]
    [TestCase("uid: 4294967295", 4, 10, "uid must be a number")]
    [TestCase("global: yes", 4, 13, "global must be true or false, not 'yes'")]
    public void BadSettings(string setting, int line, int column, string phrase) =>
        OneError($"version: 1\ndevices:\n  - match: {{ devname: x }}\n    {setting}\n", line, column, phrase);

    [TestCase("devname: \"loop[0-9\"", 3, 23, "devname pattern 'loop[0-9' is invalid: the character class starting at position 5 has no closing ']'")]
    [TestCase("devname: \"[z-a]\"", 3, 23, "runs backwards")]
    [TestCase("devname: \"***\"", 3, 23, "'***' is not a wildcard")]
    [TestCase("attributes: { idVendor: \"[\" }", 3, 38, "attribute idVendor pattern '[' is invalid")]
    public void BadGlob(string criterion, int line, int column, string phrase) =>
        OneError($"version: 1\ndevices:\n  - match: {{ {criterion} }}\n", line, column, phrase);

    [TestCase("major: \"9-3\"", 3, 21, "major range '9-3' ends before it starts; write it as 3-9")]
    [TestCase("minor: \"100-2\"", 3, 21, "minor range '100-2' ends before it starts")]
    [TestCase("major: 4096", 3, 21, "major '4096' is out of range; major numbers go from 0 to 4095")]
    [TestCase("major: \"1-5000\"", 3, 21, "major '1-5000' is out of range")]
    [TestCase("minor: 1048576", 3, 21, "minor '1048576' is out of range; minor numbers go from 0 to 1048575")]
    [TestCase("major: [1, 99999]", 3, 25, "major '99999' is out of range")]
    [TestCase("major: seven", 3, 21, "major 'seven' is not a number or range")]
    [TestCase("major: -1", 3, 21, "major '-1' is not a number or range")]
    [TestCase("major: 0x07", 3, 21, "major '0x07' is not a number or range")]
    [TestCase("major: []", 3, 21, "major is an empty list")]
    [TestCase("major: { a: 1 }", 3, 21, "major must be a number, a range")]
    [TestCase("kind: pipe", 3, 20, "kind must be char or block, not 'pipe'")]
    [TestCase("subsystem: [block, [x]]", 3, 33, "subsystem must be a subsystem name")]
    [TestCase("attributes: {}", 3, 26, "attributes is empty")]
    [TestCase("attributes: [idVendor]", 3, 26, "attributes must be a mapping")]
    public void BadCriteria(string criterion, int line, int column, string phrase) =>
        OneError($"version: 1\ndevices:\n  - match: {{ {criterion} }}\n", line, column, phrase);

    [Test]
    public void RuleWithoutMatch() =>
        OneError("version: 1\ndevices:\n  - mode: \"0666\"\n    global: true\n", 3, 5, "device rule has no match");

    [TestCase("match: {}", 3, 12)]
    [TestCase("match:", 3, 11)]
    public void EmptyMatch(string match, int line, int column) =>
        OneError($"version: 1\ndevices:\n  - {match}\n    mode: \"0666\"\n", line, column, "match is empty and would match every device");

    [Test]
    public void ExplicitMatchEverythingIsAllowed()
    {
        var policy = DevicePolicy.Parse("version: 1\ndevices:\n  - match: { devname: \"**\" }\n", Src);
        Assert.That(policy.Devices, Has.Count.EqualTo(1));
    }

    [TestCase("- hello", 3, 5, "a device rule must be a mapping")]
    [TestCase("- [1]", 3, 5, "a device rule must be a mapping")]
    public void RuleNotAMapping(string item, int line, int column, string phrase) =>
        OneError($"version: 1\ndevices:\n  {item}\n", line, column, phrase);

    [Test]
    public void DevicesNotAList() =>
        OneError("version: 1\ndevices:\n  match: { devname: x }\n", 3, 3, "devices must be a list of device rules");

    [TestCase("../etc/passwd", "contains '..'")]
    [TestCase("net/../../x", "contains '..'")]
    [TestCase("./null", "contains '.'")]
    [TestCase("/dev/null", "'/dev/null' is absolute; write it relative to /dev, e.g. 'null'")]
    [TestCase("/null", "is absolute")]
    [TestCase("net//tun", "empty segment")]
    [TestCase("net/", "empty segment")]
    [TestCase("\"\"", "path is empty")]
    [TestCase("\"{bogus}\"", "unknown placeholder '{bogus}'")]
    public void BadDevicePath(string path, string phrase) =>
        OneError($"version: 1\ndevices:\n  - match: {{ devname: x }}\n    path: {path}\n", 4, 11, phrase);

    [TestCase("directories:\n  - { path: ../shm }\n", 3, 13, "contains '..'")]
    [TestCase("directories:\n  - { path: /dev/shm, mode: \"1777\" }\n", 3, 13, "is absolute")]
    [TestCase("directories:\n  - { mode: \"1777\" }\n", 3, 5, "directory entry has no path")]
    [TestCase("directories:\n  - { path: shm, mode: \"8777\" }\n", 3, 24, "mode '8777' is not an octal permission")]
    [TestCase("directories:\n  - shm\n", 3, 5, "a directory entry must be a mapping")]
    [TestCase("directories:\n  - { path: \"{devname}\" }\n", 3, 13, "placeholders such as {devname} work only in a device rule's path")]
    [TestCase("symlinks:\n  - { path: fd }\n", 3, 5, "symlink 'fd' has no target")]
    [TestCase("symlinks:\n  - { target: /proc/self/fd }\n", 3, 5, "symlink entry has no path")]
    [TestCase("symlinks:\n  - { path: fd, target: \"\" }\n", 3, 25, "target is empty")]
    [TestCase("symlinks:\n  - { path: ../fd, target: /proc/self/fd }\n", 3, 13, "contains '..'")]
    [TestCase("symlinks:\n  - { path: fd, target: x, extra: 1 }\n", 3, 28, "unknown key 'extra' in symlink entry; expected one of: path, target")]
    [TestCase("directories:\n  - { path: x }\nsymlinks:\n  - { path: x, target: y }\n", 5, 13, "'x' is already a directory (line 3)")]
    [TestCase("directories: { path: x }\n", 2, 14, "directories must be a list")]
    public void BadDirectoriesAndSymlinks(string yaml, int line, int column, string phrase) =>
        OneError("version: 1\n" + yaml, line, column, phrase);

    [TestCase("containers:\n  - web\n", 3, 3, "containers must be a mapping")]
    [TestCase("containers:\n  web: [ { match: { devname: x } } ]\n", 3, 8, "container 'web' must be a mapping with the key devices")]
    [TestCase("containers:\n  \"a,b\":\n    devices: []\n", 3, 3, "container name 'a,b' is not usable")]
    [TestCase("containers:\n  web:\n    devices: []\n  web:\n    devices: []\n", 5, 3, "duplicate key 'web' in containers")]
    [TestCase("containers:\n  web:\n    devices:\n      - match: { devname: x }\n        access: slow\n", 6, 17, "access must be proxy, node or auto, not 'slow'")]
    public void BadContainers(string yaml, int line, int column, string phrase) =>
        OneError("version: 1\n" + yaml, line, column, phrase);

    [Test]
    public void UndefinedAlias() => OneError("version: 1\ndevices:\n  - match: *nope\n", 3, 12, "alias '*nope' refers to no anchor");

    [Test]
    public void AllErrorsAreReportedTogetherInSourceOrder()
    {
        var yaml = """
            version: 1
            defaults:
              access: fast
            directories:
              - { path: /dev/shm, mode: "9" }
            symlinks:
              - { path: fd }
            devices:
              - match: { devname: "loop[0-9", major: "9-3" }
                acess: proxy
              - mode: "0666"
              - match: {}
            containers:
              web:
                devices:
                  - match: { minor: 1048576 }
                    mode: "0999"
            """;
        var e = Fail(yaml);
        var lines = e.Errors.Select(x => $"{x.Line}:{x.Column}").ToList();
        Assert.That(lines, Is.EqualTo(new[]
        {
            "3:11", "5:13", "5:29", "7:5", "9:23", "9:42", "10:5", "11:5", "12:12", "16:25", "17:15",
        }), e.Message);
        Assert.That(e.Message.Split(Environment.NewLine), Has.Length.EqualTo(11));
        Assert.That(e.Message, Does.Contain("bad.yaml:3:11: access must be proxy, node or auto, not 'fast'"));
        Assert.That(e.Message, Does.Contain("bad.yaml:7:5: symlink 'fd' has no target"));
        Assert.That(e.Message, Does.Contain("bad.yaml:10:5: unknown key 'acess' in device rule"));
        Assert.That(e.Message, Does.Contain("bad.yaml:17:15: mode '0999' is not an octal permission"));
        Assert.That(e.Errors.All(x => x.Source == Src), Is.True);
    }

    [Test]
    public void AbsurdNestingIsRefused()
    {
        var e = Fail("version: 1\ndevices: " + new string('[', 100) + new string(']', 100) + "\n");
        Assert.That(e.Errors.Single().Message, Does.Contain("nesting deeper than"));
    }

    [Test]
    public void CrLfLineEndingsKeepLineNumbers()
    {
        var e = Fail("version: 1\r\ndevices:\r\n  - match: { devname: x }\r\n    access: fast\r\n");
        Assert.That(e.Errors.Single().ToString(), Does.StartWith("bad.yaml:4:13: access must be"));
    }

    [Test]
    public void PolicyErrorFormat()
    {
        var error = new PolicyError("p.yaml", 12, 7, "something is wrong");
        Assert.That(error.ToString(), Is.EqualTo("p.yaml:12:7: something is wrong"));
        var ex = new PolicyException([error, error with { Line = 13 }]);
        Assert.That(ex.Message, Is.EqualTo("p.yaml:12:7: something is wrong" + Environment.NewLine + "p.yaml:13:7: something is wrong"));
    }
}
