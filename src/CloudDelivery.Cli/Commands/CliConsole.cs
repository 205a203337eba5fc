namespace CloudDelivery.Cli.Commands;

/// <summary>
/// Where a command writes and reads: text output and errors, the operator's answers to confirmations
/// (null when there is no terminal to ask), and the raw byte output that <c>queue show --body</c> streams
/// a stored message to.
/// </summary>
internal sealed record CliConsole(TextWriter Output, TextWriter Error, TextReader? Input, Func<Stream> RawOutput)
{
    /// <summary>
    /// Asks <paramref name="question"/> on the error stream (so --json output stays parseable) and reads the
    /// answer. Null when there is nobody to ask: no terminal, or stdin closed.
    /// </summary>
    public async Task<bool?> ConfirmAsync(string question, CancellationToken cancellationToken)
    {
        if (Input is null)
        {
            return null;
        }
        await Error.WriteAsync($"{question} [y/N] ");
        return await Input.ReadLineAsync(cancellationToken) switch
        {
            null => null,
            var answer => answer.Trim() is "y" or "Y" or "yes" or "Yes",
        };
    }
}
