# replgate shell driver: one long-lived bash runs every snippet of a session, so variables,
# functions and the working directory persist. fd 3 brings "LENGTH\0CODE MARKER\0" (LENGTH
# in bytes: `read -N` then takes the code in large reads, where `read -d ''` would make one
# system call per byte); fd 4 takes "MARKER STATUS\n". The snippet runs with fds 3 and 4
# closed and the marker is read only after it finished, so nothing the snippet prints or
# writes to its own descriptors can pass for a status line.
# The snippet runs inside a read-only function so `break`, `continue` and redefinitions
# cannot reach the loop; `builtin` keeps snippet functions named read or printf out of it.
__replgate_run () {
    builtin eval "$__replgate_code"
}
builtin readonly -f __replgate_run
while IFS= builtin read -r -d '' __replgate_size <&3; do
    LC_ALL=C IFS= builtin read -r -N "$__replgate_size" __replgate_code <&3 || builtin exit 0
    __replgate_run 3<&- 4>&-
    __replgate_status=$?
    IFS= builtin read -r -d '' __replgate_marker <&3 || builtin exit 0
    builtin printf '%s %d\n' "$__replgate_marker" "$__replgate_status" >&4
    builtin unset __replgate_code __replgate_marker
done
