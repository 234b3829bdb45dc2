#!/usr/bin/env bash
# tests/fuzz/run.sh (`make fuzz`): builds each libFuzzer target (clang, with ASan and UBSan)
# and runs it over FUZZ_RUNS generated inputs, starting from its seeds. New inputs go to a
# scratch corpus, never into the repository (removed when every target passed, kept when
# FUZZ_DIR names it). Ends with `fuzz: N passed, N failed`; a crash leaves its input in the
# scratch directory, which is named in the output.
set -u
cd "$(dirname "$0")/../.."
RUNS=${FUZZ_RUNS:-100000}
OUT=${FUZZ_DIR:-$(mktemp -d /tmp/replgate-fuzz-XXXXXX)}
PKGS="libczmq libzmq jansson sqlite3 libsodium libpcre2-8 libseccomp libcurl libmicrohttpd"
# libunistring (the policy's NFKC, policy/nfkc.c) has no pkg-config file: linked by name below.
CFLAGS="-std=gnu11 -g -O1 -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
command -v clang >/dev/null || { echo "fuzz: clang is missing (make fuzz-deps)"; exit 2; }
passed=0; failed=0
slack_seed() {      # one well-formed callback, URL-encoded as Slack posts it
    mkdir -p "$1"
    printf 'payload=%s' "$(python3 -c 'import json, urllib.parse; print(urllib.parse.quote(json.dumps({
        "type": "block_actions", "team": {"id": "T1"}, "api_app_id": "A1",
        "user": {"id": "U1", "username": "alice"}, "trigger_id": "1.2.3",
        "response_url": "https://hooks.slack.com/actions/T1/1/x", "container": {"message_ts": "1.2"},
        "channel": {"id": "C1"}, "message": {"ts": "1.2"},
        "actions": [{"action_id": "approve", "block_id": "replgate:42", "value": "42",
                     "action_ts": "1.3"}]})))')" > "$1/click"
}
run() {             # name, sources, seed dirs...
    local name=$1 src=$2; shift 2
    local bin=$OUT/$name corpus=$OUT/$name.corpus seeds=() dir
    mkdir -p "$corpus"
    for dir in "$@"; do seeds+=("$(realpath "$dir")"); done
    # shellcheck disable=SC2086
    if ! clang $CFLAGS tests/fuzz/$name.c $src -o "$bin" $(pkg-config --cflags --libs $PKGS) -lm -lunistring \
            2> "$OUT/$name.build"; then
        echo " * $name: FAILED to build"; cat "$OUT/$name.build"; failed=$((failed + 1)); return
    fi
    if (cd "$OUT" && "$bin" -runs="$RUNS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
            "$corpus" "${seeds[@]}" > "$OUT/$name.log" 2>&1); then
        echo " * $name: OK ($RUNS runs, $(ls "$corpus" | wc -l) new inputs kept)"
        passed=$((passed + 1))
    else
        echo " * $name: FAILED (see $OUT/$name.log)"; tail -n 40 "$OUT/$name.log"
        failed=$((failed + 1))
    fi
}
slack_seed "$OUT/slack.seed"
run client "common/proto.c common/egress_check.c common/util.c" tests/corpus/frames/client tests/corpus/frames/admin
run worker "common/proto.c common/egress_check.c common/util.c" tests/corpus/frames/worker
run slack "approver/payload.c common/util.c" "$OUT/slack.seed"
run claim "worker/claim.c common/util.c"
run wire "worker/wire.c worker/grant.c common/buf.c common/util.c"
mkdir -p "$OUT/policy.seed" && cp policy/default.json "$OUT/policy.seed/"
run policy "$(ls policy/*.c | tr '\n' ' ') common/util.c common/buf.c" "$OUT/policy.seed"
mkdir -p "$OUT/screen.seed"     #  flags byte, then a line that redraws itself, RLO, a stray byte
printf '\x05# \x1b[2K\r\x1b[1Aok \xe2\x80\xae \xff \xe2\x9f\xa8ESC\xe2\x9f\xa9\n' > "$OUT/screen.seed/attack"
run screen "client/screen.c common/buf.c common/util.c" "$OUT/screen.seed"
mkdir -p "$OUT/proxy.seed"      #  a plain-HTTP request with hop-by-hop headers, a tunnel
printf 'GET http://a.example:8080/p?q HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\nContent-Length: 3\r\n\r\nabc' \
    > "$OUT/proxy.seed/get"
printf 'CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n' > "$OUT/proxy.seed/connect"
run proxy "worker/proxy_head.c common/util.c" "$OUT/proxy.seed"
mkdir -p "$OUT/zmtp.seed"       #  a key, a ROUTER's greeting, WELCOME, READY with metadata
python3 -c 'import sys
g = b"\xff" + bytes(7) + b"\x01\x7f\x03\x01" + b"CURVE".ljust(20, b"\0") + bytes(32)
w = b"\x07WELCOME" + bytes(160)
r = b"\x05READY" + bytes(8) + b"\x0bSocket-Type\x00\x00\x00\x06ROUTER" + bytes(16)
m = b"\x07MESSAGE" + bytes(8) + b"x" * 300
sys.stdout.buffer.write(g + b"\x04" + bytes([len(w)]) + w
                        + b"\x04" + bytes([len(r)]) + r + b"\x02" + len(m).to_bytes(8, "big") + m)' \
    > "$OUT/zmtp.seed/handshake"
run zmtp "common/zmtp_wire.c common/util.c" "$OUT/zmtp.seed"
mkdir -p "$OUT/certfile.seed"   #  a cert as czmq writes it
printf '#   ****  Generated on 2026-12-04 by CZMQ  ****\n\nmetadata\n    name = "agent"\ncurve\n    public-key = "rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7"\n    secret-key = "JTKVSB%%%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"\n' \
    > "$OUT/certfile.seed/cert"
run certfile "common/certfile.c common/zmtp_wire.c common/util.c" "$OUT/certfile.seed"
mkdir -p "$OUT/egress.seed"    #  a report line the proxy writes, and a grant
printf 'E\tCONNECT\tfiles.example.com\t443\t93.184.216.34\t517\t4096\t12.500\tallowed\t-' > "$OUT/egress.seed/line"
printf 'allow files.example.com:443\nallow *.internal.example:80\nmethod GET\n' > "$OUT/egress.seed/grant"
run egress "worker/egress.c worker/grant.c worker/proxy.c worker/proxy_dest.c worker/proxy_head.c \
    worker/proxy_resolve.c worker/seccomp.c common/egress_check.c common/buf.c common/util.c" "$OUT/egress.seed"
echo "fuzz: $passed passed, $failed failed"
if [ "$failed" = 0 ] && [ -z "${FUZZ_DIR:-}" ]; then rm -rf "$OUT"; fi
[ "$failed" = 0 ]
