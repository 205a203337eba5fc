using CloudDelivery.Addressing;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Azure.Suppression;
using CloudDelivery.Cli;
using CloudDelivery.Loopback.Smtp;
using CloudDelivery.Tests.Queue;

namespace CloudDelivery.Tests.Suppression;

/// <summary>
/// The suppression list in the recipient lifecycle, over Azurite and loopback DNS and SMTP peers: what
/// bounces add, what a submission to a suppressed address does, and what removal undoes.
/// </summary>
[Collection(AzuriteCollection.Name)]
public class SuppressionDeliveryTests(AzuriteFixture azurite)
{
    private static readonly SmtpServerReply NoSuchUser = new(550, "5.1.1", "no such user");

    /// <summary>A queue world whose queue and handler use a suppression list over its own table.</summary>
    private async Task<(QueueWorld World, SuppressionList List)> StartAsync(SuppressionOptions? options = null)
    {
        var world = await QueueWorld.StartAsync(azurite);
        var list = new SuppressionList(world.Storage.Suppressions, options ?? new SuppressionOptions(), world.Time);
        world.Queue.Suppressions = list;
        // The DSNs of the bounces go somewhere that takes them.
        world.Network.Zone.AddMx("sender.example", 10, "mx.sender.example");
        await world.Network.AddMxServerAsync("mx.sender.example");
        return (world, list);
    }

    private static EmailAddress Address(string text) => EmailAddress.Parse(text);

    [Fact]
    public async Task A_null_mx_bounce_suppresses_the_address_and_the_next_submission_is_recorded_not_queued()
    {
        var (world, list) = await StartAsync();
        await using var _ = world;
        world.Network.Zone.AddNullMx("nullmx.example");

        var first = await world.SubmitAsync("app@sender.example", ["Someone@nullmx.example"]);
        await world.DrainAsync();

        Assert.Equal(RecipientState.Failed, (await world.Queue.FindAsync(first.Recipients[0].Id, CancellationToken.None))!.State);
        var entry = await list.FindAsync(Address("someone@NULLMX.example"), "sender.example", CancellationToken.None);
        Assert.NotNull(entry);
        Assert.Equal("bad-domain", entry.Category);
        Assert.Equal("bounce", entry.Source);
        Assert.Equal(first.MessageId, entry.SourceMessageId);
        Assert.Contains("5.1.10", entry.Reason, StringComparison.Ordinal);

        var second = await world.SubmitAsync("app@sender.example", ["someone@nullmx.example"]);
        var recipient = Assert.Single(second.Recipients);
        Assert.Equal("suppressed", recipient.Status);
        Assert.Contains("bad-domain", recipient.Reason, StringComparison.Ordinal);
        var record = (await world.Queue.FindAsync(recipient.Id, CancellationToken.None))!;
        Assert.Equal(RecipientState.Suppressed, record.State);
        Assert.Equal(0, record.Attempts);
        Assert.Equal(["suppressed"], record.EventList.Select(e => e.Type));
        // Nothing to deliver: no wake-up was sent for it.
        Assert.Empty(await world.DrainAsync());
    }

    [Fact]
    public async Task A_5_1_1_suppresses_and_no_attempt_is_made_until_the_api_removes_it()
    {
        var (world, list) = await StartAsync();
        await using var _ = world;
        world.Network.Zone.AddMx("dest.example", 10, "mx.dest.example");
        var refuse = true;
        var rcpts = 0;
        var mx = await world.Network.AddMxServerAsync("mx.dest.example", o => o.OnRcpt = _ =>
        {
            Interlocked.Increment(ref rcpts);
            return refuse ? NoSuchUser : null;
        });

        await world.SubmitAsync("app@sender.example", ["gone@dest.example"]);
        await world.DrainAsync();
        Assert.Equal(1, rcpts);
        refuse = false;

        var blocked = await world.SubmitAsync("app@sender.example", ["gone@dest.example"]);
        await world.DrainAsync();
        Assert.Equal("suppressed", blocked.Recipients[0].Status);
        Assert.Equal(1, rcpts);

        var functions = new CloudDelivery.Functions.SuppressionFunctions(list);
        var removed = await FunctionHttpCall.InvokeAsync(FunctionHttpCall.Request("DELETE", "/api/suppressions/gone@dest.example?scope=sender.example"), r => functions.RemoveSuppression(r, "gone@dest.example", CancellationToken.None));
        Assert.Equal(204, removed.StatusCode);

        var again = await world.SubmitAsync("app@sender.example", ["gone@dest.example"]);
        Assert.Equal("queued", again.Recipients[0].Status);
        await world.DrainAsync();
        Assert.Equal(RecipientState.Delivered, (await world.Queue.FindAsync(again.Recipients[0].Id, CancellationToken.None))!.State);
        Assert.Single(mx.Messages);
    }

    [Fact]
    public async Task Removal_with_the_cli_lets_the_next_submission_through()
    {
        var (world, list) = await StartAsync();
        await using var _ = world;
        await list.AddAsync(Address("cli@dest.example"), SuppressionKeys.Global, "test", "manual", "api", null, null, CancellationToken.None);
        Assert.Equal("suppressed", (await world.SubmitAsync("app@sender.example", ["cli@dest.example"])).Recipients[0].Status);

        using var output = new StringWriter();
        var table = $"CloudDelivery:Storage:SuppressionsTable={world.Storage.Options.SuppressionsTable}";
        var shown = await CliApplication.RunAsync(["suppressions", "show", "cli@dest.example", "--json", "--storage", azurite.ConnectionString, "--set", table], output, output);
        Assert.Equal(0, shown);
        Assert.Contains("\"scope\": \"global\"", output.ToString(), StringComparison.Ordinal);
        var exit = await CliApplication.RunAsync(["suppressions", "remove", "cli@dest.example", "--storage", azurite.ConnectionString, "--set", table], output, output);
        Assert.Equal(0, exit);
        Assert.Equal(1, await CliApplication.RunAsync(["suppressions", "remove", "cli@dest.example", "--storage", azurite.ConnectionString, "--set", table], output, output));

        // Another instance's change: this one sees it at its next refresh.
        world.Time.Advance(list.Options.RefreshInterval);
        Assert.Equal("queued", (await world.SubmitAsync("app@sender.example", ["cli@dest.example"])).Recipients[0].Status);
    }

    [Fact]
    public async Task A_batch_with_one_suppressed_recipient_delivers_the_rest()
    {
        var (world, list) = await StartAsync();
        await using var _ = world;
        world.Network.Zone.AddMx("dest.example", 10, "mx.dest.example").AddMx("other.example", 10, "mx.other.example");
        var dest = await world.Network.AddMxServerAsync("mx.dest.example");
        var other = await world.Network.AddMxServerAsync("mx.other.example");
        await list.AddAsync(Address("blocked@dest.example"), "sender.example", "bounced before", "bad-mailbox", "api", null, null, CancellationToken.None);

        // The suppressed recipient first: a small one-domain body is kept inline, and must still reach the other.
        var one = await world.SubmitAsync("app@sender.example", ["blocked@dest.example", "a@dest.example"]);
        var two = await world.SubmitAsync("app@sender.example", ["b@other.example", "blocked@dest.example", "c@dest.example"]);
        var three = await world.SubmitAsync("app@sender.example", ["blocked@dest.example"]);
        await world.DrainAsync();

        var statuses = one.Recipients.Concat(two.Recipients).Concat(three.Recipients).Select(r => $"{r.Recipient} {r.Status}").Order(StringComparer.Ordinal);
        Assert.Equal(["a@dest.example queued", "b@other.example queued", "blocked@dest.example suppressed", "blocked@dest.example suppressed", "blocked@dest.example suppressed", "c@dest.example queued"], statuses);
        foreach (var id in one.Recipients.Concat(two.Recipients).Concat(three.Recipients).Select(r => r.Id))
        {
            var record = (await world.Queue.FindAsync(id, CancellationToken.None))!;
            Assert.Equal(record.Recipient == "blocked@dest.example" ? RecipientState.Suppressed : RecipientState.Delivered, record.State);
        }
        Assert.Equal(["a@dest.example", "c@dest.example"], dest.Messages.SelectMany(m => m.Recipients).Order(StringComparer.Ordinal));
        Assert.Equal(["b@other.example"], other.Messages.SelectMany(m => m.Recipients));
    }

    [Fact]
    public async Task Policy_and_tls_failures_do_not_suppress()
    {
        var (world, list) = await StartAsync();
        await using var _ = world;
        world.Network.Zone.AddMx("policy.example", 10, "mx.policy.example").AddMx("plain.example", 10, "mx.plain.example");
        await world.Network.AddMxServerAsync("mx.policy.example", o => o.OnRcpt = _ => new SmtpServerReply(550, "5.7.1", "refused by policy"));
        await world.Network.AddMxServerAsync("mx.plain.example", o => o.AdvertiseStartTls = false, withCertificate: false);

        var policy = await world.SubmitAsync("app@sender.example", ["p@policy.example"]);
        var tls = await world.SubmitAsync("app@sender.example", ["t@plain.example"], requireTls: true);
        await world.DrainAsync();

        Assert.Equal(RecipientState.Failed, (await world.Queue.FindAsync(policy.Recipients[0].Id, CancellationToken.None))!.State);
        Assert.Equal(RecipientState.Failed, (await world.Queue.FindAsync(tls.Recipients[0].Id, CancellationToken.None))!.State);
        var (entries, _) = await list.ListAsync(null, 100, null, CancellationToken.None);
        Assert.Empty(entries);
    }

    [Fact]
    public async Task A_sender_domain_entry_blocks_only_that_sender_domain_and_a_global_one_blocks_every_sender()
    {
        var (world, list) = await StartAsync();
        await using var _ = world;
        await list.AddAsync(Address("scoped@dest.example"), "sender.example", "test", "manual", "api", null, null, CancellationToken.None);
        await list.AddAsync(Address("everyone@dest.example"), SuppressionKeys.Global, "test", "manual", "api", null, null, CancellationToken.None);

        var ours = await world.SubmitAsync("app@sender.example", ["scoped@dest.example", "everyone@dest.example"]);
        var theirs = await world.SubmitAsync("app@elsewhere.example", ["scoped@dest.example", "everyone@dest.example"]);
        var dsn = await world.SubmitAsync("<>", ["Everyone@dest.example"]);

        Assert.Equal(["suppressed", "suppressed"], ours.Recipients.Select(r => r.Status));
        Assert.Equal(["everyone@dest.example suppressed", "scoped@dest.example queued"], theirs.Recipients.Select(r => $"{r.Recipient} {r.Status}").Order(StringComparer.Ordinal));
        Assert.Equal("suppressed", Assert.Single(dsn.Recipients).Status);
    }

    [Fact]
    public async Task An_expired_entry_no_longer_suppresses()
    {
        var (world, list) = await StartAsync();
        await using var _ = world;
        await list.AddAsync(Address("later@dest.example"), SuppressionKeys.Global, "for an hour", "manual", "api", null, world.Time.GetUtcNow() + TimeSpan.FromHours(1), CancellationToken.None);

        Assert.Equal("suppressed", (await world.SubmitAsync("app@sender.example", ["later@dest.example"])).Recipients[0].Status);
        world.Time.Advance(TimeSpan.FromHours(2));
        Assert.Equal("queued", (await world.SubmitAsync("app@sender.example", ["later@dest.example"])).Recipients[0].Status);
        Assert.Null(await list.FindAsync(Address("later@dest.example"), SuppressionKeys.Global, CancellationToken.None));
    }

    [Fact]
    public async Task Bounce_expiry_and_global_scope_settings_apply_to_automatic_additions()
    {
        var (world, list) = await StartAsync(new SuppressionOptions { Scope = "global", BounceExpiry = TimeSpan.FromDays(30) });
        await using var _ = world;
        world.Network.Zone.AddNullMx("nullmx.example");

        await world.SubmitAsync("app@sender.example", ["x@nullmx.example"]);
        await world.DrainAsync();

        var entry = await list.FindAsync(Address("x@nullmx.example"), SuppressionKeys.Global, CancellationToken.None);
        Assert.NotNull(entry);
        Assert.Equal(world.Time.GetUtcNow() + TimeSpan.FromDays(30), entry.ExpiresAt);
        Assert.Equal("suppressed", (await world.SubmitAsync("app@elsewhere.example", ["x@nullmx.example"])).Recipients[0].Status);
    }

    [Fact]
    public async Task Disabled_the_list_neither_adds_nor_checks()
    {
        var (world, list) = await StartAsync(new SuppressionOptions { Enabled = false });
        await using var _ = world;
        world.Network.Zone.AddNullMx("nullmx.example");
        await list.AddAsync(Address("manual@dest.example"), SuppressionKeys.Global, "test", "manual", "api", null, null, CancellationToken.None);

        await world.SubmitAsync("app@sender.example", ["x@nullmx.example"]);
        await world.DrainAsync();

        Assert.Null(await list.FindAsync(Address("x@nullmx.example"), "sender.example", CancellationToken.None));
        Assert.Equal("queued", (await world.SubmitAsync("app@sender.example", ["manual@dest.example"])).Recipients[0].Status);
    }
}
