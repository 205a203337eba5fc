using CloudDelivery.Azure.Queue;
namespace CloudDelivery.Azure.Submission;

/// <summary>
/// Passes a submitted message through while it is stored, so it is read once and never held in memory:
/// bare LF line endings become CRLF (RFC 5321 §2.3.8), a final CRLF is added when missing, and on the way
/// it notes 8-bit bytes, UTF-8 in the header section and a "TLS-Required: No" header, and takes the
/// <c>X-CloudDelivery-Tags</c> fields out of the header section (see <see cref="MessageTags"/>). Exceeding
/// the size limit, or tags out of bounds, fails the read, which fails the upload.
/// </summary>
/// <param name="inner">The submitted message.</param>
/// <param name="maxBytes">The largest message stored.</param>
/// <param name="requestTags">The request's own tags (JSON or CLI), merged with the header's when the header section ends.</param>
internal sealed class SubmissionStream(Stream inner, long maxBytes, IReadOnlyDictionary<string, string>? requestTags = null) : ReadOnlyForwardStream
{
    private const int MaxHeaderLine = 8192;
    private const int ReadSize = 64 * 1024;
    private static readonly byte[] FinalCrLf = "\r\n"u8.ToArray();
    // Pooled, because one stream serves one submission: a fresh 64 + 128 KiB per message would be
    // zeroed (and the larger one land on the large object heap) thousands of times a second.
    private readonly byte[] readBuffer = System.Buffers.ArrayPool<byte>.Shared.Rent(ReadSize);
    // Each read can at most double (every byte a bare LF that becomes CRLF).
    private readonly byte[] transformed = System.Buffers.ArrayPool<byte>.Shared.Rent(2 * ReadSize);
    private bool disposed;
    private readonly System.Text.StringBuilder headerLine = new();
    private byte[] pending = [];
    private int pendingLength;
    private int pendingOffset;
    private byte previous;
    private byte beforePrevious;
    private bool innerDone;
    private bool trailerWritten;
    private bool inHeaders = true;
    private bool lineIsEmpty = true;
    private byte previousInput;
    private readonly TagHeaderFilter tagFilter = new();

    public long StoredLength { get; private set; }

    public bool Has8Bit { get; private set; }

    public bool HeadersHave8Bit { get; private set; }

    public bool TlsRequiredNo { get; private set; }

    /// <summary>
    /// The message's tags, the request's merged with the header's (<see cref="MessageTags.Merge"/>); set
    /// once the header section has been read, which is before the first read returns its end.
    /// </summary>
    public IReadOnlyDictionary<string, string>? Tags { get; private set; } = requestTags is { Count: > 0 } ? requestTags : null;

    public override long Position { get => StoredLength; set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (pendingOffset >= pendingLength)
        {
            if (innerDone)
            {
                if (trailerWritten)
                {
                    return 0;
                }
                trailerWritten = true;
                // RFC 5321 §4.1.1.4: the data ends with CRLF before the terminating dot.
                pending = FinalCrLf;
                pendingLength = StoredLength > 0 && previous == '\n' && beforePrevious == '\r' ? 0 : FinalCrLf.Length;
                pendingOffset = 0;
                StoredLength += pendingLength;
                continue;
            }
            ObjectDisposedException.ThrowIf(disposed, this);
            var read = await inner.ReadAsync(readBuffer.AsMemory(0, ReadSize), cancellationToken);
            if (read == 0)
            {
                innerDone = true;
                // A message that ends inside the header section: what was held back of a field name goes
                // out, and the header's tags are complete.
                pending = transformed;
                pendingLength = 0;
                pendingOffset = 0;
                if (inHeaders)
                {
                    foreach (var held in tagFilter.Flush())
                    {
                        Emit(ref pendingLength, held);
                    }
                    FinishHeaders();
                }
                continue;
            }
            pending = transformed;
            pendingLength = Transform(readBuffer.AsSpan(0, read));
            pendingOffset = 0;
        }
        var n = Math.Min(buffer.Length, pendingLength - pendingOffset);
        pending.AsMemory(pendingOffset, n).CopyTo(buffer);
        pendingOffset += n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Normalises <paramref name="input"/> into <see cref="transformed"/>; returns the length written.</summary>
    private int Transform(ReadOnlySpan<byte> input)
    {
        var length = 0;
        foreach (var b in input)
        {
            if (b == '\n' && previousInput != '\r')
            {
                Accept(ref length, (byte)'\r');
            }
            Accept(ref length, b);
            previousInput = b;
        }
        if (StoredLength > maxBytes)
        {
            throw new SubmissionException(SubmissionError.TooLarge, $"message exceeds the limit of {maxBytes} bytes");
        }
        return length;
    }

    /// <summary>A normalised byte: in the header section through the tag filter, which drops the tag fields' bytes.</summary>
    private void Accept(ref int length, byte b)
    {
        if (!inHeaders)
        {
            Emit(ref length, b);
            return;
        }
        foreach (var passed in tagFilter.Accept(b))
        {
            Emit(ref length, passed);
        }
    }

    /// <summary>The header section is over: the tags are the request's and the header's, within bounds, or the read fails.</summary>
    private void FinishHeaders() => Tags = MessageTags.Merge(requestTags, MessageTags.ParseHeader(tagFilter.FieldValues));

    private void Emit(ref int length, byte b)
    {
        transformed[length++] = b;
        StoredLength++;
        if (b >= 0x80)
        {
            Has8Bit = true;
            HeadersHave8Bit |= inHeaders;
        }
        if (inHeaders)
        {
            if (b == '\n')
            {
                if (lineIsEmpty)
                {
                    inHeaders = false;
                    FinishHeaders();
                }
                else if (IsTlsRequiredNo(headerLine.ToString()))
                {
                    TlsRequiredNo = true;
                }
                headerLine.Clear();
                lineIsEmpty = true;
            }
            else if (b != '\r')
            {
                lineIsEmpty = false;
                if (headerLine.Length < MaxHeaderLine)
                {
                    headerLine.Append((char)b);
                }
            }
        }
        beforePrevious = previous;
        previous = b;
    }

    private static bool IsTlsRequiredNo(string line)
    {
        var colon = line.IndexOf(':', StringComparison.Ordinal);
        // RFC 8689 §5: "TLS-Required: No", case-insensitive.
        return colon > 0 && line[..colon].Trim().Equals("TLS-Required", StringComparison.OrdinalIgnoreCase) && line[(colon + 1)..].Trim().Equals("No", StringComparison.OrdinalIgnoreCase);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !disposed)
        {
            disposed = true;
            System.Buffers.ArrayPool<byte>.Shared.Return(readBuffer);
            System.Buffers.ArrayPool<byte>.Shared.Return(transformed);
        }
        base.Dispose(disposing);
    }
}
