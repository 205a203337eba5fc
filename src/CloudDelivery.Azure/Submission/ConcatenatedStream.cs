namespace CloudDelivery.Azure.Submission;

/// <summary>Reads one stream, then another: the already-read start of a body followed by the rest.</summary>
internal sealed class ConcatenatedStream(Stream first, Stream second) : ReadOnlyForwardStream
{
    private bool firstDone;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!firstDone)
        {
            var read = await first.ReadAsync(buffer, cancellationToken);
            if (read > 0)
            {
                return read;
            }
            firstDone = true;
        }
        return await second.ReadAsync(buffer, cancellationToken);
    }


    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            first.Dispose();
        }
        base.Dispose(disposing);
    }
}
