using System.Text;
using CloudDelivery.Azure.Queue;
using CloudDelivery.Cli;
using CloudDelivery.Cli.Commands;
using CloudDelivery.Cli.Commands.Queue;
using CsCheck;

namespace CloudDelivery.Tests.Cli;

/// <summary>The operator CLI's pure rules: durations, which action applies to which state, header reading, completion.</summary>
public sealed class OperatorCliRulesTests
{
    [Theory]
    [InlineData("30s", 30)]
    [InlineData("30m", 1800)]
    [InlineData("2h", 7200)]
    [InlineData("1d", 86400)]
    [InlineData("1w", 604800)]
    [InlineData("1d12h", 129600)]
    [InlineData("0s", 0)]
    public void Durations_take_a_number_and_a_unit(string text, int seconds)
    {
        Assert.True(OperatorDuration.TryParse(text, out var duration, out _));
        Assert.Equal(TimeSpan.FromSeconds(seconds), duration);
    }

    [Theory]
    [InlineData("30")]
    [InlineData("")]
    [InlineData("m")]
    [InlineData("-1h")]
    [InlineData("1.5h")]
    [InlineData("2y")]
    [InlineData("1 h")]
    [InlineData("999999999w")]
    [InlineData("3651d")]
    public void Anything_else_is_refused_with_a_reason(string text)
    {
        Assert.False(OperatorDuration.TryParse(text, out _, out var error));
        Assert.NotEmpty(error);
    }

    [Fact]
    public void Generated_durations_parse_or_are_refused_never_throw_and_stay_in_bounds()
    {
        var units = Gen.Int[0, 7].Select(i => "smhdwx5 "[i]);
        var structured = Gen.Select(Gen.Long[0, 99_999_999_999L], units).Select(p => $"{p.Item1}{p.Item2}").Array[1, 4].Select(parts => string.Concat(parts));
        Gen.OneOf(structured, Gen.String).Sample(text =>
        {
            if (OperatorDuration.TryParse(text, out var duration, out var error))
            {
                Assert.InRange(duration, TimeSpan.Zero, OperatorDuration.Max);
            }
            else
            {
                Assert.NotEmpty(error);
            }
        }, iter: 3000, threads: 1);
    }

    [Theory]
    [InlineData(OperatorAction.Hold, RecipientState.Queued, null)]
    [InlineData(OperatorAction.Hold, RecipientState.Held, "already held")]
    [InlineData(OperatorAction.Release, RecipientState.Held, null)]
    [InlineData(OperatorAction.Release, RecipientState.Queued, "not held")]
    [InlineData(OperatorAction.Retry, RecipientState.Queued, null)]
    [InlineData(OperatorAction.Retry, RecipientState.Held, "held; release it instead")]
    [InlineData(OperatorAction.Fail, RecipientState.Held, null)]
    [InlineData(OperatorAction.Drop, RecipientState.Queued, null)]
    [InlineData(OperatorAction.Fail, RecipientState.Delivered, "delivered, not queued")]
    [InlineData(OperatorAction.Drop, RecipientState.Suppressed, "suppressed, not queued")]
    public void An_action_applies_to_queued_or_held_records_as_its_rule_says(OperatorAction action, string state, string? reason) =>
        Assert.Equal(reason, OperatorActions.WhyNot(action, state));

    [Fact]
    public async Task Headers_are_read_from_the_header_section_only()
    {
        var message = "Subject: one\r\nX-Folded: a\r\n b\r\n\r\nNot-A-Header: body\r\n"u8.ToArray();
        var headers = await QueueShowCommand.ReadHeadersAsync(new MemoryStream(message), CancellationToken.None);
        Assert.Equal([("Subject", "one"), ("X-Folded", "a b")], headers);
    }

    [Fact]
    public async Task Generated_stored_bytes_give_headers_or_none_never_an_exception()
    {
        var bytes = Gen.OneOf(
            Gen.Byte.Array[0, 600],
            Gen.String[Gen.Char.AlphaNumeric, 0, 40].Array[0, 8].Select(lines => Encoding.ASCII.GetBytes(string.Join("\r\n", lines.Select((l, i) => i % 3 == 2 ? l : $"{l}: {l}")) + "\r\n\r\nbody")));
        await bytes.SampleAsync(async input =>
        {
            var headers = await QueueShowCommand.ReadHeadersAsync(new MemoryStream(input), CancellationToken.None);
            Assert.All(headers, h => Assert.False(string.IsNullOrEmpty(h.Name)));
        }, iter: 2000, threads: 1);
    }

    [Theory]
    [InlineData("bash", "complete -o default -F _clouddelivery_complete clouddelivery")]
    [InlineData("zsh", "compdef _clouddelivery_complete clouddelivery")]
    [InlineData("pwsh", "Register-ArgumentCompleter -Native -CommandName clouddelivery")]
    public async Task Completion_prints_a_script_that_asks_the_suggest_directive(string shell, string registration)
    {
        using var output = new StringWriter();
        Assert.Equal(0, await CliApplication.RunAsync(["completion", shell], output, output, null, () => Stream.Null));
        Assert.Contains(registration, output.ToString(), StringComparison.Ordinal);
        Assert.Contains("[suggest:", output.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("queue ")]
    [InlineData("clouddelivery queue ")]
    public async Task The_suggest_directive_completes_queue_verbs(string line)
    {
        using var output = new StringWriter();
        Assert.Equal(0, await CliApplication.RunAsync([$"[suggest:{line.Length}]", line], output, output, null, () => Stream.Null));
        var candidates = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Superset(new HashSet<string> { "list", "show", "hold", "release", "retry", "fail", "drop", "poison" }, candidates.ToHashSet());
    }

    [Fact]
    public async Task The_suggest_directive_completes_a_started_option()
    {
        using var output = new StringWriter();
        const string line = "queue list --old";
        await CliApplication.RunAsync([$"[suggest:{line.Length}]", line], output, output, null, () => Stream.Null);
        Assert.Contains("--older-than", output.ToString(), StringComparison.Ordinal);
    }
}
