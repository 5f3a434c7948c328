using DevFs.Fuse.Abi;
using static DevFs.Fuse.Tests.Wire;

namespace DevFs.Fuse.Tests;

public class InterruptTests
{
    private Harness _h = null!;
    private readonly List<FuseRequest> _interrupted = new();

    [SetUp]
    public void SetUp()
    {
        _h = new Harness();
        _interrupted.Clear();
        _h.Fs.Answer = r => r.OnInterrupt(() =>
        {
            _interrupted.Add(r);
            r.ReplyError(Errno.EINTR);
        });
    }

    private byte[] ReadRequest(ulong unique) => Request(FuseOpcode.FUSE_READ, unique, 6, Bytes(new fuse_read_in { fh = 1, size = 100 }));

    private byte[] InterruptRequest(ulong target, ulong unique) =>
        Request(FuseOpcode.FUSE_INTERRUPT, unique, 0, Bytes(new fuse_interrupt_in { unique = target }));

    [Test]
    public void InterruptAfterRegistration_RunsCallback()
    {
        Assert.That(_h.SendRaw(ReadRequest(500)), Is.Null, "the read waits");
        var request = _h.Fs.Calls.Single().Request;
        Assert.That(request.IsInterrupted, Is.False);
        _h.Dispatcher.Dispatch(InterruptRequest(500, 501), _h.Sink);
        Assert.That(_interrupted, Is.EqualTo(new[] { request }));
        Assert.That(request.IsInterrupted, Is.True);
        // Only the interrupted READ answers; INTERRUPT (unique 501) itself gets no reply.
        Assert.That(_h.Sink.Messages.Single(), Is.EqualTo(new Expect(16).Header(-Errno.EINTR, 500).Buffer));
    }

    [Test]
    public void InterruptBeforeRegistration_RunsCallbackAtRegistration()
    {
        Assert.That(_h.SendRaw(InterruptRequest(600, 601)), Is.Null);
        Assert.That(_h.SendRaw(ReadRequest(600)), Is.EqualTo(new Expect(16).Header(-Errno.EINTR, 600).Buffer));
        Assert.That(_interrupted, Has.Count.EqualTo(1));
        Assert.That(_interrupted[0].IsInterrupted, Is.True);
    }

    [Test]
    public void InterruptForOtherRequest_DoesNothing()
    {
        _h.SendRaw(ReadRequest(700));
        _h.SendRaw(InterruptRequest(702, 703));
        Assert.That(_interrupted, Is.Empty);
        Assert.That(_h.Sink.Messages, Is.Empty);
    }

    [Test]
    public void InterruptAfterReply_DoesNotReplyAgain()
    {
        _h.SendRaw(ReadRequest(800));
        var request = _h.Fs.Calls.Single().Request;
        request.ReplyData([1]);
        _h.SendRaw(InterruptRequest(800, 801));
        Assert.That(_interrupted, Is.Empty, "a replied request is unregistered");
        Assert.That(_h.Sink.Messages, Has.Count.EqualTo(1));
    }

    [Test]
    public void CallbackRunsOnce()
    {
        _h.SendRaw(ReadRequest(900));
        _h.SendRaw(InterruptRequest(900, 901));
        _h.SendRaw(InterruptRequest(900, 903));
        Assert.That(_interrupted, Has.Count.EqualTo(1));
        Assert.That(_h.Sink.Messages, Has.Count.EqualTo(1));
    }

    [Test]
    public void ShortInterrupt_IsEinval()
    {
        var reply = _h.SendRaw(Request(FuseOpcode.FUSE_INTERRUPT, 1001, 0, new byte[7]));
        Assert.That(reply, Is.EqualTo(new Expect(16).Header(-Errno.EINVAL, 1001).Buffer));
    }

    [Test]
    public void ManyEarlyInterrupts_AreBounded_AndRecentOnesStillDelivered()
    {
        for (ulong u = 0; u < 5000; u++)
            _h.SendRaw(InterruptRequest(100_000 + u, 1));
        Assert.That(_h.SendRaw(ReadRequest(100_000 + 4999)), Is.EqualTo(new Expect(16).Header(-Errno.EINTR, 104_999).Buffer));
        Assert.That(_h.SendRaw(ReadRequest(100_000)), Is.Null, "the oldest early interrupt was dropped");
    }

    [Test]
    public void ConcurrentInterruptAndRegistration_AlwaysDelivered()
    {
        for (ulong u = 1; u <= 300; u++)
        {
            var unique = 50_000 + u;
            var t = Task.Run(() => _h.Dispatcher.Dispatch(InterruptRequest(unique, unique + 1_000_000), _h.Sink));
            _h.Dispatcher.Dispatch(ReadRequest(unique), _h.Sink);
            t.Wait();
        }
        Assert.That(_interrupted, Has.Count.EqualTo(300));
    }
}
