using System.Diagnostics;

namespace DevFs.Ownership.Tests;

public class AssignmentStoreTests
{
    private string _dir = "";
    private readonly List<AssignmentStore> _stores = [];

    [SetUp]
    public void MakeDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "devfs-assign-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void RemoveDirectory()
    {
        foreach (var store in _stores)
            store.Dispose();
        _stores.Clear();
        Directory.Delete(_dir, recursive: true);
    }

    private AssignmentStore Store()
    {
        var store = new AssignmentStore(_dir);
        _stores.Add(store);
        return store;
    }

    private string FileText => File.ReadAllText(Path.Combine(_dir, AssignmentStore.FileName));

    /// <summary>Polls until the condition holds; fails after a generous deadline.</summary>
    private static void WaitUntil(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(20))
                Assert.Fail($"timed out waiting until {what}");
            Thread.Sleep(10);
        }
    }

    [Test]
    public void AssignGivesTheDeviceToTheContainer()
    {
        var store = Store();
        Assert.That(store.OwnerOf("loop0"), Is.Null);
        Assert.That(store.Assign("loop0", "web", AssignmentOrigin.Assigned), Is.Null);
        Assert.That(store.OwnerOf("loop0"), Is.EqualTo("web"));
        Assert.That(store.Assign("net/tun", "db", AssignmentOrigin.Created), Is.Null);
        Assert.That(store.Current, Is.EquivalentTo(new[]
        {
            new Assignment("loop0", "web", AssignmentOrigin.Assigned),
            new Assignment("net/tun", "db", AssignmentOrigin.Created),
        }));
        Assert.That(FileText, Is.EqualTo("loop0 web assigned\nnet/tun db created\n"));
        Assert.That(store.FilePath, Is.EqualTo(Path.Combine(_dir, "assignments")));
    }

    [Test]
    public void AssignmentIsExclusive()
    {
        var store = Store();
        Assert.That(store.Assign("loop0", "web", AssignmentOrigin.Assigned), Is.Null);
        var error = store.Assign("loop0", "db", AssignmentOrigin.Assigned);
        Assert.That(error, Is.EqualTo("loop0 belongs to container web; take it back first (devfs unassign loop0) or move it (--move)"));
        Assert.That(store.OwnerOf("loop0"), Is.EqualTo("web"));
        // The owner itself may assign again.
        Assert.That(store.Assign("loop0", "web", AssignmentOrigin.Assigned), Is.Null);
        Assert.That(store.OwnerOf("loop0"), Is.EqualTo("web"));
    }

    [Test]
    public void MoveTakesTheDeviceOver()
    {
        var store = Store();
        store.Assign("loop0", "web", AssignmentOrigin.Assigned);
        Assert.That(store.Assign("loop0", "db", AssignmentOrigin.Assigned, takeOver: true), Is.Null);
        Assert.That(store.OwnerOf("loop0"), Is.EqualTo("db"));
        Assert.That(store.Current, Has.Count.EqualTo(1));
        Assert.That(Store().OwnerOf("loop0"), Is.EqualTo("db"));
    }

    [Test]
    public void ReleaseTakesTheDeviceBack()
    {
        var store = Store();
        store.Assign("loop0", "web", AssignmentOrigin.Assigned);
        store.Assign("loop1", "web", AssignmentOrigin.Assigned);
        Assert.That(store.Release("loop0", "db"), Is.EqualTo("loop0 belongs to web, not db"));
        Assert.That(store.OwnerOf("loop0"), Is.EqualTo("web"));
        Assert.That(store.Release("loop0", "web"), Is.Null);
        Assert.That(store.OwnerOf("loop0"), Is.Null);
        Assert.That(store.Release("loop0"), Is.EqualTo("loop0 is not assigned to any container"));
        Assert.That(store.Release("loop1"), Is.Null); // without a container: whoever owns it
        Assert.That(store.Current, Is.Empty);
        Assert.That(FileText, Is.Empty);
    }

    [Test]
    public void AssignmentsSurviveARestart()
    {
        var first = Store();
        first.Assign("loop0", "web", AssignmentOrigin.Assigned);
        first.Assign("loop3", "db", AssignmentOrigin.Created);
        first.Release("loop0");
        first.Assign("input/event3", "web", AssignmentOrigin.Assigned);
        first.Dispose();

        var restarted = Store();
        Assert.That(restarted.Current, Is.EquivalentTo(new[]
        {
            new Assignment("loop3", "db", AssignmentOrigin.Created),
            new Assignment("input/event3", "web", AssignmentOrigin.Assigned),
        }));
        // Exclusivity holds across the restart too.
        Assert.That(restarted.Assign("loop3", "web", AssignmentOrigin.Assigned), Does.StartWith("loop3 belongs to container db"));
    }

    [Test]
    public void NoFileMeansNoAssignments()
    {
        var store = new AssignmentStore(Path.Combine(_dir, "not", "yet"));
        _stores.Add(store);
        Assert.That(store.Current, Is.Empty);
        Assert.That(store.Assign("loop0", "web", AssignmentOrigin.Assigned), Is.Null);
        Assert.That(File.Exists(Path.Combine(_dir, "not", "yet", "assignments")), Is.True);
    }

    [Test]
    public void ADamagedFileLosesOnlyItsDamagedLines()
    {
        File.WriteAllText(Path.Combine(_dir, AssignmentStore.FileName), string.Join("\n",
            "loop0 web assigned",
            "@@@ garbage \u0001 line with too many fields",
            "loop1 web",                        // a field missing
            "loop2 web assigned extra",         // a field too many
            "loop3 web stolen",                 // not an origin
            "../../etc/passwd web assigned",    // escapes /dev
            "loop4 .. assigned",                // not a container name
            "loop5 web/x assigned",             // a container name cannot hold '/'
            "loop8 web 7",                      // a number is not an origin
            "loop9 web 1",
            "loop10 web assigned,created",
            "",
            "   ",
            "net/tun   db   CREATED",           // extra spaces and case are fine
            "loop6 db created") + "\n");
        var store = Store();
        Assert.That(store.Current, Is.EquivalentTo(new[]
        {
            new Assignment("loop0", "web", AssignmentOrigin.Assigned),
            new Assignment("net/tun", "db", AssignmentOrigin.Created),
            new Assignment("loop6", "db", AssignmentOrigin.Created),
        }));
        // The next write keeps the good lines.
        Assert.That(store.Assign("loop7", "web", AssignmentOrigin.Assigned), Is.Null);
        Assert.That(Store().Current.Select(a => a.DevName), Is.EquivalentTo(new[] { "loop0", "net/tun", "loop6", "loop7" }));
    }

    [TestCase("", "web")]
    [TestCase("loop0", "")]
    [TestCase("loop 0", "web")]
    [TestCase("loop0", "w eb")]
    [TestCase("loop0", "we\tb")]
    [TestCase("../loop0", "web")]
    [TestCase("net/../../etc", "web")]
    [TestCase("/loop0", "web")]
    [TestCase("loop0/", "web")]
    [TestCase("loop0", "..")]
    [TestCase("loop0", "web/x")]
    public void InvalidNamesAreRefused(string devName, string container)
    {
        var store = Store();
        Assert.That(store.Assign(devName, container, AssignmentOrigin.Assigned), Does.Contain("is not a valid device or container name"));
        Assert.That(store.Current, Is.Empty);
        Assert.That(File.Exists(store.FilePath), Is.False);
    }

    [Test]
    public void ChangedIsRaisedOncePerRealChange()
    {
        var watching = Store();
        var count = 0;
        watching.Changed += () => Interlocked.Increment(ref count);
        watching.StartWatching();
        var other = Store(); // as another devfs process on the same directory

        // Each step: (what to do, how many real changes it makes).
        var steps = new (Func<string?> Act, int Changes, string What)[]
        {
            (() => watching.Assign("loop0", "web", AssignmentOrigin.Assigned), 1, "own assign"),
            (() => watching.Assign("loop0", "web", AssignmentOrigin.Assigned), 0, "own assign again"),
            (() => other.Assign("loop1", "db", AssignmentOrigin.Assigned), 1, "other's assign"),
            (() => other.Assign("loop1", "db", AssignmentOrigin.Assigned), 0, "other's assign again"),
            (() => other.Assign("loop0", "db", AssignmentOrigin.Assigned) is null ? "should be refused" : null, 0, "other's refused assign"),
            (() => other.Assign("loop0", "db", AssignmentOrigin.Assigned, takeOver: true), 1, "other's move"),
            (() => watching.Release("loop1", "web") is null ? "should be refused" : null, 0, "own refused release"),
            (() => other.Release("loop1"), 1, "other's release"),
            (() => watching.Release("loop0"), 1, "own release"),
        };
        var expected = 0;
        var sentinel = 0;
        foreach (var (act, changes, what) in steps)
        {
            Assert.That(act(), Is.Null, what);
            expected += changes;
            // A real change that both stores must see marks the end of this step; it counts once.
            var mark = $"mark{sentinel++}";
            Assert.That(other.Assign(mark, "sentinel", AssignmentOrigin.Assigned), Is.Null);
            expected++;
            WaitUntil(() => watching.OwnerOf(mark) == "sentinel", $"the watching store sees {mark} after {what}");
            WaitUntil(() => Volatile.Read(ref count) >= expected, $"Changed was raised for {what}");
            Assert.That(Volatile.Read(ref count), Is.EqualTo(expected), $"Changed events after {what}");
        }
        // What the watching store believes is what the file says.
        Assert.That(watching.Current, Is.EquivalentTo(Store().Current));
    }

    [Test]
    public void AChangeByAnotherStoreReachesAWatcher()
    {
        var watching = Store();
        var raised = 0;
        watching.Changed += () => Interlocked.Increment(ref raised);
        watching.StartWatching();
        Assert.That(Store().Assign("loop0", "web", AssignmentOrigin.Assigned), Is.Null);
        WaitUntil(() => watching.OwnerOf("loop0") == "web" && Volatile.Read(ref raised) == 1, "the watcher sees loop0");
        Assert.That(Store().Release("loop0"), Is.Null);
        WaitUntil(() => watching.OwnerOf("loop0") is null && Volatile.Read(ref raised) == 2, "the watcher sees loop0 go");
    }

    [Test]
    public void AStoreThatIsNotWatchingRaisesForItsOwnChangesOnly()
    {
        var store = Store();
        var raised = 0;
        store.Changed += () => Interlocked.Increment(ref raised);
        store.Assign("loop0", "web", AssignmentOrigin.Assigned);
        Assert.That(raised, Is.EqualTo(1));
        store.Assign("loop0", "web", AssignmentOrigin.Assigned);
        Assert.That(raised, Is.EqualTo(1));
        store.Release("loop0");
        Assert.That(raised, Is.EqualTo(2));
    }

    [Test]
    public void ConcurrentAssignsNeverCorruptTheFile()
    {
        const int threads = 8, perThread = 40;
        var shared = Store();
        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            // Half the threads share one store, the others each have their own (another process).
            var store = t % 2 == 0 ? shared : new AssignmentStore(_dir);
            for (var i = 0; i < perThread; i++)
            {
                var error = store.Assign($"dev{t}x{i}", $"c{t}", i % 3 == 0 ? AssignmentOrigin.Created : AssignmentOrigin.Assigned);
                if (error is not null)
                    errors.Add(error);
                // Everyone also fights over one device; exactly one owner must result.
                store.Assign("contested", $"c{t}", AssignmentOrigin.Assigned, takeOver: true);
                if (i % 5 == 4 && store.Release($"dev{t}x{i - 1}", $"c{t}") is { } releaseError)
                    errors.Add(releaseError);
            }
            if (!ReferenceEquals(store, shared))
                store.Dispose();
        })).ToArray();
        foreach (var w in workers)
            w.Start();
        foreach (var w in workers)
            Assert.That(w.Join(TimeSpan.FromSeconds(120)), Is.True, "a worker hung");
        Assert.That(errors, Is.Empty);

        var lines = File.ReadAllLines(shared.FilePath);
        var expected = threads * perThread - threads * (perThread / 5) + 1;
        Assert.That(lines, Has.Length.EqualTo(expected));
        foreach (var line in lines)
            Assert.That(line, Does.Match(@"^(dev\d+x\d+|contested) c\d+ (assigned|created)$"));
        Assert.That(lines.Distinct().Count(), Is.EqualTo(lines.Length));
        var reread = Store().Current;
        Assert.That(reread, Has.Count.EqualTo(expected));
        Assert.That(reread.Count(a => a.DevName == "contested"), Is.EqualTo(1));
        Assert.That(Directory.GetFiles(_dir).Select(Path.GetFileName), Is.EquivalentTo(new[] { "assignments", "assignments.lock" }));
    }
}
