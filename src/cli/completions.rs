//! The shell completion scripts: clap's, plus server names for `--server` read from the config
//! the command line names (`-c FILE`, else tandem.yml), through the hidden `tandem __servers`.
//! bash completes each name of a comma-separated list; fish the first; zsh gets clap's script
//! alone (file names for `--server`).

use clap::CommandFactory;
use clap_complete::Shell;

use super::args::Cli;

/// The completion script for `shell`.
pub(crate) fn script(shell: Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tandem", &mut script);
    let mut script = String::from_utf8_lossy(&script).trim_end().to_string();
    match shell {
        Shell::Bash => script.push_str(BASH_SERVERS),
        Shell::Fish => script.push_str(FISH_SERVERS),
        _ => {}
    }
    script
}

/// Wraps clap's `_tandem`: after `--server` (or `--server=`) it offers the config's server
/// names, after the ones already written before a comma.
const BASH_SERVERS: &str = r#"

_tandem_server_names() {
    local i config=tandem.yml
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -c|--config) config="${COMP_WORDS[i+1]}" ;;
        esac
    done
    command tandem __servers -c "$config" 2>/dev/null
}

_tandem_with_servers() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [[ $prev == "=" && $COMP_CWORD -ge 2 ]]; then
        prev="${COMP_WORDS[COMP_CWORD-2]}"
    fi
    if [[ $prev == --server || $prev == --only ]]; then
        local written="" last="$cur"
        if [[ $cur == *,* ]]; then
            written="${cur%,*},"
            last="${cur##*,}"
        fi
        # Matched here, not with `compgen -W`, which would expand what the config holds.
        local name
        COMPREPLY=()
        while IFS= read -r name; do
            [[ $name == "$last"* ]] && COMPREPLY+=("$written$name")
        done < <(_tandem_server_names)
        return 0
    fi
    _tandem "$@"
}

complete -F _tandem_with_servers -o nosort -o bashdefault -o default tandem"#;

const FISH_SERVERS: &str = r#"

function __tandem_server_names
    set -l words (commandline -opc)
    set -l config tandem.yml
    for i in (seq (count $words))
        if contains -- $words[$i] -c --config; and test $i -lt (count $words)
            set config $words[(math $i + 1)]
        end
    end
    command tandem __servers -c $config 2>/dev/null
end
complete -c tandem -l server -x -a '(__tandem_server_names)'"#;
