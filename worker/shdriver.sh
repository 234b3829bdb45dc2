# replgate shell driver: one long-lived bash runs every snippet of a session, so variables,
# functions and the working directory persist. fd 3 brings "LENGTH\0CODE" (LENGTH in bytes:
# `read -N` then takes the code in large reads, where `read -d ''` would make one system call
# per byte); fd 4 takes "S STATUS\n". The worker then sends a fence, "NONCE\0", which the
# loop echoes as "F NONCE\n": the nonce does not exist until the status came, so a snippet
# cannot end itself early by writing a status line. The snippet runs with fds 3 and 4 closed;
# bash keeps its own copies of them (fd 10 and up) to restore afterwards, which the snippet
# can reach, so what the status says is the interpreter's word, like everything it prints.
# The snippet runs inside a read-only function so `break`, `continue` and redefinitions
# cannot reach the loop; `builtin` keeps snippet functions named read or printf out of it.
# An interrupt (SIGINT to the session's process group) stops the foreground job, and the
# trap then returns from the snippet with status 130 as an interactive shell would; between
# snippets it changes nothing. A trap, not the default, so the snippet's children still get
# SIGINT's default action.
__replgate_run () {
    builtin eval "$__replgate_code"
}
builtin readonly -f __replgate_run
builtin trap : INT
while IFS= builtin read -r -d '' __replgate_size <&3; do
    LC_ALL=C IFS= builtin read -r -N "$__replgate_size" __replgate_code <&3 || builtin exit 0
    builtin trap 'builtin return 130 2>/dev/null' INT
    __replgate_run 3<&- 4>&-
    __replgate_status=$?
    builtin trap : INT
    builtin printf 'S %d\n' "$__replgate_status" >&4
    IFS= builtin read -r -d '' __replgate_fence <&3 || builtin exit 0
    builtin printf 'F %s\n' "$__replgate_fence" >&4
    builtin unset __replgate_code __replgate_fence __replgate_status
done
