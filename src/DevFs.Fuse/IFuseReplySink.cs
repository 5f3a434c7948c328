namespace DevFs.Fuse;

/// <summary>
/// Where replies and notifications go: a /dev/fuse channel in production, a recorder in tests.
/// A message is written whole in one call (the kernel takes one message per write).
/// </summary>
public interface IFuseReplySink
{
    /// <summary>Writes header, then body, then data as one message. Returns 0 or a negative errno.</summary>
    int Send(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body, ReadOnlySpan<byte> data);
}
