using System.Runtime.CompilerServices;
using Azure;
using Azure.Data.Tables;
using CloudDelivery.Addressing;
using CloudDelivery.MtaSts;

namespace CloudDelivery.Azure.MtaSts;

/// <summary>
/// The MTA-STS policy cache in Azure Table Storage, shared by every worker: one entity per recipient domain
/// (PartitionKey = the domain's A-labels, RowKey = ""). Besides what the provider needs, each entity carries
/// the parsed mode, max_age and MX patterns, so operators can read the cache in Storage Explorer.
/// Writes are upserts (last writer wins, never a conflict); a touch merges LastUsed alone.
/// </summary>
public sealed class TableMtaStsPolicyStore(TableClient table) : IMtaStsPolicyStore
{
    // A table string property holds at most 64 KiB (32 K UTF-16 characters); the fetcher accepts policies up
    // to 64 KiB of UTF-8, so long texts are split over PolicyText, PolicyText1, PolicyText2...
    private const int ChunkChars = 30_000;
    private const int MaxChunks = 8;

    // The MX column is a summary for people; the full list is in the policy text.
    private const int MaxMxColumnChars = 4_000;

    // Edm.DateTime cannot hold dates before 1601.
    private static readonly DateTimeOffset EarliestStorable = new(1601, 1, 2, 0, 0, 0, TimeSpan.Zero);

    public TableClient Table => table;

    public async Task<CachedMtaStsPolicy?> GetAsync(Domain domain, CancellationToken cancellationToken)
    {
        try
        {
            var response = await table.GetEntityIfExistsAsync<TableEntity>(domain.Ascii, string.Empty, cancellationToken: cancellationToken);
            return response.HasValue ? FromEntity(response.Value!) : null;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null; // no table yet: nothing cached
        }
    }

    public Task PutAsync(CachedMtaStsPolicy policy, CancellationToken cancellationToken) =>
        WithTableAsync(() => table.UpsertEntityAsync(ToEntity(policy), TableUpdateMode.Replace, cancellationToken), cancellationToken);

    public async Task TouchAsync(string domain, DateTimeOffset lastUsed, CancellationToken cancellationToken)
    {
        var entity = new TableEntity(domain, string.Empty) { ["LastUsed"] = Storable(lastUsed) };
        try
        {
            // Merge with ETag * : only LastUsed is written, and only if the entity exists (no upsert, which
            // would create a half entity for a domain the refresher just deleted).
            await table.UpdateEntityAsync(entity, ETag.All, TableUpdateMode.Merge, cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
        }
    }

    public async IAsyncEnumerable<CachedMtaStsPolicy> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var entity in table.QueryAsync<TableEntity>(e => e.RowKey == string.Empty, cancellationToken: cancellationToken))
        {
            yield return FromEntity(entity);
        }
    }

    public async Task DeleteAsync(string domain, CancellationToken cancellationToken)
    {
        try
        {
            await table.DeleteEntityAsync(domain, string.Empty, ETag.All, cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
        }
    }

    /// <summary>Runs a write, creating the table first when it does not exist yet (a host that skipped EnsureCreated).</summary>
    private async Task WithTableAsync(Func<Task<Response>> write, CancellationToken cancellationToken)
    {
        try
        {
            await write();
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            await table.CreateIfNotExistsAsync(cancellationToken);
            await write();
        }
    }

    private static TableEntity ToEntity(CachedMtaStsPolicy policy)
    {
        var entity = new TableEntity(policy.Domain, string.Empty)
        {
            ["RecordId"] = policy.RecordId,
            ["Backoff"] = policy.Backoff,
        };
        // Absent rather than null: a replace drops what the new entity does not have.
        SetIfPresent(entity, "FetchedAt", Storable(policy.FetchedAt));
        SetIfPresent(entity, "ValidUntil", Storable(policy.ValidUntil));
        SetIfPresent(entity, "LastUsed", Storable(policy.LastUsed));
        SetIfPresent(entity, "LastError", policy.LastError);
        var text = policy.PolicyText;
        if (text.Length > ChunkChars * MaxChunks)
        {
            throw new ArgumentException($"policy text of {policy.Domain} is {text.Length} characters, more than a table entity holds", nameof(policy));
        }
        for (var i = 0; i * ChunkChars < text.Length || i == 0; i++)
        {
            entity[ChunkName(i)] = text.Substring(i * ChunkChars, Math.Min(ChunkChars, text.Length - (i * ChunkChars)));
        }
        // For operators only: the provider reparses PolicyText.
        if (policy.Policy is { } parsed)
        {
            entity["Mode"] = parsed.Mode.ToString().ToLowerInvariant();
            entity["MaxAgeSeconds"] = (long)parsed.MaxAge.TotalSeconds;
            var mx = string.Join(' ', parsed.MxHostPatterns);
            entity["Mx"] = mx.Length <= MaxMxColumnChars ? mx : mx[..MaxMxColumnChars] + " ...";
        }
        return entity;
    }

    private static CachedMtaStsPolicy FromEntity(TableEntity entity)
    {
        var text = new System.Text.StringBuilder();
        for (var i = 0; i < MaxChunks && entity.GetString(ChunkName(i)) is { } chunk; i++)
        {
            text.Append(chunk);
        }
        return new CachedMtaStsPolicy
        {
            Domain = entity.PartitionKey,
            RecordId = entity.GetString("RecordId") ?? string.Empty,
            PolicyText = text.ToString(),
            FetchedAt = entity.GetDateTimeOffset("FetchedAt") ?? default,
            ValidUntil = entity.GetDateTimeOffset("ValidUntil") ?? default,
            LastUsed = entity.GetDateTimeOffset("LastUsed") ?? default,
            LastError = entity.GetString("LastError"),
            Backoff = entity.GetBoolean("Backoff") ?? false,
        };
    }

    private static void SetIfPresent(TableEntity entity, string name, object? value)
    {
        if (value is not null)
        {
            entity[name] = value;
        }
    }

    private static string ChunkName(int i) => i == 0 ? "PolicyText" : $"PolicyText{i}";

    private static DateTimeOffset? Storable(DateTimeOffset value) => value < EarliestStorable ? null : value.ToUniversalTime();
}
