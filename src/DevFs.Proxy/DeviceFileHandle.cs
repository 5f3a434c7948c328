using System.Runtime.InteropServices;
using static Tmds.Linux.LibC;

namespace DevFs.Proxy;

/// <summary>
/// A descriptor of a real device node that the daemon opened. Reference-counted (SafeHandle), so a
/// revocation never closes the number while another thread is inside a read or write on it: closing
/// waits for the last user, and the number cannot be reused under a call in flight.
/// </summary>
public sealed class DeviceFileHandle : SafeHandle
{
    public DeviceFileHandle(int fd) : base(new IntPtr(-1), ownsHandle: true) => SetHandle(new IntPtr(fd));

    public override bool IsInvalid => handle.ToInt64() < 0;

    public int Fd => (int)handle.ToInt64();

    protected override bool ReleaseHandle() => close(Fd) == 0;
}
