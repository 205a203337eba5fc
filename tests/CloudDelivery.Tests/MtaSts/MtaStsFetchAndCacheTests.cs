using CloudDelivery.Addressing;
using CloudDelivery.Dialing;
using CloudDelivery.Dns;
using CloudDelivery.Loopback.Https;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.MtaSts;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Tests.MtaSts;

/// <summary>Policy fetching over real HTTPS and the cache's behaviour over time.</summary>
public sealed class MtaStsFetchAndCacheTests : IAsyncLifetime
{
    private LoopbackWorld world = null!;
    private DnsResolver resolver = null!;

    public async Task InitializeAsync()
    {
        world = await LoopbackWorld.StartAsync();
        resolver = new DnsResolver(new DnsResolverOptions { Server = world.Dns.EndPoint, QueryTimeout = TimeSpan.FromSeconds(3), Retries = 1 });
    }

    public async Task DisposeAsync() => await world.DisposeAsync();

    private MtaStsPolicyFetcher Fetcher(TimeSpan? timeout = null, AddressPolicy? addressPolicy = null, TimeProvider? time = null) => new(resolver, new MtaStsFetchOptions
    {
        HttpsPort = world.MtaSts.EndPoint.Port,
        AddressPolicy = addressPolicy ?? AddressPolicy.AllowPrivate,
        ExtraTrustRoots = [world.Pki.Root],
        Timeout = timeout ?? TimeSpan.FromSeconds(5),
    }, time);

    [Fact]
    public async Task Policy_is_fetched_over_https_and_parsed()
    {
        world.PublishMtaSts("fetch.example", "enforce", ["mx.fetch.example"]);

        var result = await Fetcher().FetchAsync(Domain.Parse("fetch.example"), CancellationToken.None);

        Assert.Null(result.Failure);
        Assert.Equal(MtaStsMode.Enforce, result.Policy!.Mode);
        Assert.Contains("mode: enforce", result.Policy.Lines);
    }

    [Theory]
    [InlineData(MtaStsServerBehaviour.Redirect, MtaStsFetchFailure.FetchError)]
    [InlineData(MtaStsServerBehaviour.Oversized, MtaStsFetchFailure.FetchError)]
    [InlineData(MtaStsServerBehaviour.ServerError, MtaStsFetchFailure.FetchError)]
    [InlineData(MtaStsServerBehaviour.NotFound, MtaStsFetchFailure.NoPolicy)]
    [InlineData(MtaStsServerBehaviour.WrongContentType, MtaStsFetchFailure.PolicyInvalid)]
    public async Task Misbehaving_policy_servers_give_named_failures(MtaStsServerBehaviour behaviour, MtaStsFetchFailure expected)
    {
        var domain = $"{behaviour.ToString().ToLowerInvariant()}.example";
        world.PublishMtaSts(domain, "enforce", ["mx." + domain], behaviour: behaviour);

        var result = await Fetcher().FetchAsync(Domain.Parse(domain), CancellationToken.None);

        Assert.Equal(expected, result.Failure);
        Assert.Null(result.Policy);
    }

    [Fact]
    public async Task Slow_policy_server_times_out()
    {
        world.PublishMtaSts("slow.example", "enforce", ["mx.slow.example"], behaviour: MtaStsServerBehaviour.Slow);

        var result = await Fetcher(timeout: TimeSpan.FromSeconds(2)).FetchAsync(Domain.Parse("slow.example"), CancellationToken.None);

        Assert.Equal(MtaStsFetchFailure.FetchError, result.Failure);
        Assert.Contains("timed out", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_policy_host_dripping_its_headers_times_out_as_a_whole()
    {
        // Every byte would reset an idle timeout; the fetch deadline covers headers and body together.
        world.PublishMtaSts("slowheaders.example", "enforce", ["mx.slowheaders.example"], behaviour: MtaStsServerBehaviour.SlowHeaders);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var result = await Fetcher(timeout: TimeSpan.FromSeconds(2)).FetchAsync(Domain.Parse("slowheaders.example"), CancellationToken.None);

        Assert.Equal(MtaStsFetchFailure.FetchError, result.Failure);
        Assert.Contains("timed out", result.Error, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_policy_body_that_never_ends_is_cut_at_the_size_cap_without_a_content_length()
    {
        world.PublishMtaSts("endless.example", "enforce", ["mx.endless.example"], behaviour: MtaStsServerBehaviour.Endless);

        var result = await Fetcher(timeout: TimeSpan.FromSeconds(30)).FetchAsync(Domain.Parse("endless.example"), CancellationToken.None);

        Assert.Equal(MtaStsFetchFailure.FetchError, result.Failure);
        Assert.Contains("larger than 65536 bytes", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_fetch_timeout_setting_reaches_the_engine_so_a_dripping_policy_host_cannot_hold_a_delivery()
    {
        world.Zone.AddMx("dripping.example", 10, "mx.dripping.example");
        world.PublishMtaSts("dripping.example", "enforce", ["mx.dripping.example"], behaviour: MtaStsServerBehaviour.Slow);
        var mx = await world.AddMxServerAsync("mx.dripping.example");
        var fetch = new CloudDelivery.Delivery.DeliveryOptions { MtaStsFetchTimeoutSeconds = 2 }.ToMtaStsFetchOptions(roots: null);
        Assert.Equal(TimeSpan.FromSeconds(2), fetch.Timeout);
        using var engine = world.CreateEngine(mtaStsFetchTimeout: fetch.Timeout);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request("dripping.example", DeliveryEngineTests.Message("s@x", "r@dripping.example"), recipients: "r@dripping.example"), CancellationToken.None);

        // No policy could be fetched and none was cached: delivery goes on as without MTA-STS (RFC 8461 §5),
        // and the failed fetch is reported.
        Assert.Equal(CloudDelivery.Delivery.RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Single(mx.Messages);
        Assert.Contains(outcome.RecipientDomainResult!.FailureDetails, d => d.ResultType == TlsRptResultType.StsPolicyFetchError);
        // The policy takes over a minute to drip; the configured 2 s decide.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Untrusted_policy_certificate_is_sts_webpki_invalid()
    {
        world.PublishMtaSts("selfsigned.example", "enforce", ["mx.selfsigned.example"], certificate: TestPki.SelfSigned("mta-sts.selfsigned.example"));

        var result = await Fetcher().FetchAsync(Domain.Parse("selfsigned.example"), CancellationToken.None);

        Assert.Equal(MtaStsFetchFailure.WebPkiInvalid, result.Failure);
        Assert.Equal(TlsRptResultType.StsWebPkiInvalid, result.ToFailureDetails()!.ResultType);
        Assert.StartsWith(TlsRptResultType.CertificateNotTrusted, result.FailureReasonCode, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_host_on_a_private_address_is_not_dialled_by_default()
    {
        world.PublishMtaSts("privatepolicy.example", "enforce", ["mx.privatepolicy.example"]);
        var before = world.MtaSts.RequestCount;

        var result = await Fetcher(addressPolicy: AddressPolicy.PublicOnly).FetchAsync(Domain.Parse("privatepolicy.example"), CancellationToken.None);

        Assert.Equal(MtaStsFetchFailure.FetchError, result.Failure);
        Assert.Contains("loopback", result.Error, StringComparison.Ordinal);
        Assert.Equal(before, world.MtaSts.RequestCount);
    }

    [Fact]
    public async Task Cache_serves_fresh_policy_refetches_on_new_id_and_falls_back_when_the_fetch_fails()
    {
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        var store = new InMemoryMtaStsPolicyStore();
        var provider = new MtaStsPolicyProvider(resolver, Fetcher(time: time), store, time);
        var domain = Domain.Parse("cache.example");
        world.PublishMtaSts("cache.example", "enforce", ["mx1.cache.example"], id: "one");

        var first = await provider.GetAsync(domain, CancellationToken.None);
        var requestsAfterFirst = world.MtaSts.RequestCount;
        var second = await provider.GetAsync(domain, CancellationToken.None);

        Assert.True(first.Policy!.Matches(Domain.Parse("mx1.cache.example")));
        Assert.Equal(TlsRptPolicyType.Sts, first.Result.Policy.Type);
        Assert.Equal(requestsAfterFirst, world.MtaSts.RequestCount); // same id: served from the cache
        Assert.True(second.Policy!.Matches(Domain.Parse("mx1.cache.example")));

        // A new id means a new policy.
        world.Zone.Remove("_mta-sts.cache.example");
        world.PublishMtaSts("cache.example", "enforce", ["mx2.cache.example"], id: "two");
        var third = await provider.GetAsync(domain, CancellationToken.None);
        Assert.True(third.Policy!.Matches(Domain.Parse("mx2.cache.example")));

        // The policy host breaks and the id changes again: the cached, unexpired policy stays (RFC 8461 §5.1).
        world.Zone.Remove("_mta-sts.cache.example");
        world.PublishMtaSts("cache.example", "enforce", ["mx3.cache.example"], id: "three", behaviour: MtaStsServerBehaviour.ServerError);
        var fourth = await provider.GetAsync(domain, CancellationToken.None);
        Assert.True(fourth.Policy!.Matches(Domain.Parse("mx2.cache.example")));
        Assert.Contains(fourth.Result.FailureDetails, d => d.ResultType == TlsRptResultType.StsPolicyFetchError && d.FailureReasonCode.EndsWith("+fallback-to-cached-policy", StringComparison.Ordinal));

        // Once max_age has passed, the old policy is gone; with the host still broken there is no policy.
        time.Advance(TimeSpan.FromDays(2));
        var fifth = await provider.GetAsync(domain, CancellationToken.None);
        Assert.Null(fifth.Policy);
        Assert.Contains(fifth.Result.FailureDetails, d => d.ResultType == TlsRptResultType.StsPolicyFetchError);
    }

    [Fact]
    public async Task Removed_record_keeps_an_unexpired_policy_and_dns_failure_is_temporary()
    {
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        var provider = new MtaStsPolicyProvider(resolver, Fetcher(time: time), new InMemoryMtaStsPolicyStore(), time);
        world.PublishMtaSts("removed.example", "enforce", ["mx.removed.example"]);
        Assert.NotNull((await provider.GetAsync(Domain.Parse("removed.example"), CancellationToken.None)).Policy);

        world.Zone.Remove("_mta-sts.removed.example");
        var afterRemoval = await provider.GetAsync(Domain.Parse("removed.example"), CancellationToken.None);
        Assert.NotNull(afterRemoval.Policy);

        world.Zone.MarkServFail("_mta-sts.broken.example");
        var broken = await provider.GetAsync(Domain.Parse("broken.example"), CancellationToken.None);
        Assert.Null(broken.Policy);
        Assert.NotNull(broken.TemporaryError);
    }

    [Fact]
    public async Task Domain_without_record_has_no_policy_found()
    {
        var provider = new MtaStsPolicyProvider(resolver, Fetcher(), new InMemoryMtaStsPolicyStore());

        var lookup = await provider.GetAsync(Domain.Parse("nothing.example"), CancellationToken.None);

        Assert.Null(lookup.Policy);
        Assert.Null(lookup.TemporaryError);
        Assert.Equal(TlsRptPolicyType.NoPolicyFound, lookup.Result.Policy.Type);
    }
}
