using CloudDelivery.Delivery;
using CloudDelivery.Loopback.Pki;
using CloudDelivery.Tests.Delivery;
using CloudDelivery.TlsRpt;

namespace CloudDelivery.Tests.TlsRpt;

/// <summary>
/// RFC 8460 §4.2: report consumers compute failure rates from the summary, so a session for which a failure
/// detail was recorded is counted once, as a failure, never also as a success.
/// </summary>
public class TlsRptSessionCountTests
{
    [Fact]
    public async Task A_session_that_failed_validation_under_mta_sts_testing_counts_as_a_failure_not_a_success()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("testing.example", 10, "mx.testing.example");
        world.PublishMtaSts("testing.example", "testing", ["mx.testing.example"]);
        var mx = await world.AddMxServerAsync("mx.testing.example", o => o.Certificate = TestPki.SelfSigned("mx.testing.example"));
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request("testing.example", DeliveryEngineTests.Message("s@x", "r@testing.example"), recipients: "r@testing.example"), CancellationToken.None);

        // "testing" delivers anyway (RFC 8461 §5) ...
        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        Assert.Single(mx.Messages);
        // ... but the one session had a validation failure, and the summary says so.
        var domainResult = outcome.RecipientDomainResult!;
        Assert.Equal(TlsRptPolicyType.Sts, domainResult.Policy.Type);
        var detail = Assert.Single(domainResult.FailureDetails);
        Assert.Equal(TlsRptResultType.CertificateNotTrusted, detail.ResultType);
        Assert.Equal(1, detail.FailedSessionCount);
        Assert.Equal(1, domainResult.Summary.TotalFailureSessionCount);
        Assert.Equal(0, domainResult.Summary.TotalSuccessfulSessionCount);
    }

    [Fact]
    public async Task An_opportunistic_session_without_starttls_counts_once_as_a_failure()
    {
        await using var world = await LoopbackWorld.StartAsync();
        world.Zone.AddMx("plaintext.example", 10, "mx.plaintext.example");
        await world.AddMxServerAsync("mx.plaintext.example", withCertificate: false);
        using var engine = world.CreateEngine();

        var outcome = await engine.DeliverAsync(DeliveryEngineTests.Request("plaintext.example", DeliveryEngineTests.Message("s@x", "r@plaintext.example"), recipients: "r@plaintext.example"), CancellationToken.None);

        Assert.Equal(RecipientStatus.Delivered, Assert.Single(outcome.Recipients).Status);
        foreach (var result in outcome.HostResults.Append(outcome.RecipientDomainResult!))
        {
            Assert.Equal(TlsRptResultType.StartTlsNotSupported, Assert.Single(result.FailureDetails).ResultType);
            Assert.Equal(1, result.Summary.TotalFailureSessionCount);
            Assert.Equal(0, result.Summary.TotalSuccessfulSessionCount);
        }
    }

    /// <summary>
    /// A property over generated session histories, in the shape the engine and SMTP session report them:
    /// details noted before a session (a policy fetch error, an MX mismatch under "testing"), details noted
    /// during it (a certificate check), then the session's count, or none when it ended without one.
    /// </summary>
    [Fact]
    public void For_any_history_each_session_with_a_failure_detail_is_counted_once_and_as_a_failure()
    {
        var random = new Random(8460);
        for (var run = 0; run < 2000; run++)
        {
            var result = new TlsRptResult(new TlsRptPolicy { Type = TlsRptPolicyType.Sts, Domain = "generated.example" });
            var sessions = random.Next(0, 6);
            long sessionsWithDetails = 0, cleanSuccesses = 0, counted = 0;
            var pendingFromBefore = false;
            for (var s = 0; s < sessions; s++)
            {
                var before = random.Next(0, 3);
                for (var i = 0; i < before; i++)
                {
                    result.Add(0, 0, Detail(random, "before"));
                }
                pendingFromBefore |= before > 0;
                var during = random.Next(0, 3);
                for (var i = 0; i < during; i++)
                {
                    result.Add(0, 0, Detail(random, $"during-{s}"));
                }
                var end = random.Next(0, 4);
                switch (end)
                {
                    case 0:
                        result.Add(1, 0);
                        break;
                    case 1:
                        result.Add(0, 1);
                        break;
                    case 2:
                        result.Add(0, 1, Detail(random, $"end-{s}"));
                        break;
                    default:
                        break; // the session ended without a count (plaintext, or a lost connection)
                }
                result.EndSession();
                var hadDetail = pendingFromBefore || during > 0 || end == 2;
                if (hadDetail || end is 0 or 1 or 2)
                {
                    counted++;
                    pendingFromBefore = false;
                }
                if (hadDetail)
                {
                    sessionsWithDetails++;
                }
                else if (end == 0)
                {
                    cleanSuccesses++;
                }
            }

            var summary = result.Summary;
            Assert.True(summary.TotalFailureSessionCount >= sessionsWithDetails, $"run {run}: {summary.TotalFailureSessionCount} failures < {sessionsWithDetails} sessions with details");
            Assert.Equal(cleanSuccesses, summary.TotalSuccessfulSessionCount);
            Assert.Equal(counted, summary.TotalSuccessfulSessionCount + summary.TotalFailureSessionCount);
            if (result.FailureDetails.Count > 0)
            {
                Assert.True(summary.TotalFailureSessionCount > 0);
            }

            // Merging (as a report does across runs) keeps both numbers.
            var merged = TlsRptReport.Merge([result, result]).Single();
            Assert.Equal(2 * summary.TotalFailureSessionCount, merged.Summary.TotalFailureSessionCount);
            Assert.Equal(2 * summary.TotalSuccessfulSessionCount, merged.Summary.TotalSuccessfulSessionCount);
        }
    }

    private static TlsRptFailureDetails Detail(Random random, string where) => new()
    {
        ResultType = random.Next(2) == 0 ? TlsRptResultType.CertificateNotTrusted : TlsRptResultType.StartTlsNotSupported,
        ReceivingIp = $"192.0.2.{random.Next(1, 4)}",
        FailureReasonCode = where,
    };
}
