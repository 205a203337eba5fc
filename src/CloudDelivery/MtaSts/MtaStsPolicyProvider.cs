using CloudDelivery.Addressing;
using CloudDelivery.Dns;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.MtaSts;

/// <summary>The policy that applies to a recipient domain now, and what to report about it.</summary>
/// <param name="Policy">The policy in force (any mode), or null when the domain has none.</param>
/// <param name="Result">The TLSRPT result for the recipient domain: "sts" with the policy, or "no-policy-found".</param>
/// <param name="TemporaryError">Set when the TXT lookup failed and no policy is cached: the caller aborts the attempt (unless TLS-Required: No).</param>
public sealed record MtaStsLookup(MtaStsPolicy? Policy, TlsRptResult Result, string? TemporaryError);

/// <summary>
/// Answers "which MTA-STS policy applies to this domain?" with a cache in front of DNS and HTTPS, following
/// RFC 8461 §5.1 and mox's mtastsdb: a cached policy is used while its id matches the TXT record; a new id
/// means a fetch; when fetching fails, an unexpired cached policy stays in force, so an attacker who blocks
/// the policy host cannot downgrade delivery.
/// </summary>
public sealed class MtaStsPolicyProvider
{
    /// <summary>After a failed fetch without a cached policy, how long to wait before fetching again.</summary>
    public static readonly TimeSpan FetchBackoff = TimeSpan.FromMinutes(5);

    /// <summary>A lookup writes <see cref="CachedMtaStsPolicy.LastUsed"/> only when the stored value is at least this old.</summary>
    public static readonly TimeSpan LastUsedResolution = TimeSpan.FromHours(1);

    private readonly DnsResolver resolver;
    private readonly MtaStsPolicyFetcher fetcher;
    private readonly IMtaStsPolicyStore store;
    private readonly TimeProvider time;

    public MtaStsPolicyProvider(DnsResolver resolver, MtaStsPolicyFetcher fetcher, IMtaStsPolicyStore store, TimeProvider? time = null)
    {
        this.resolver = resolver;
        this.fetcher = fetcher;
        this.store = store;
        this.time = time ?? TimeProvider.System;
    }

    public IMtaStsPolicyStore Store => store;

    /// <summary>The policy of <paramref name="domain"/>, the recipient domain as given (never a CNAME target).</summary>
    public async Task<MtaStsLookup> GetAsync(Domain domain, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var cached = await store.GetAsync(domain, cancellationToken);
        if (cached is not null && cached.ValidUntil <= now)
        {
            cached = null;
        }
        if (cached is not null)
        {
            // LastUsed only decides which entries the refresher keeps (unused for 180 days → deleted), so
            // an hour's resolution is plenty; writing it on every lookup would cost a storage write per
            // domain per delivery run.
            if (now - cached.LastUsed >= LastUsedResolution)
            {
                await store.TouchAsync(cached.Domain, now, cancellationToken);
                cached = cached with { LastUsed = now };
            }
            if (cached.Backoff)
            {
                return new MtaStsLookup(null, StsResult(domain, null, new TlsRptFailureDetails { ResultType = TlsRptResultType.StsPolicyFetchError, FailureReasonCode = "back-off-after-recent-fetch-error" }), null);
            }
        }

        var record = await LookupRecordAsync(domain, cancellationToken);
        if (cached?.Policy is { } cachedPolicy)
        {
            if (record.Record is null)
            {
                // No (valid) record now, but an unexpired policy: keep using it (RFC 8461 §5.1); a removed
                // record may be an attack, a real withdrawal publishes "mode: none" first.
                var detail = new TlsRptFailureDetails
                {
                    ResultType = TlsRptResultType.StsPolicyFetchError,
                    FailureReasonCode = record.ReasonCode + (cachedPolicy.Mode != MtaStsMode.None ? "+fallback-to-cached-policy" : string.Empty),
                };
                return new MtaStsLookup(cachedPolicy, StsResult(domain, cachedPolicy, detail), null);
            }
            if (record.Record.Id == cached.RecordId)
            {
                return new MtaStsLookup(cachedPolicy, PolicyResult(domain, cachedPolicy), null);
            }
            var refreshed = await fetcher.FetchAsync(domain, cancellationToken);
            if (refreshed.Policy is null)
            {
                var detail = refreshed.ToFailureDetails()! with { FailureReasonCode = refreshed.FailureReasonCode + "+fallback-to-cached-policy" };
                if (cached.LastError != refreshed.Error)
                {
                    // Only a new error is worth a write; the same one again would cost a write per message.
                    await store.PutAsync(cached with { LastError = refreshed.Error }, cancellationToken);
                }
                return new MtaStsLookup(cachedPolicy, StsResult(domain, cachedPolicy, detail), null);
            }
            await StoreAsync(domain, record.Record.Id, refreshed, now, cancellationToken);
            return new MtaStsLookup(refreshed.Policy, PolicyResult(domain, refreshed.Policy), null);
        }

        // Nothing usable cached.
        if (record.Record is null)
        {
            if (record.Temporary)
            {
                var detail = new TlsRptFailureDetails { ResultType = TlsRptResultType.StsPolicyFetchError, FailureReasonCode = record.ReasonCode };
                return new MtaStsLookup(null, StsResult(domain, null, detail), record.Error);
            }
            if (record.ReasonCode == "no-mta-sts-dns-txt-record")
            {
                return new MtaStsLookup(null, TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, domain.Ascii), null);
            }
            // A broken or duplicated record: as if the domain had none, but tell it (RFC 8461 §3.1).
            return new MtaStsLookup(null, StsResult(domain, null, new TlsRptFailureDetails { ResultType = TlsRptResultType.StsPolicyInvalid, FailureReasonCode = record.ReasonCode }), null);
        }
        var fetched = await fetcher.FetchAsync(domain, cancellationToken);
        if (fetched.Policy is null)
        {
            await store.PutAsync(new CachedMtaStsPolicy
            {
                Domain = domain.Ascii,
                RecordId = record.Record.Id,
                FetchedAt = now,
                ValidUntil = now + FetchBackoff,
                LastUsed = now,
                LastError = fetched.Error,
                Backoff = true,
            }, cancellationToken);
            return new MtaStsLookup(null, StsResult(domain, null, fetched.ToFailureDetails()!), null);
        }
        await StoreAsync(domain, record.Record.Id, fetched, now, cancellationToken);
        return new MtaStsLookup(fetched.Policy, PolicyResult(domain, fetched.Policy), null);
    }

    /// <summary>
    /// Fetches the policy now regardless of the cache and stores it (the refresh timer's and CLI's path).
    /// A failure leaves a cached policy in force until it expires (RFC 8461 §5.1) and is recorded as its
    /// <see cref="CachedMtaStsPolicy.LastError"/>; without a cached entry nothing is stored. A refresh is not a
    /// use: the entry keeps its <see cref="CachedMtaStsPolicy.LastUsed"/>, so refreshing never keeps an
    /// unused domain alive.
    /// </summary>
    public async Task<MtaStsFetchResult> RefreshAsync(Domain domain, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var cached = await store.GetAsync(domain, cancellationToken);
        var record = await LookupRecordAsync(domain, cancellationToken);
        var fetched = record.Record is null
            ? new MtaStsFetchResult(null, null, MtaStsFetchFailure.NoPolicy, record.Error, record.ReasonCode)
            : await fetcher.FetchAsync(domain, cancellationToken);
        if (fetched.Policy is not null)
        {
            await StoreAsync(domain, record.Record!.Id, fetched, now, cached?.LastUsed ?? now, cancellationToken);
        }
        else if (cached is not null)
        {
            await store.PutAsync(cached with { LastError = fetched.Error ?? fetched.FailureReasonCode }, cancellationToken);
        }
        return fetched;
    }

    private Task StoreAsync(Domain domain, string recordId, MtaStsFetchResult fetched, DateTimeOffset now, CancellationToken cancellationToken) =>
        StoreAsync(domain, recordId, fetched, now, now, cancellationToken);

    private Task StoreAsync(Domain domain, string recordId, MtaStsFetchResult fetched, DateTimeOffset now, DateTimeOffset lastUsed, CancellationToken cancellationToken) =>
        store.PutAsync(new CachedMtaStsPolicy
        {
            Domain = domain.Ascii,
            RecordId = recordId,
            PolicyText = fetched.Text!,
            FetchedAt = now,
            // RFC 8461 §3.2: max_age is how long the policy may be cached, counted from the fetch.
            ValidUntil = now + fetched.Policy!.MaxAge,
            LastUsed = lastUsed,
        }, cancellationToken);

    private async Task<RecordLookup> LookupRecordAsync(Domain domain, CancellationToken cancellationToken)
    {
        var txt = await resolver.LookupTxtAsync(domain.Prefixed("_mta-sts"), cancellationToken);
        if (txt.Failed)
        {
            var reason = txt.ExtendedError?.IsAuthenticationFailure == true ? txt.ExtendedError.TlsRptReasonCode : "dns-lookup";
            return new RecordLookup(null, true, reason, $"_mta-sts TXT lookup failed: {txt.Error}");
        }
        MtaStsRecord? found = null;
        foreach (var text in txt.Records.Where(MtaStsRecord.LooksLikeRecord))
        {
            if (found is not null)
            {
                return new RecordLookup(null, false, "multiple-mta-sts-records", "several _mta-sts TXT records (RFC 8461 §3.1)");
            }
            try
            {
                found = MtaStsRecord.Parse(text);
            }
            catch (MtaStsSyntaxException e)
            {
                return new RecordLookup(null, false, "record-syntax-error", $"_mta-sts record: {e.Message}");
            }
        }
        return found is null
            ? new RecordLookup(null, false, "no-mta-sts-dns-txt-record", "no _mta-sts TXT record")
            : new RecordLookup(found, false, string.Empty, null);
    }

    private static TlsRptResult PolicyResult(Domain domain, MtaStsPolicy policy) =>
        // RFC 8460 §4.4: a "none" policy is reported as no policy.
        policy.Mode == MtaStsMode.None ? TlsRptResult.For(TlsRptPolicyType.NoPolicyFound, domain.Ascii) : StsResult(domain, policy);

    private static TlsRptResult StsResult(Domain domain, MtaStsPolicy? policy, params TlsRptFailureDetails[] details)
    {
        var result = new TlsRptResult(new TlsRptPolicy
        {
            Type = TlsRptPolicyType.Sts,
            Domain = domain.Ascii,
            Strings = policy?.Lines ?? [],
            MxHosts = policy?.MxHostPatterns ?? [],
        });
        result.Add(0, 0, details);
        return result;
    }

    private sealed record RecordLookup(MtaStsRecord? Record, bool Temporary, string ReasonCode, string? Error);
}
