using System.CommandLine;
using CloudDelivery.Cli.Commands;

namespace CloudDelivery.Cli;

/// <summary>
/// The <c>clouddelivery</c> command: operators' tool for debugging destinations (probe), for one-off
/// direct deliveries (deliver), and for running and inspecting the durable queue (serve, send, status,
/// queue, policy, tlsrpt). The loopback demo is not part of it: it lives in tests/CloudDelivery.Demo.
/// </summary>
public static class CliApplication
{
    /// <summary>Exit code when every recipient was delivered.</summary>
    public const int ExitDelivered = 0;

    /// <summary>Exit code when some recipient failed temporarily (sysexits EX_TEMPFAIL).</summary>
    public const int ExitTemporaryFailure = 75;

    /// <summary>Exit code when recipients failed permanently and none temporarily (sysexits EX_UNAVAILABLE).</summary>
    public const int ExitPermanentFailure = 69;

    /// <summary>Exit code for bad usage or input (sysexits EX_USAGE / EX_DATAERR).</summary>
    public const int ExitUsage = 64;

    /// <summary>Runs the command line; confirmations are asked on the terminal, when stdin is one.</summary>
    public static Task<int> RunAsync(string[] args, TextWriter output, TextWriter error) =>
        RunAsync(args, output, error, Console.IsInputRedirected ? null : Console.In, Console.OpenStandardOutput);

    /// <summary>
    /// Runs the command line with <paramref name="input"/> for the answers to confirmations (null: no
    /// terminal, so bulk actions without --yes refuse) and <paramref name="rawOutput"/> for the bytes of
    /// <c>queue show --body</c>.
    /// </summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, TextReader? input, Func<Stream> rawOutput)
    {
        var console = new CliConsole(output, error, input, rawOutput);
        var root = new RootCommand("CloudDelivery: direct outbound mail delivery with MTA-STS, DANE, REQUIRETLS and TLSRPT.")
        {
            ProbeCommand.Create(output),
            DeliverCommand.Create(output, error),
            ServeCommand.Create(output),
            SendCommand.Create(output),
            StatusCommand.Create(output),
            Commands.Queue.QueueCommand.Create(console),
            TlsRptCommand.Create(output),
            PolicyCommand.Create(output),
            EventCommand.Create(output),
            SuppressionCommand.Create(output),
            CompletionCommand.Create(output),
        };
        // Configuration mistakes and unreachable storage are the operator's to fix: one clear line, no stack trace.
        var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        try
        {
            return await root.Parse(args).InvokeAsync(configuration);
        }
        catch (Exception e) when (e is FormatException or global::CloudDelivery.Azure.Queue.SubmissionException)
        {
            await error.WriteLineAsync($"clouddelivery: {e.Message}");
            return ExitUsage;
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException e)
        {
            // The hosts' validators (DKIM keys, storage endpoints) run when a command builds the services.
            await error.WriteLineAsync($"clouddelivery: {e.Message}");
            return ExitUsage;
        }
        catch (LocalAzuriteUnavailableException e)
        {
            await error.WriteLineAsync($"clouddelivery: {e.Message}");
            return ExitPermanentFailure;
        }
        catch (global::Azure.Identity.AuthenticationFailedException e)
        {
            // Storage by AccountName without a usable identity (e.g. no az login).
            await error.WriteLineAsync($"clouddelivery: could not get a token for storage: {e.Message.Split('\n')[0]}");
            return 1;
        }
        catch (global::Azure.RequestFailedException e)
        {
            await error.WriteLineAsync($"clouddelivery: storage request failed ({e.Status} {e.ErrorCode}): {e.Message.Split('\n')[0]}");
            return 1;
        }
    }
}
