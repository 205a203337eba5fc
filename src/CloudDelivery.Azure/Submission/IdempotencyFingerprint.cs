using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Azure.Submission;

/// <summary>
/// What a keyed submission means, as one SHA-256: the envelope (sender, recipients in order, REQUIRETLS,
/// TLS-Required: No, tags sorted by name) in a length-prefixed encoding, then the message bytes exactly as
/// the request carried them (decoded from base64 for the JSON form), hashed while they stream so a large
/// message is never held. Two requests with one key and equal fingerprints are the same submission.
/// </summary>
internal sealed class IdempotencyFingerprint : IDisposable
{
    private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private string? finished;

    public IdempotencyFingerprint(SubmissionRequest request)
    {
        Append("clouddelivery-submission-1");
        Append(request.Sender);
        AppendCount(request.Recipients.Count);
        foreach (var recipient in request.Recipients)
        {
            Append(recipient);
        }
        AppendCount((request.RequireTls ? 1 : 0) | (request.TlsRequiredNo ? 2 : 0));
        var tags = request.Tags?.OrderBy(t => t.Key, StringComparer.Ordinal).ToList() ?? [];
        AppendCount(tags.Count);
        foreach (var (name, value) in tags)
        {
            Append(name);
            Append(value);
        }
        // The message comes last and unprefixed: everything before it is length-delimited.
    }

    /// <summary>The message stream, hashed into this fingerprint as it is read (by the queue, or by <see cref="ReadToEndAsync"/>).</summary>
    public HashingStream Wrap(Stream message) => new(message, this);

    /// <summary>Reads the rest of <paramref name="message"/> into the hash, storing nothing; more than <paramref name="maxBytes"/> is too large.</summary>
    public static async Task ReadToEndAsync(HashingStream message, long maxBytes, CancellationToken cancellationToken)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (await message.ReadAsync(buffer, cancellationToken) > 0)
            {
                if (message.BytesRead > maxBytes)
                {
                    throw new SubmissionException(SubmissionError.TooLarge, $"message exceeds the limit of {maxBytes} bytes");
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The fingerprint in lower-case hex; the message must have been read to its end.</summary>
    public string Finish() => finished ??= Convert.ToHexStringLower(hash.GetHashAndReset());

    private void Append(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        AppendCount(bytes.Length);
        hash.AppendData(bytes);
    }

    private void AppendCount(int count)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, count);
        hash.AppendData(length);
    }

    public void Dispose() => hash.Dispose();

    /// <summary>A message stream whose bytes go into the fingerprint as they are read. Does not own its inner stream.</summary>
    internal sealed class HashingStream(Stream inner, IdempotencyFingerprint fingerprint) : ReadOnlyForwardStream
    {
        public long BytesRead { get; private set; }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            fingerprint.hash.AppendData(buffer.Span[..read]);
            BytesRead += read;
            return read;
        }
    }
}
