using System.CommandLine;

namespace CloudDelivery.Cli.Commands;

/// <summary>
/// <c>clouddelivery completion bash|zsh|pwsh</c>: prints a shell completion script. Each script asks the
/// tool itself for candidates through System.CommandLine's suggest directive
/// (<c>clouddelivery "[suggest:POSITION]" "LINE"</c>, one candidate per line), so completions always
/// match the installed version's commands and options.
/// </summary>
internal static class CompletionCommand
{
    public static Command Create(TextWriter output)
    {
        var shell = new Argument<string>("shell") { Description = "bash, zsh or pwsh." };
        shell.AcceptOnlyFromAmong("bash", "zsh", "pwsh");
        var command = new Command("completion", "Print a shell completion script: bash (source it from ~/.bashrc), zsh (from ~/.zshrc) or pwsh (from $PROFILE).") { shell };
        command.SetAction(async (parse, cancellationToken) =>
        {
            await output.WriteAsync(ScriptFor(parse.GetValue(shell)!));
            return 0;
        });
        return command;
    }

    public static string ScriptFor(string shell) => shell switch
    {
        "bash" => Bash,
        "zsh" => Zsh,
        _ => PowerShell,
    };

    // COMP_LINE and COMP_POINT are the whole line and the cursor's offset in it (bash(1), Programmable Completion).
    private const string Bash = """
        # clouddelivery completion for bash: eval "$(clouddelivery completion bash)" in ~/.bashrc
        _clouddelivery_complete() {
            local IFS=$'\n'
            COMPREPLY=($(compgen -W "$(clouddelivery "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -o default -F _clouddelivery_complete clouddelivery

        """;

    // BUFFER and CURSOR are the line being edited and the cursor's offset (zshzle(1), User-Defined Widgets).
    private const string Zsh = """
        # clouddelivery completion for zsh: eval "$(clouddelivery completion zsh)" in ~/.zshrc (after compinit)
        _clouddelivery_complete() {
            local -a candidates
            candidates=("${(@f)$(clouddelivery "[suggest:${CURSOR}]" "${BUFFER}" 2>/dev/null)}")
            compadd -a candidates
        }
        compdef _clouddelivery_complete clouddelivery

        """;

    private const string PowerShell = """
        # clouddelivery completion for PowerShell: clouddelivery completion pwsh | Out-String | Invoke-Expression (in $PROFILE)
        Register-ArgumentCompleter -Native -CommandName clouddelivery -ScriptBlock {
            param($wordToComplete, $commandAst, $cursorPosition)
            clouddelivery "[suggest:$cursorPosition]" "$commandAst" 2>$null | ForEach-Object {
                [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
            }
        }

        """;
}
