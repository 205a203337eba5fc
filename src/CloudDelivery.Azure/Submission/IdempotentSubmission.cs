using System.Text.Json;
using CloudDelivery.Azure.Queue;

namespace CloudDelivery.Azure.Submission;

/// <summary>
/// A submission with an Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): the first request
/// with a key reserves it with the message id it will store under, stores the message and keeps its
/// answer with a fingerprint of what it meant (<see cref="IdempotencyFingerprint"/>). A repeat within
/// <see cref="OutboundQueueOptions.IdempotencyWindow"/> gets that answer and stores nothing; one that
/// means something else gets 422; one that arrives while the first is still storing waits for it.
/// A first request that stopped part-way (it crashed, or its storage write committed while its reply was
/// lost) is finished by the next request with the key: the message id is the reserved one and record ids
/// are deterministic, so it stores only the recipient domains that are missing.
/// </summary>
/// <param name="queue">Where messages are stored; its storage holds the keys, its clock times them.</param>
/// <param name="waitForOwner">How long a repeat waits for a first request still storing before it answers 409.</param>
/// <param name="staleAfter">How long a reservation may stay pending before its owner counts as gone and the next request takes over.</param>
public sealed class IdempotentSubmission(OutboundQueue queue, TimeSpan? waitForOwner = null, TimeSpan? staleAfter = null)
{
    /// <summary>Longer than a typical submission takes, shorter than HTTP clients' usual timeouts.</summary>
    public static readonly TimeSpan DefaultWaitForOwner = TimeSpan.FromSeconds(30);

    /// <summary>
    /// After this long pending, a reservation's owner is presumed gone. A submission that truly takes
    /// longer (a large body sent slowly) may then be finished twice in parallel; both store under the
    /// same record ids, so the second write of a domain fails instead of storing a duplicate.
    /// </summary>
    public static readonly TimeSpan DefaultStaleAfter = TimeSpan.FromMinutes(2);

    private static readonly TimeSpan FirstPoll = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan LongestPoll = TimeSpan.FromSeconds(1);

    private readonly IdempotencyStore store = new(queue.Storage.Idempotency);
    private readonly TimeSpan wait = waitForOwner ?? DefaultWaitForOwner;
    private readonly TimeSpan stale = staleAfter ?? DefaultStaleAfter;

    /// <summary>Tests only: runs once the message is stored and before the key is completed (a throw plays a lost reply).</summary>
    internal Func<SubmissionResult, Task>? AfterStoredForTests { get; set; }

    /// <summary>Submits <paramref name="request"/> under <paramref name="key"/>; throws as <see cref="OutboundQueue.SubmitAsync"/> does.</summary>
    public async Task<HttpSubmissionResponse> SubmitAsync(string key, SubmissionRequest request, CancellationToken cancellationToken)
    {
        using var fingerprint = new IdempotencyFingerprint(request);
        var message = fingerprint.Wrap(request.Message);
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var now = queue.Time.GetUtcNow();
            var (reservation, owned) = await store.ReserveAsync(key, Guid.CreateVersion7(now).ToString("N"), now, queue.Options.IdempotencyWindow, cancellationToken);
            if (owned)
            {
                return await StoreAsync(reservation, request, message, fingerprint, resuming: false, cancellationToken);
            }
            if (await AnswerAsHeldAsync(key, reservation, request, message, fingerprint, cancellationToken) is { } answer)
            {
                return answer;
            }
        }
        return InProgress();
    }

    /// <summary>
    /// Answers a request whose key someone else holds: from the completed answer, by finishing an
    /// interrupted or stale submission, or after waiting for the owner; null when the key was freed meanwhile.
    /// </summary>
    private async Task<HttpSubmissionResponse?> AnswerAsHeldAsync(string key, IdempotencyReservation held, SubmissionRequest request, IdempotencyFingerprint.HashingStream message, IdempotencyFingerprint fingerprint, CancellationToken cancellationToken)
    {
        var deadline = queue.Time.GetUtcNow() + wait;
        var poll = FirstPoll;
        IdempotencyReservation? current = held;
        while (current is not null)
        {
            var now = queue.Time.GetUtcNow();
            if (current.State == ReservationState.Completed)
            {
                // The body is read (hashed, not stored) only now: until here it may still be needed to finish a submission.
                await IdempotencyFingerprint.ReadToEndAsync(message, queue.Options.MaxMessageBytes, cancellationToken);
                return current.Fingerprint == fingerprint.Finish() && current.Response is { } original
                    ? original
                    : Error(422, "idempotency-key-reused", "this Idempotency-Key was used for a different submission; use a new key for a new message");
            }
            if (current.State == ReservationState.Interrupted || now - current.CreatedAt >= stale)
            {
                if (await store.ClaimAsync(current, now, cancellationToken) is { } claimed)
                {
                    return await StoreAsync(claimed, request, message, fingerprint, resuming: true, cancellationToken);
                }
            }
            else if (now >= deadline)
            {
                return InProgress();
            }
            else
            {
                await Task.Delay(poll, queue.Time, cancellationToken);
                poll = poll * 2 > LongestPoll ? LongestPoll : poll * 2;
            }
            current = await store.ReadAsync(key, cancellationToken);
        }
        return null;
    }

    /// <summary>
    /// Stores the message under the reservation's id, as its owner. Resuming, the domains already stored
    /// are skipped. A client error with nothing stored frees the key; any other failure leaves it
    /// interrupted, so the next request with the key finishes what may have been stored.
    /// </summary>
    private async Task<HttpSubmissionResponse> StoreAsync(IdempotencyReservation owned, SubmissionRequest request, IdempotencyFingerprint.HashingStream message, IdempotencyFingerprint fingerprint, bool resuming, CancellationToken cancellationToken)
    {
        ResumedSubmission? resume = null;
        SubmissionResult result;
        try
        {
            resume = resuming ? await StoredPartAsync(owned.MessageId, request.Recipients, cancellationToken) : null;
            result = await queue.SubmitAsync(request with { Message = message, MessageId = owned.MessageId, Resume = resume }, cancellationToken);
            // Resuming, the queue reused the stored body and did not read this one: the fingerprint still needs it.
            await IdempotencyFingerprint.ReadToEndAsync(message, queue.Options.MaxMessageBytes, cancellationToken);
            if (AfterStoredForTests is { } hook)
            {
                await hook(result);
            }
        }
        catch (Exception e) when (IsClientError(e, cancellationToken) && (!resuming || resume is { StoredPartitions.Count: 0 }))
        {
            await store.ReleaseAsync(owned, CancellationToken.None);
            throw;
        }
        catch
        {
            // Storage trouble or the client gone: records may have been written. Not cancellable, so the
            // mark lands even when the client left; if storage fails it too, the reservation goes stale instead.
            try
            {
                await store.MarkInterruptedAsync(owned, CancellationToken.None);
            }
            catch (Exception mark) when (SubmissionEndpoint.IsStorageTrouble(mark, CancellationToken.None))
            {
            }
            throw;
        }
        var answer = SubmissionEndpoint.Accepted(result);
        try
        {
            // Lost to a takeover (this owner was slow past the stale age): the taker answers with the same message id.
            await store.CompleteAsync(owned, fingerprint.Finish(), answer, CancellationToken.None);
        }
        catch (Exception e) when (SubmissionEndpoint.IsStorageTrouble(e, CancellationToken.None))
        {
            // The message is stored: say so. The key stays pending; a repeat finishes it once it is stale.
        }
        return answer;
    }

    /// <summary>
    /// Which of the message's domains already have their records, and in which partition: a point read of
    /// the first row in each shard the message can have gone to (the bare domain first; see
    /// <see cref="DomainPartition.PossibleShards"/>: a few reads per domain whatever the shard count was).
    /// </summary>
    private async Task<ResumedSubmission> StoredPartAsync(string messageId, IReadOnlyList<string> recipients, CancellationToken cancellationToken)
    {
        var domains = OutboundQueue.DomainsOf(recipients);
        var stored = new Dictionary<string, string>(StringComparer.Ordinal);
        RecipientRecord? sample = null;
        foreach (var domain in domains)
        {
            foreach (var shard in DomainPartition.PossibleShards(messageId))
            {
                var partition = DomainPartition.Of(domain, shard);
                var found = await queue.Storage.Recipients.GetEntityIfExistsAsync<RecipientRecord>(partition, $"{messageId}.0000", cancellationToken: cancellationToken);
                if (found.HasValue)
                {
                    stored[domain] = partition;
                    sample ??= found.Value;
                    break;
                }
            }
        }
        // An inline body lives in its own partition's record and cannot serve another domain (see ResumedSubmission).
        if (sample?.Body == RecipientRecord.InlineBodyMarker && stored.Count < domains.Count)
        {
            sample = null;
        }
        return new ResumedSubmission(stored, sample);
    }

    private static bool IsClientError(Exception e, CancellationToken cancellationToken) =>
        e is SubmissionException or SubmissionEndpoint.BadRequestException
        || (e is IOException && !cancellationToken.IsCancellationRequested);

    private static HttpSubmissionResponse InProgress() =>
        new(409, JsonSerializer.Serialize(new { error = "idempotency-key-in-progress", message = "a request with this Idempotency-Key is still being stored; retry after a moment" }), SubmissionEndpoint.RetryAfterSeconds);

    private static HttpSubmissionResponse Error(int status, string code, string message) =>
        new(status, JsonSerializer.Serialize(new { error = code, message }));
}
