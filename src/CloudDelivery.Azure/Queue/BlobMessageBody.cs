using Azure.Storage.Blobs;
using CloudDelivery.Messages;

namespace CloudDelivery.Azure.Queue;

/// <summary>
/// A stored message body. Small bodies are downloaded once and kept for the run (a message split over
/// several transactions or retried on another host is read once); large ones are streamed from Blob
/// Storage for each transaction, so memory stays flat in message size.
/// </summary>
internal sealed class BlobMessageBody(BlobClient blob, long length) : MessageBody
{
    private const long CacheLimit = 1024 * 1024;
    private byte[]? cached;

    public override long Length => length;

    /// <summary>Submission normalised the ending.</summary>
    public override bool? EndsWithCrLf => true;

    public override Stream OpenRead()
    {
        if (cached is not null)
        {
            return new MemoryStream(cached, writable: false);
        }
        if (length <= CacheLimit)
        {
            cached = blob.DownloadContent().Value.Content.ToArray();
            return new MemoryStream(cached, writable: false);
        }
        return blob.OpenRead(new global::Azure.Storage.Blobs.Models.BlobOpenReadOptions(allowModifications: false) { BufferSize = 256 * 1024 });
    }
}
