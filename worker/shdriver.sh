# replgate shell driver: runs one snippet of a session in a bash of its own. The shell host
# (worker/shellhost.c) starts it before the snippet comes, with the session's directory as $1;
# it holds nothing that reaches the worker, and its exit status, which the host takes from
# wait(), is the snippet's.
# - It loads the state ($1/state), waits for "g" on fd 3 (the host has then written the code
#   to $1/snippet) and closes fd 3 with a plain `exec` (through `builtin`, bash would keep a
#   copy), so none remains for the snippet.
# - The snippet is sourced at the top level, so that its `declare`s are global and `return`
#   ends it, as typed at a prompt. An interrupt (SIGINT to the session's process group) stops
#   the foreground job, and the trap then saves the state and ends the snippet with 130, as an
#   interactive shell would. A trap, not the default, so the snippet's children still get
#   SIGINT's default action.
# - Then it saves the state to $1/state.new: options first, if they differ from bash's
#   defaults (as a function run just before the next snippet, so that `set -x` or `set -e`
#   never apply to this driver), the working directory, variables, functions, aliases and
#   umask, and last the trailer the host checks. A snippet that ends the shell (`exit`,
#   `set -e`) saves nothing, and the session ends.
# `builtin` keeps snippet functions named read, declare or cd out of the driver.
builtin trap : INT
builtin unset -v BASH_EXECUTION_STRING      # this script: nothing to save
__replgate_state=$1/state
__replgate_snippet=$1/snippet
__replgate_env=$1/env
builtin shift
__replgate_options () { :; }
__replgate_defaults=$SHELLOPTS/$BASHOPTS
[[ -e $__replgate_state ]] && builtin source "$__replgate_state" 2>/dev/null
__replgate_save () {
    { {
        builtin trap : INT
        builtin printf '__replgate_options () {\n:\n'
        if [[ $SHELLOPTS/$BASHOPTS != "$__replgate_defaults" ]]; then
            builtin set +o
            builtin shopt -p
        fi
        builtin printf '}\n'
        builtin set +euvx
    } >| "$__replgate_state.new"; } 2>/dev/null
    builtin unset -v __replgate_go
    # A run with a network grant had a proxy of its own: it ends with the run.
    [[ -e $__replgate_env ]] && builtin unset -v HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY \
        http_proxy https_proxy all_proxy no_proxy
    builtin unset -f __replgate_options __replgate_save
    { {
        builtin printf 'builtin cd -- %q\n' "$PWD"
        builtin declare -p
        builtin declare -f
        builtin alias -p
        builtin umask -p
        builtin printf '# replgate: end of state\n'
    } >> "$__replgate_state.new"; } 2>/dev/null
    builtin exit "$1"
}
IFS= builtin read -r -n 1 __replgate_go <&3 || builtin exit 0
builtin unset -f exec
exec 3<&-
builtin trap '__replgate_save 130' INT
__replgate_options 2>/dev/null
[[ -e $__replgate_env ]] && builtin source "$__replgate_env"
builtin source "$__replgate_snippet"
__replgate_save "$?"
