using DevFs.Devices;
using DevFs.Ownership;
using DevFs.Policy;

using DevFs.Policy.Tests;

namespace DevFs.View.Tests;

public class ViewTests
{
    // Linux errno values (asm-generic/errno-base.h), as the view answers them.
    private const int EPERM = 1, ENOENT = 2, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22,
        EFBIG = 27, ENOSPC = 28, ENOTEMPTY = 39;

    internal const string Yaml = """
        version: 1
        defaults: { access: auto, mode: "0600" }
        directories:
          - { path: pts, mode: "0755" }
          - { path: shm, mode: "1777" }
          - { path: snd, mode: "0750", uid: 0, gid: 29 }
        symlinks:
          - { path: fd, target: /proc/self/fd }
          - { path: ptmx, target: pts/ptmx }
        devices:
          - match: { subsystem: mem, devname: "null" }
            mode: "0666"
            global: true
          - match: { subsystem: block, devname: "loop[0-9]*" }
            gid: 6
            mode: "0660"
          - match: { subsystem: input }
            global: true
          - match: { subsystem: sound }
            global: true
          - match: { subsystem: usb }
            access: proxy
            global: true
        containers:
          web:
            devices:
              - match: { subsystem: misc, devname: net/tun }
                mode: "0666"
        """;

    internal static DevicePolicy Policy => DevicePolicy.Parse(Yaml, "test.yaml");

    private static readonly HostDevice Pcm = Dev.Char("snd/pcmC0D0p", 116, 16, "sound");
    private static readonly HostDevice Event4 = Dev.Char("input/event4", 13, 68, "input");
    private static readonly HostDevice Usb = Dev.Char("bus/usb/001/002", 189, 1, "usb");
    private static readonly HostDevice Usb3 = Dev.Char("bus/usb/001/003", 189, 2, "usb");

    private static ContainerView HostView(params HostDevice[] devices) => new(Policy, null, true, devices);

    private static string[] Names(ContainerView view, ulong dir)
    {
        Assert.That(view.List(dir, out var entries), Is.Zero);
        return entries.Select(e => e.Name).ToArray();
    }

    private static ViewNode At(ContainerView view, string path)
    {
        ViewNode node = view.Root;
        foreach (var part in path.Split('/'))
        {
            Assert.That(view.Lookup(node.Id, part, out var next), Is.Zero, $"looking up {path}");
            node = next!;
        }
        return node;
    }

    private static bool Exists(ContainerView view, string path)
    {
        ViewNode node = view.Root;
        foreach (var part in path.Split('/'))
        {
            if (view.Lookup(node.Id, part, out var next) != 0)
                return false;
            node = next!;
        }
        return true;
    }

    private static List<ViewChange> Record(ContainerView view)
    {
        var changes = new List<ViewChange>();
        view.Changed += changes.Add;
        return changes;
    }

    // ---- what a view shows

    [Test]
    public void HostViewShowsExactlyTheMatchedDevicesDirectoriesAndSymlinks()
    {
        var view = HostView(Dev.Null, Dev.Zero, Dev.Loop0, Dev.Vda, Dev.Event3, Dev.Tun, Dev.Mem);
        Assert.That(Names(view, ContainerView.RootId), Is.EqualTo(new[] { "fd", "input", "loop0", "null", "ptmx", "pts", "shm", "snd" }));
        Assert.That(Names(view, At(view, "input").Id), Is.EqualTo(new[] { "event3" }));
        Assert.That(Names(view, At(view, "snd").Id), Is.Empty);
        Assert.That(view.Devices().Select(d => d.Path), Is.EqualTo(new[] { "input/event3", "loop0", "null" }));

        var nul = (DeviceNode)At(view, "null");
        Assert.That(nul.Mode, Is.EqualTo(StatMode.S_IFCHR | 0x1B6), "0666 character node (auto on a usable mount)");
        Assert.That(nul.Rdev, Is.EqualTo(Dev.Null.Rdev));
        var loop = (DeviceNode)At(view, "loop0");
        Assert.That((loop.Mode, loop.Uid, loop.Gid), Is.EqualTo((StatMode.S_IFBLK | 0x1B0, 0u, 6u)));
        Assert.That(At(view, "shm").Mode, Is.EqualTo(StatMode.S_IFDIR | 0x3FF), "1777");
        Assert.That((At(view, "snd").Mode, At(view, "snd").Gid), Is.EqualTo((StatMode.S_IFDIR | 0x1E8, 29u)));
        var fd = (SymlinkNode)At(view, "fd");
        Assert.That((fd.Target, fd.FileType, fd.Size), Is.EqualTo(("/proc/self/fd", StatMode.S_IFLNK, 13L)));
        Assert.That(((SymlinkNode)At(view, "ptmx")).Target, Is.EqualTo("pts/ptmx"));
        Assert.That(At(view, "input").FileType, Is.EqualTo(StatMode.S_IFDIR));
    }

    [Test]
    public void AutoIsAProxyFileWhenNodesCannotBeUsed()
    {
        var view = new ContainerView(Policy, null, false, [Dev.Null, Usb]);
        var nul = (DeviceNode)At(view, "null");
        Assert.That((nul.Access, nul.FileType, nul.Rdev), Is.EqualTo((AccessMode.Proxy, StatMode.S_IFREG, 0UL)));
        var usb = (DeviceNode)At(view, "bus/usb/001/002");
        Assert.That((usb.Access, usb.FileType), Is.EqualTo((AccessMode.Proxy, StatMode.S_IFREG)));
        var node = (DeviceNode)At(new ContainerView(Policy, null, true, [Dev.Null]), "null");
        Assert.That((node.Access, node.FileType), Is.EqualTo((AccessMode.Node, StatMode.S_IFCHR)));
    }

    // ---- implicit folders

    [Test]
    public void ImplicitFoldersGoWithTheirLastDevice()
    {
        var view = HostView(Dev.Event3, Event4, Usb, Usb3);
        var events = Record(view);
        var input = At(view, "input");
        Assert.That(input, Is.InstanceOf<DirectoryNode>());
        Assert.That(input.Origin, Is.EqualTo(NodeOrigin.Implicit));

        view.RemoveDevice(Dev.Event3);
        Assert.That(Exists(view, "input"), Is.True, "event4 still lives there");
        view.RemoveDevice(Event4);
        Assert.That(Exists(view, "input"), Is.False);
        Assert.That(events.Select(e => (e.Kind, e.ParentId, e.Name)), Is.EqualTo(new[]
        {
            (ViewChangeKind.Removed, input.Id, "event3"),
            (ViewChangeKind.Removed, input.Id, "event4"),
            (ViewChangeKind.Removed, ContainerView.RootId, "input"),
        }));
        Assert.That(events[2].Node, Is.SameAs(input));

        // Nested: every folder that empties goes, innermost first.
        var bus = At(view, "bus");
        var usbDir = At(view, "bus/usb");
        var dir001 = At(view, "bus/usb/001");
        events.Clear();
        view.RemoveDevice(Usb);
        Assert.That(events.Select(e => e.Name), Is.EqualTo(new[] { "002" }));
        view.RemoveDevice(Usb3);
        Assert.That(events.Skip(1).Select(e => (e.ParentId, e.Name)), Is.EqualTo(new[]
        {
            (dir001.Id, "003"), (usbDir.Id, "001"), (bus.Id, "usb"), (ContainerView.RootId, "bus"),
        }));
        Assert.That(Names(view, ContainerView.RootId), Does.Not.Contain("bus"));

        // Coming back makes them again, announced parent first.
        events.Clear();
        view.AddDevice(Usb);
        Assert.That(events.Select(e => (e.Kind, e.Name)), Is.EqualTo(new[]
        {
            (ViewChangeKind.Added, "bus"), (ViewChangeKind.Added, "usb"), (ViewChangeKind.Added, "001"), (ViewChangeKind.Added, "002"),
        }));
        Assert.That(events[0].ParentId, Is.EqualTo(ContainerView.RootId));
        Assert.That(events[3].ParentId, Is.EqualTo(events[2].Node.Id));
        Assert.That(At(view, "bus").Id, Is.Not.EqualTo(bus.Id), "a new folder is a new node");
    }

    [Test]
    public void PolicyDirectoriesNeverGo()
    {
        var view = HostView(Pcm);
        var snd = At(view, "snd");
        Assert.That(snd.Origin, Is.EqualTo(NodeOrigin.Policy));
        var events = Record(view);
        view.RemoveDevice(Pcm);
        Assert.That(events.Select(e => e.Name), Is.EqualTo(new[] { "pcmC0D0p" }));
        Assert.That(At(view, "snd").Id, Is.EqualTo(snd.Id));
        Assert.That(Names(view, snd.Id), Is.Empty);
    }

    [Test]
    public void AFolderWithAContainersFileInItStays()
    {
        var view = HostView(Dev.Event3);
        var input = At(view, "input");
        Assert.That(view.MakeFile(input.Id, "mine", 0x1A4, 0, 0, out _), Is.Zero);
        view.RemoveDevice(Dev.Event3);
        Assert.That(Names(view, input.Id), Is.EqualTo(new[] { "mine" }));
        Assert.That(At(view, "input").Id, Is.EqualTo(input.Id));
    }

    // ---- events

    [Test]
    public void HostChangesRaiseEvents()
    {
        var view = HostView(Dev.Null);
        var events = Record(view);

        view.AddDevice(Dev.Loop0);
        var loop = At(view, "loop0");
        Assert.That(events, Has.Count.EqualTo(1));
        Assert.That((events[0].Kind, events[0].ParentId, events[0].Name, events[0].Node), Is.EqualTo((ViewChangeKind.Added, ContainerView.RootId, "loop0", loop)));

        events.Clear();
        view.AddDevice(Dev.Loop0);            // already there
        view.AddDevice(Dev.Vda);              // the policy does not show it
        view.RemoveDevice(Dev.Vda);
        view.RemoveDevice(Dev.Zero);          // never known
        Assert.That(events, Is.Empty);

        view.ChangeDevice(Dev.Loop0 with { Properties = new Dictionary<string, string> { ["DISKSEQ"] = "9" } });
        Assert.That(events, Has.Count.EqualTo(1));
        Assert.That((events[0].Kind, events[0].ParentId, events[0].Name, events[0].Node), Is.EqualTo((ViewChangeKind.Changed, ContainerView.RootId, "loop0", loop)));
        Assert.That(((DeviceNode)loop).Device.Properties["DISKSEQ"], Is.EqualTo("9"));

        events.Clear();
        view.RemoveDevice(Dev.Loop0);
        Assert.That(events, Has.Count.EqualTo(1));
        Assert.That((events[0].Kind, events[0].ParentId, events[0].Name, events[0].Node), Is.EqualTo((ViewChangeKind.Removed, ContainerView.RootId, "loop0", loop)));
        Assert.That(((DeviceNode)loop).Revoked, Is.True);
        Assert.That(Exists(view, "loop0"), Is.False);
        Assert.That(((DeviceNode)At(view, "null")).Revoked, Is.False);
    }

    [Test]
    public void ADeviceWhoseNumberChangesIsANewNode()
    {
        var view = HostView(Dev.Loop0);
        var old = (DeviceNode)At(view, "loop0");
        var events = Record(view);
        view.ChangeDevice(Dev.Loop0 with { Minor = 9 });
        Assert.That(events.Select(e => (e.Kind, e.Name)), Is.EqualTo(new[] { (ViewChangeKind.Removed, "loop0"), (ViewChangeKind.Added, "loop0") }));
        var fresh = (DeviceNode)At(view, "loop0");
        Assert.That(fresh.Id, Is.Not.EqualTo(old.Id));
        Assert.That(old.Revoked, Is.True);
        Assert.That(fresh.Rdev, Is.EqualTo(HostDevice.MakeDev(7, 9)));
    }

    [Test]
    public void ADeviceThePolicyNoLongerShowsGoesOnChange()
    {
        var view = HostView(Dev.Loop0);
        var events = Record(view);
        view.ChangeDevice(Dev.Loop0 with { Subsystem = "other" });
        Assert.That(events.Select(e => e.Kind), Is.EqualTo(new[] { ViewChangeKind.Removed }));
        Assert.That(Exists(view, "loop0"), Is.False);
        view.ChangeDevice(Dev.Loop0);
        Assert.That(events.Select(e => e.Kind), Is.EqualTo(new[] { ViewChangeKind.Removed, ViewChangeKind.Added }));
        Assert.That(Exists(view, "loop0"), Is.True);
    }

    [Test]
    public void ChangesMadeThroughTheMountRaiseNoEvents()
    {
        var view = HostView(Dev.Null, Dev.Loop0);
        var events = Record(view);
        Assert.That(view.MakeDirectory(ContainerView.RootId, "mapper", 0x1ED, 0, 0, out var dir), Is.Zero);
        Assert.That(view.MakeFile(dir!.Id, "f", 0x1A4, 0, 0, out var file), Is.Zero);
        Assert.That(view.WriteFile((FileNode)file!, 0, "hi"u8), Is.Zero);
        Assert.That(view.MakeSymlink(ContainerView.RootId, "stdin", "/proc/self/fd/0", 0, 0, out _), Is.Zero);
        Assert.That(view.MakeNode(ContainerView.RootId, "log", StatMode.S_IFSOCK | 0x1B6, 0, 0, 0, out _), Is.Zero);
        Assert.That(view.MakeNode(ContainerView.RootId, "loopy", StatMode.S_IFBLK | 0x180, Dev.Loop0.Rdev, 0, 0, out _), Is.Zero);
        Assert.That(view.SetAttributes(file!.Id, 0x180, 5, 5, 1, null), Is.Zero);
        Assert.That(view.Rename(dir.Id, "f", ContainerView.RootId, "g", false), Is.Zero);
        Assert.That(view.Remove(ContainerView.RootId, "g", false), Is.Zero);
        Assert.That(view.Remove(ContainerView.RootId, "null", false), Is.Zero);   // rm /dev/null inside
        Assert.That(view.Remove(ContainerView.RootId, "mapper", true), Is.Zero);
        Assert.That(events, Is.Empty);
    }

    // ---- node ids

    [Test]
    public void NodeIdsAreNeverReused()
    {
        var view = HostView(Dev.Loop0);
        var seen = new HashSet<ulong> { ContainerView.RootId };
        foreach (var n in new[] { "fd", "ptmx", "pts", "shm", "snd" })
            Assert.That(seen.Add(At(view, n).Id), Is.True);
        for (var i = 0; i < 20; i++)
        {
            var loop = At(view, "loop0");
            Assert.That(seen.Add(loop.Id), Is.True, "a device that comes back is a new node");
            view.RemoveDevice(Dev.Loop0);
            view.Forget(loop.Id, 1);
            Assert.That(view.MakeFile(ContainerView.RootId, "loop0", 0x1A4, 0, 0, out var file), Is.Zero);
            Assert.That(seen.Add(file!.Id), Is.True);
            Assert.That(view.Remove(ContainerView.RootId, "loop0", false), Is.Zero);
            view.Forget(file.Id, 1);
            view.AddDevice(Dev.Loop0);
        }
    }

    [Test]
    public void ANameNeverChangesFileTypeBehindANodeId()
    {
        var view = HostView(Dev.Null);
        var nul = At(view, "null");
        Assert.That(view.Remove(ContainerView.RootId, "null", false), Is.Zero);
        Assert.That(view.MakeDirectory(ContainerView.RootId, "null", 0x1ED, 0, 0, out var dir), Is.Zero);
        Assert.That(dir!.Id, Is.Not.EqualTo(nul.Id));
        Assert.That(view.Find(nul.Id)?.FileType, Is.EqualTo(StatMode.S_IFCHR), "the old id still stands for the device until forgotten");
        Assert.That(view.Find(dir.Id)!.FileType, Is.EqualTo(StatMode.S_IFDIR));

        // chmod cannot change the type either.
        Assert.That(view.SetAttributes(dir.Id, StatMode.S_IFREG | 0x1FF, null, null, null, null), Is.Zero);
        Assert.That(view.Find(dir.Id)!.Mode, Is.EqualTo(StatMode.S_IFDIR | 0x1FF));

        // A device shown as a proxy file and then as a node (kind changed on the host) is two nodes.
        var view2 = HostView(Dev.Loop0);
        var block = At(view2, "loop0");
        view2.ChangeDevice(Dev.Loop0 with { Kind = DeviceKind.Char });
        var now = At(view2, "loop0");
        Assert.That(now.Id, Is.Not.EqualTo(block.Id));
        Assert.That(now.FileType, Is.EqualTo(StatMode.S_IFCHR));
        Assert.That(block.FileType, Is.EqualTo(StatMode.S_IFBLK));
        Assert.That(((DeviceNode)block).Revoked, Is.True);
    }

    // ---- lookup counts

    [Test]
    public void DetachedNodesAreFreedOnlyWhenTheLastLookupIsForgotten()
    {
        var view = HostView(Dev.Loop0);
        var loop = At(view, "loop0");                                            // 1
        Assert.That(view.Lookup(ContainerView.RootId, "loop0", out _), Is.Zero); // 2
        view.AddLookup(loop);                                                   // 3
        view.Forget(loop.Id, 1);
        Assert.That(view.Find(loop.Id), Is.SameAs(loop), "still attached");
        view.RemoveDevice(Dev.Loop0);
        Assert.That(view.Find(loop.Id), Is.SameAs(loop), "the kernel still holds 2");
        view.Forget(loop.Id, 1);
        Assert.That(view.Find(loop.Id), Is.SameAs(loop), "the kernel still holds 1");
        view.Forget(loop.Id, 1);
        Assert.That(view.Find(loop.Id), Is.Null);

        // Attached nodes stay whatever the count.
        var nul = HostView(Dev.Null);
        var n = At(nul, "null");
        nul.Forget(n.Id, 5);
        Assert.That(nul.Find(n.Id), Is.SameAs(n));
        // A node never looked up is freed as soon as it goes.
        nul.RemoveDevice(Dev.Null);
        Assert.That(nul.Find(n.Id), Is.Null);
        // The root is never freed.
        nul.Forget(ContainerView.RootId, 100);
        Assert.That(nul.Find(ContainerView.RootId), Is.SameAs(nul.Root));
    }

    [Test]
    public void AFileRemovedWhileLookedUpLivesUntilForgotten()
    {
        var view = HostView();
        Assert.That(view.MakeFile(ContainerView.RootId, "f", 0x1A4, 0, 0, out var f), Is.Zero); // create takes one
        Assert.That(view.Remove(ContainerView.RootId, "f", false), Is.Zero);
        Assert.That(view.Find(f!.Id), Is.SameAs(f));
        view.Forget(f.Id, 1);
        Assert.That(view.Find(f.Id), Is.Null);
    }

    // ---- containers and ownership

    [Test]
    public void AContainerSeesGlobalOwnRuleAndOwnedDevices()
    {
        var owners = new Dictionary<string, string> { ["loop7"] = "web", ["loop12"] = "db" };
        var devices = new[] { Dev.Null, Dev.Loop0, Dev.Loop7, Dev.Loop12, Dev.Tun, Dev.Event3 };
        string? OwnerOf(HostDevice d) => owners.GetValueOrDefault(d.DevName);

        var web = new ContainerView(Policy, "web", true, devices, ownerOf: OwnerOf);
        Assert.That(web.Devices().Select(d => d.Path), Is.EqualTo(new[] { "input/event3", "loop7", "net/tun", "null" }));
        var db = new ContainerView(Policy, "db", true, devices, ownerOf: OwnerOf);
        Assert.That(db.Devices().Select(d => d.Path), Is.EqualTo(new[] { "input/event3", "loop12", "null" }));
        var host = new ContainerView(Policy, null, true, devices, ownerOf: OwnerOf);
        Assert.That(host.Devices().Select(d => d.Path), Is.EqualTo(new[] { "input/event3", "loop0", "loop12", "loop7", "null" }));
        Assert.That(web.Container, Is.EqualTo("web"));
        // Directories and symlinks are in every container.
        Assert.That(Names(db, ContainerView.RootId), Is.SupersetOf(new[] { "fd", "ptmx", "pts", "shm", "snd" }));

        // A hotplugged device follows the same rule.
        var events = Record(web);
        web.AddDevice(Dev.Loop0);
        web.AddDevice(Dev.Tty);
        Assert.That(events, Is.Empty);
        owners["loop0"] = "web";
        web.Reevaluate();
        Assert.That(events.Select(e => (e.Kind, e.Name)), Is.EqualTo(new[] { (ViewChangeKind.Added, "loop0") }));
    }

    [Test]
    public void ReevaluateFollowsOwnership()
    {
        var owners = new Dictionary<string, string> { ["loop7"] = "web" };
        var web = new ContainerView(Policy, "web", true, [Dev.Null, Dev.Loop0, Dev.Loop7], ownerOf: d => owners.GetValueOrDefault(d.DevName));
        var events = Record(web);
        var loop7 = (DeviceNode)At(web, "loop7");

        web.Reevaluate();
        Assert.That(events, Is.Empty, "nothing changed");

        owners.Remove("loop7");
        owners["loop0"] = "web";
        web.Reevaluate();
        Assert.That(events.Select(e => (e.Kind, e.ParentId, e.Name)), Is.EquivalentTo(new[]
        {
            (ViewChangeKind.Removed, ContainerView.RootId, "loop7"),
            (ViewChangeKind.Added, ContainerView.RootId, "loop0"),
        }));
        Assert.That(events.Single(e => e.Kind == ViewChangeKind.Removed).Node, Is.SameAs(loop7));
        Assert.That(loop7.Revoked, Is.True, "taken away: open handles end");
        Assert.That(web.Devices().Select(d => d.Path), Is.EqualTo(new[] { "loop0", "null" }));

        // Moved to another container and back: a new node.
        events.Clear();
        owners["loop7"] = "db";
        web.Reevaluate();
        Assert.That(events, Is.Empty);
        owners["loop7"] = "web";
        web.Reevaluate();
        Assert.That(events.Select(e => (e.Kind, e.Name)), Is.EqualTo(new[] { (ViewChangeKind.Added, "loop7") }));
        Assert.That(At(web, "loop7").Id, Is.Not.EqualTo(loop7.Id));

        // A device unplugged is not brought back by a reevaluation.
        events.Clear();
        web.RemoveDevice(Dev.Loop7);
        web.Reevaluate();
        Assert.That(events.Select(e => (e.Kind, e.Name)), Is.EqualTo(new[] { (ViewChangeKind.Removed, "loop7") }));
        Assert.That(Exists(web, "loop7"), Is.False);
    }

    // ---- id mapping

    private static readonly UserNamespace Unprivileged = new(4026532000, IdMap.Parse("0 100000 65536\n"), IdMap.Parse("0 100000 65536\n"));

    [Test]
    public void PolicyOwnersAreIdsInsideTheContainer()
    {
        const string yaml = """
            version: 1
            directories:
              - { path: pts }
              - { path: big, uid: 70000, gid: 70000 }
            symlinks:
              - { path: fd, target: /proc/self/fd }
            devices:
              - match: { devname: "null" }
                global: true
              - match: { devname: "loop0" }
                global: true
                uid: 5
                gid: 6
              - match: { devname: "loop7" }
                global: true
                uid: 100
                gid: 70000
            """;
        var view = new ContainerView(DevicePolicy.Parse(yaml, "test.yaml"), "web", true, [Dev.Null, Dev.Loop0, Dev.Loop7], Unprivileged);
        Assert.That(view.Namespace, Is.SameAs(Unprivileged));
        Assert.That((view.Root.Uid, view.Root.Gid), Is.EqualTo((100000u, 100000u)));
        Assert.That((At(view, "null").Uid, At(view, "null").Gid), Is.EqualTo((100000u, 100000u)));
        Assert.That((At(view, "loop0").Uid, At(view, "loop0").Gid), Is.EqualTo((100005u, 100006u)));
        Assert.That((At(view, "loop7").Uid, At(view, "loop7").Gid), Is.EqualTo((100100u, 65534u)), "gid 70000 is not mapped");
        Assert.That((At(view, "pts").Uid, At(view, "pts").Gid), Is.EqualTo((100000u, 100000u)));
        Assert.That((At(view, "big").Uid, At(view, "big").Gid), Is.EqualTo((65534u, 65534u)));
        Assert.That((At(view, "fd").Uid, At(view, "fd").Gid), Is.EqualTo((100000u, 100000u)));

        // Hotplugged and changed devices are mapped the same way.
        view.RemoveDevice(Dev.Null);
        view.AddDevice(Dev.Null);
        Assert.That(At(view, "null").Uid, Is.EqualTo(100000u));
        view.ChangeDevice(Dev.Loop0 with { Properties = new Dictionary<string, string> { ["X"] = "1" } });
        Assert.That((At(view, "loop0").Uid, At(view, "loop0").Gid), Is.EqualTo((100005u, 100006u)));

        // Without a namespace, ids are the host's.
        var plain = new ContainerView(DevicePolicy.Parse(yaml, "test.yaml"), "web", true, [Dev.Loop0]);
        Assert.That((At(plain, "loop0").Uid, At(plain, "loop0").Gid), Is.EqualTo((5u, 6u)));
    }

    [Test]
    public void ImplicitFoldersBelongToTheContainersRoot()
    {
        var view = new ContainerView(Policy, "web", true, [Dev.Event3], Unprivileged);
        Assert.That((At(view, "input").Uid, At(view, "input").Gid), Is.EqualTo((100000u, 100000u)));
    }

    // ---- mknod

    [Test]
    public void MakeNodeAllowsTheContainersOwnKinds()
    {
        var view = HostView();
        Assert.That(view.MakeNode(ContainerView.RootId, "fifo", StatMode.S_IFIFO | 0x1A4, 0, 7, 8, out var fifo), Is.Zero);
        Assert.That((fifo!.FileType, fifo.Uid, fifo.Gid, fifo.Mode & StatMode.PermissionBits), Is.EqualTo((StatMode.S_IFIFO, 7u, 8u, 0x1A4u)));
        Assert.That(view.MakeNode(ContainerView.RootId, "log", StatMode.S_IFSOCK | 0x1B6, 0, 0, 0, out var sock), Is.Zero);
        Assert.That(sock!.FileType, Is.EqualTo(StatMode.S_IFSOCK));
        Assert.That(view.MakeNode(ContainerView.RootId, "reg", StatMode.S_IFREG | 0x180, 0, 0, 0, out var reg), Is.Zero);
        Assert.That(reg, Is.InstanceOf<FileNode>());
        Assert.That(view.MakeNode(ContainerView.RootId, "plain", 0x180, 0, 0, 0, out var plain), Is.Zero, "no type means a regular file");
        Assert.That(plain!.FileType, Is.EqualTo(StatMode.S_IFREG));
        Assert.That(view.MakeNode(ContainerView.RootId, "fifo", StatMode.S_IFIFO | 0x1A4, 0, 0, 0, out _), Is.EqualTo(EEXIST));
        Assert.That(Names(view, ContainerView.RootId), Is.SupersetOf(new[] { "fifo", "log", "reg", "plain" }));
    }

    [TestCase(StatMode.S_IFDIR)]
    [TestCase(StatMode.S_IFLNK)]
    [TestCase(0xE000u)]
    [TestCase(0x3000u)]
    public void MakeNodeRefusesUnknownTypes(uint type)
    {
        var view = HostView(Dev.Null);
        Assert.That(view.MakeNode(ContainerView.RootId, "x", type | 0x1A4, 0, 0, 0, out var node), Is.EqualTo(EINVAL));
        Assert.That(node, Is.Null);
        Assert.That(Exists(view, "x"), Is.False);
    }

    [Test]
    public void MakeNodeOfADeviceOnlyForWhatThePolicyShowsThatView()
    {
        var owners = new Dictionary<string, string> { ["loop7"] = "web" };
        var devices = new[] { Dev.Null, Dev.Loop0, Dev.Loop7, Dev.Vda, Dev.Tun };
        var web = new ContainerView(Policy, "web", true, devices, ownerOf: d => owners.GetValueOrDefault(d.DevName));
        var db = new ContainerView(Policy, "db", true, devices, ownerOf: d => owners.GetValueOrDefault(d.DevName));

        Assert.That(web.MakeNode(ContainerView.RootId, "n2", StatMode.S_IFCHR | 0x1B6, Dev.Null.Rdev, 3, 4, out var n2), Is.Zero);
        var dev = (DeviceNode)n2!;
        Assert.That((dev.FileType, dev.Rdev, dev.Uid, dev.Gid, dev.Origin), Is.EqualTo((StatMode.S_IFCHR, Dev.Null.Rdev, 3u, 4u, NodeOrigin.User)));
        Assert.That(web.MakeNode(ContainerView.RootId, "l7", StatMode.S_IFBLK | 0x180, Dev.Loop7.Rdev, 0, 0, out _), Is.Zero, "owned");
        Assert.That(web.MakeNode(ContainerView.RootId, "tun2", StatMode.S_IFCHR | 0x180, Dev.Tun.Rdev, 0, 0, out _), Is.Zero, "own rule");

        Assert.That(db.MakeNode(ContainerView.RootId, "l7", StatMode.S_IFBLK | 0x180, Dev.Loop7.Rdev, 0, 0, out _), Is.EqualTo(EPERM), "web's");
        Assert.That(db.MakeNode(ContainerView.RootId, "tun2", StatMode.S_IFCHR | 0x180, Dev.Tun.Rdev, 0, 0, out _), Is.EqualTo(EPERM), "web's rule");
        Assert.That(web.MakeNode(ContainerView.RootId, "l0", StatMode.S_IFBLK | 0x180, Dev.Loop0.Rdev, 0, 0, out _), Is.EqualTo(EPERM), "nobody's");
        Assert.That(web.MakeNode(ContainerView.RootId, "vda", StatMode.S_IFBLK | 0x180, Dev.Vda.Rdev, 0, 0, out _), Is.EqualTo(EPERM), "not in the policy");
        Assert.That(web.MakeNode(ContainerView.RootId, "mem", StatMode.S_IFCHR | 0x180, Dev.Mem.Rdev, 0, 0, out _), Is.EqualTo(EPERM), "not on the host view's list");
        Assert.That(web.MakeNode(ContainerView.RootId, "nb", StatMode.S_IFBLK | 0x180, Dev.Null.Rdev, 0, 0, out _), Is.EqualTo(EPERM), "null is a character device");
        Assert.That(web.MakeNode(ContainerView.RootId, "x", StatMode.S_IFCHR | 0x180, HostDevice.MakeDev(250, 3), 0, 0, out _), Is.EqualTo(EPERM), "unknown device");

        // A device that went can no longer be made.
        web.RemoveDevice(Dev.Loop7);
        Assert.That(web.MakeNode(ContainerView.RootId, "l7b", StatMode.S_IFBLK | 0x180, Dev.Loop7.Rdev, 0, 0, out _), Is.EqualTo(EPERM));
        // Nor one taken away.
        owners.Remove("loop7");
        web.AddDevice(Dev.Loop7);
        Assert.That(web.MakeNode(ContainerView.RootId, "l7c", StatMode.S_IFBLK | 0x180, Dev.Loop7.Rdev, 0, 0, out _), Is.EqualTo(EPERM));
    }

    // ---- remove and rename

    [Test]
    public void RemoveAnswersAsUnlinkAndRmdir()
    {
        var view = HostView(Dev.Null);
        view.MakeDirectory(ContainerView.RootId, "d", 0x1ED, 0, 0, out var d);
        view.MakeFile(d!.Id, "f", 0x1A4, 0, 0, out var f);
        Assert.That(view.Remove(ContainerView.RootId, "missing", false), Is.EqualTo(ENOENT));
        Assert.That(view.Remove(ContainerView.RootId, "null", true), Is.EqualTo(ENOTDIR));
        Assert.That(view.Remove(ContainerView.RootId, "d", false), Is.EqualTo(EISDIR));
        Assert.That(view.Remove(ContainerView.RootId, "d", true), Is.EqualTo(ENOTEMPTY));
        Assert.That(view.Remove(f!.Id, "x", false), Is.EqualTo(ENOTDIR), "a file is not a directory");
        Assert.That(view.Remove(d.Id, "f", false), Is.Zero);
        Assert.That(view.Remove(ContainerView.RootId, "d", true), Is.Zero);
        Assert.That(view.Remove(ContainerView.RootId, "pts", true), Is.Zero, "policy directories may be removed, as on devtmpfs");
        Assert.That(Names(view, ContainerView.RootId), Is.EqualTo(new[] { "fd", "null", "ptmx", "shm", "snd" }));
    }

    [Test]
    public void RenameAnswersAsRename2()
    {
        var view = HostView(Dev.Null);
        const ulong root = ContainerView.RootId;
        view.MakeDirectory(root, "a", 0x1ED, 0, 0, out var a);
        view.MakeDirectory(a!.Id, "b", 0x1ED, 0, 0, out var b);
        view.MakeDirectory(root, "empty", 0x1ED, 0, 0, out _);
        view.MakeDirectory(root, "full", 0x1ED, 0, 0, out var full);
        view.MakeFile(full!.Id, "x", 0x1A4, 0, 0, out _);
        view.MakeFile(root, "file", 0x1A4, 0, 0, out var file);

        Assert.That(view.Rename(root, "a", b!.Id, "a2", false), Is.EqualTo(EINVAL), "into its own subdirectory");
        Assert.That(view.Rename(root, "a", a.Id, "a2", false), Is.EqualTo(EINVAL), "into itself");
        Assert.That(view.Rename(root, "file", root, "null", true), Is.EqualTo(EEXIST));
        Assert.That(view.Rename(root, "empty", root, "full", false), Is.EqualTo(ENOTEMPTY));
        Assert.That(view.Rename(root, "file", root, "empty", false), Is.EqualTo(EISDIR));
        Assert.That(view.Rename(root, "empty", root, "file", false), Is.EqualTo(ENOTDIR));
        Assert.That(view.Rename(root, "missing", root, "x", false), Is.EqualTo(ENOENT));
        Assert.That(view.Rename(root, "file", file!.Id, "x", false), Is.EqualTo(ENOTDIR));
        Assert.That(Names(view, root), Is.EqualTo(new[] { "a", "empty", "fd", "file", "full", "null", "ptmx", "pts", "shm", "snd" }), "refusals change nothing");

        Assert.That(view.Rename(root, "file", root, "file", false), Is.Zero, "onto itself");
        Assert.That(view.Rename(root, "file", a.Id, "moved", false), Is.Zero);
        Assert.That(At(view, "a/moved").Id, Is.EqualTo(file.Id));
        Assert.That(view.Rename(root, "empty", b.Id, "e", true), Is.Zero);
        Assert.That(At(view, "a/b/e").FileType, Is.EqualTo(StatMode.S_IFDIR));
        // Replacing: a file over a file, an empty directory over a directory.
        Assert.That(view.Rename(a.Id, "moved", root, "null", false), Is.Zero);
        Assert.That(At(view, "null").Id, Is.EqualTo(file.Id));
        Assert.That(view.MakeDirectory(root, "e2", 0x1ED, 0, 0, out _), Is.Zero);
        Assert.That(view.Rename(b.Id, "e", root, "e2", false), Is.Zero);
        Assert.That(Names(view, b.Id), Is.Empty);
        Assert.That(Names(view, root), Is.EqualTo(new[] { "a", "e2", "fd", "full", "null", "ptmx", "pts", "shm", "snd" }));
    }

    // ---- limits and file contents

    [Test]
    public void AMountHoldsAtMostMaxUserNodes()
    {
        var view = HostView();
        Assert.That(ContainerView.MaxUserNodes, Is.EqualTo(4096));
        for (var i = 0; i < ContainerView.MaxUserNodes; i++)
            Assert.That(view.MakeFile(ContainerView.RootId, $"f{i}", 0x1A4, 0, 0, out _), Is.Zero, $"file {i}");
        Assert.That(view.MakeFile(ContainerView.RootId, "one-more", 0x1A4, 0, 0, out _), Is.EqualTo(ENOSPC));
        Assert.That(view.MakeDirectory(ContainerView.RootId, "d", 0x1ED, 0, 0, out _), Is.EqualTo(ENOSPC));
        Assert.That(view.MakeSymlink(ContainerView.RootId, "s", "t", 0, 0, out _), Is.EqualTo(ENOSPC));
        Assert.That(view.MakeNode(ContainerView.RootId, "p", StatMode.S_IFIFO | 0x1A4, 0, 0, 0, out _), Is.EqualTo(ENOSPC));
        // Host devices do not count against it.
        view.AddDevice(Dev.Null);
        Assert.That(Exists(view, "null"), Is.True);
        // Removing one frees one.
        Assert.That(view.Remove(ContainerView.RootId, "f0", false), Is.Zero);
        Assert.That(view.MakeDirectory(ContainerView.RootId, "d", 0x1ED, 0, 0, out _), Is.Zero);
        Assert.That(view.MakeFile(ContainerView.RootId, "one-more", 0x1A4, 0, 0, out _), Is.EqualTo(ENOSPC));
        // Replacing by rename frees the replaced one.
        Assert.That(view.Rename(ContainerView.RootId, "f1", ContainerView.RootId, "f2", false), Is.Zero);
        Assert.That(view.MakeFile(ContainerView.RootId, "one-more", 0x1A4, 0, 0, out _), Is.Zero);
    }

    [Test]
    public void FileContentsRoundTrip()
    {
        var view = HostView();
        view.MakeFile(ContainerView.RootId, "f", 0x1A4, 0, 0, out var n);
        var file = (FileNode)n!;
        Assert.That(view.WriteFile(file, 0, "hello world"u8), Is.Zero);
        Assert.That(view.WriteFile(file, 6, "there"u8), Is.Zero);
        Assert.That(view.ReadFile(file, 0, 100, out var data), Is.Zero);
        Assert.That(data, Is.EqualTo("hello there"u8.ToArray()));
        Assert.That(view.ReadFile(file, 6, 3, out data), Is.Zero);
        Assert.That(data, Is.EqualTo("the"u8.ToArray()));
        Assert.That(view.ReadFile(file, 50, 3, out data), Is.Zero);
        Assert.That(data, Is.Empty);
        Assert.That(file.Size, Is.EqualTo(11));

        // A write past the end leaves a hole of zeros.
        Assert.That(view.WriteFile(file, 13, "!"u8), Is.Zero);
        view.ReadFile(file, 0, 100, out data);
        Assert.That(data, Is.EqualTo("hello there\0\0!"u8.ToArray()));

        // truncate shrinks and grows.
        Assert.That(view.SetAttributes(file.Id, null, null, null, 5, null), Is.Zero);
        view.ReadFile(file, 0, 100, out data);
        Assert.That(data, Is.EqualTo("hello"u8.ToArray()));
        Assert.That(view.SetAttributes(file.Id, null, null, null, 7, null), Is.Zero);
        view.ReadFile(file, 0, 100, out data);
        Assert.That(data, Is.EqualTo("hello\0\0"u8.ToArray()));
        Assert.That(view.Find(file.Id)!.Size, Is.EqualTo(7));
        Assert.That(view.SetAttributes(ContainerView.RootId, null, null, null, 0, null), Is.EqualTo(EISDIR));
        Assert.That(view.SetAttributes(999999, null, null, null, 0, null), Is.EqualTo(ENOENT));
    }

    [Test]
    public void FilesAreLimitedToMaxFileSize()
    {
        var view = HostView();
        view.MakeFile(ContainerView.RootId, "f", 0x1A4, 0, 0, out var n);
        var file = (FileNode)n!;
        Assert.That(ContainerView.MaxFileSize, Is.EqualTo(1 << 20));
        Assert.That(view.WriteFile(file, ContainerView.MaxFileSize - 1, "x"u8), Is.Zero, "the last byte");
        Assert.That(file.Size, Is.EqualTo(ContainerView.MaxFileSize));
        Assert.That(view.WriteFile(file, ContainerView.MaxFileSize, "x"u8), Is.EqualTo(EFBIG));
        Assert.That(view.WriteFile(file, ContainerView.MaxFileSize - 1, "xy"u8), Is.EqualTo(EFBIG));
        Assert.That(view.WriteFile(file, -1, "x"u8), Is.EqualTo(EFBIG));
        Assert.That(view.SetAttributes(file.Id, null, null, null, ContainerView.MaxFileSize + 1L, null), Is.EqualTo(EFBIG));
        Assert.That(view.SetAttributes(file.Id, null, null, null, -1, null), Is.EqualTo(EFBIG));
        Assert.That(file.Size, Is.EqualTo(ContainerView.MaxFileSize), "refusals change nothing");
    }

    [Test]
    public void AnEntryTheContainerRemovedStaysAwayUntilTheDeviceItselfComesBack()
    {
        var owner = "web";
        var loop = Dev.Block("loop3", 7, 3);
        var view = new ContainerView(Policy, "web", true, [Dev.Null, loop], ownerOf: d => d == loop ? owner : null);
        Assert.That(view.Remove(ContainerView.RootId, "loop3", directory: false), Is.Zero);
        view.Reevaluate();
        view.ChangeDevice(loop);
        Assert.That(Exists(view, "loop3"), Is.False, "as on devtmpfs, a removed node is not made again by a change or an ownership check");
        view.RemoveDevice(loop);
        view.AddDevice(loop);
        Assert.That(Exists(view, "loop3"), Is.True, "a device that really comes back is shown again");
    }

    [Test]
    public void UnpluggingRevokesEveryNodeThatStandsForTheDeviceShownOrNot()
    {
        var view = HostView(Dev.Null, Usb);
        var shown = (DeviceNode)At(view, "bus/usb/001/002");
        Assert.That(view.MakeNode(ContainerView.RootId, "mine", 0x2000 | 0x1B6, Usb.Rdev, 0, 0, out var made), Is.Zero);
        var mknodded = (DeviceNode)made!;
        Assert.That(view.Remove(shown.Parent!.Id, shown.Name, directory: false), Is.Zero, "the container unlinks the shown entry");
        var events = Record(view);
        view.RemoveDevice(Usb);
        Assert.That(shown.Revoked && mknodded.Revoked, Is.True, "handles opened through either node must fail with ENODEV");
        Assert.That(events.Where(e => e.Kind == ViewChangeKind.Revoked).Select(e => e.Node), Is.EquivalentTo(new ViewNode[] { shown, mknodded }));
        Assert.That(Exists(view, "mine"), Is.True, "a node the container made stays, like a stale node on devtmpfs");
    }

    [Test]
    public void TakingADeviceBackRevokesTheContainersOwnNodesForIt()
    {
        var owner = "web";
        var loop = Dev.Block("loop3", 7, 3);
        var view = new ContainerView(Policy, "web", true, [loop], ownerOf: d => d == loop ? owner : null);
        var shown = (DeviceNode)At(view, "loop3");
        Assert.That(view.MakeNode(ContainerView.RootId, "disk", 0x6000 | 0x1B0, loop.Rdev, 0, 0, out var made), Is.Zero);
        var events = Record(view);
        owner = "db";
        view.Reevaluate();
        Assert.That(shown.Revoked && ((DeviceNode)made!).Revoked, Is.True);
        Assert.That(events.Select(e => (e.Kind, e.Node)), Is.EquivalentTo(new (ViewChangeKind, ViewNode)[]
        {
            (ViewChangeKind.Removed, shown), (ViewChangeKind.Revoked, made!),
        }));
        owner = "web";
        view.Reevaluate();
        Assert.That(Exists(view, "loop3"), Is.True, "given back, it shows again as a new node");
        Assert.That(At(view, "loop3").Id, Is.Not.EqualTo(shown.Id));
    }
}
