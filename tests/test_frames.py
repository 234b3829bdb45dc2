"""tests/test_frames.py: hostile and malformed frames, replayed against a real broker.

The corpus is tests/corpus/frames/ (see its README): client frames (agent and admin keys)
sorted by the error code they must get, and garbage for the worker socket. Every client frame
gets a reply with an `error` object whose `code` is the one its directory names (or `ok`), the
broker keeps answering, the frames at the documented size limits (1 MiB and 64 MiB, made here
rather than stored) get their documented treatment, the worker socket answers nothing that is not a
worker's protocol, and at the end the record holds every refusal as aggregated `rejected`
events made of codes, sizes and counts only: no byte an attacker chose, no request made by a
bad frame, a chain that `replgate verify` accepts. A quick replay of the whole corpus shows
the broker's memory stays flat."""
import json, os, re, sqlite3, sys, time
from harness import ASAN, SLOW, Client, Stack, check, run_all, test

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "frames")
CANARY = b"MALLORY"             # every corpus frame that carries text of its own carries this
UID_BASE = 296000
MAX_FRAME = 1024 * 1024         # README: too_large above 1 MiB
MAX_WIRE = 64 * 1024 * 1024     # README: above 64 MiB the connection is dropped
CODES = {"bad_json", "not_object", "bad_utf8", "too_large", "bad_frames", "unknown_op",
         "unknown_key", "missing_field", "bad_type", "bad_value", "forbidden", "not_found",
         "bad_state", "duplicate", "too_many", "busy", "internal", "conflict"}
# What a `rejected` event may hold (README, "Protocol"): codes, sizes, counts, who and when.
REJECTED_KEYS = {"code", "size", "count", "bytes", "principal", "first_at", "overflow"}
# Texts the broker's error messages are made of: none may reach the record.
ERROR_TEXTS = [b"near '", b"not JSON", b"unknown field", b"unknown op", b"frame is",
               b"wrong type", b"missing field", b"must be", b"out of range", b"too long"]

S = None
REFUSED = 0                     # error replies the broker gave (each is one refusal on record)
INTRUDED = 0                    # worker-socket messages of client keys, and of any key in more
                                # than one frame: unanswered, but each a refusal on record
SUBMITTED = []                  # codes of the requests this file created on purpose


def shared():
    """The stack, with request 1 done (owned by `agent`): frames of the corpus name it."""
    global S
    if S is None:
        S = Stack(slots=2, worker_args=["--uid-base", str(UID_BASE)])
        c = S.client("agent")
        try:
            first = c.run("print('first')")
        finally:
            c.close()
        check(first["id"] == 1 and first["outcome"] == "ok" and first["stdout"] == "first\n", first)
        SUBMITTED.append("print('first')")
    return S


def parse_netstrings(data):
    """A `.msg` file: the parts of one multipart message, each as `LEN:BYTES,`."""
    parts = []
    while data:
        n, _, rest = data.partition(b":")
        size = int(n)
        check(rest[size:size + 1] == b",", "bad netstring in a .msg file")
        parts.append(rest[:size])
        data = rest[size + 1:]
    return parts


def load(kind):
    """[(name, expected, [frames])] of corpus/frames/KIND, sorted; expected is the directory
    (the code a client frame must get) or None for the worker garbage."""
    out = []
    top = os.path.join(CORPUS, kind)
    for dirpath, _, names in sorted(os.walk(top)):
        for name in sorted(names):
            data = open(os.path.join(dirpath, name), "rb").read()
            frames = parse_netstrings(data) if name.endswith(".msg") else [data]
            rel = os.path.relpath(dirpath, top)
            out.append((os.path.join(kind, rel, name) if rel != "." else os.path.join(kind, name),
                        None if rel == "." else rel, frames))
    check(out, "empty corpus " + top)
    return out


def recv_reply(sock, timeout):
    """The next reply on a client socket (pushed events skipped), as (raw, object) or None."""
    deadline = time.time() + timeout * SLOW
    while True:
        left = deadline - time.time()
        if left <= 0 or not sock.poll(int(left * 1000)):
            return None
        raw = sock.recv()
        try:
            obj = json.loads(raw)
        except ValueError:
            return raw, None
        if isinstance(obj, dict) and obj.get("op") == "event":
            continue
        return raw, obj


def expected_rid(frame, code):
    """The rid the reply must echo: the frame's own, when the broker got as far as reading it."""
    if code in ("bad_json", "bad_utf8", "too_large", "bad_frames", "not_object"):
        return None
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    rid = obj.get("rid") if isinstance(obj, dict) else None
    if isinstance(rid, str) and len(rid.encode()) <= 64:
        return rid
    if isinstance(rid, int) and not isinstance(rid, bool) and -2**63 <= rid < 2**63:
        return rid
    return None


def judge(name, expected, frames, reply, strict=True):
    """Problems with one reply (empty list: as it should be). Counts refusals. Not strict:
    any documented answer will do (the code itself is every_client_frame_gets_its_stable_code's
    business)."""
    global REFUSED
    if reply is None:
        return ["%s: no reply" % name]
    raw, obj = reply
    if not isinstance(obj, dict):
        return ["%s: reply is not a JSON object: %r" % (name, raw[:300])]
    bad = []
    if obj.get("ok") is not True:
        REFUSED += 1
    err = obj.get("error")
    if obj.get("ok") is True and "error" not in obj:
        if strict and expected != "ok":
            bad.append("%s: expected %s, got ok: %r" % (name, expected, raw[:300]))
    elif expected == "ok" and strict:
        bad.append("%s: expected ok, got %r" % (name, raw[:300]))
    else:
        if obj.get("ok") is not False or not isinstance(err, dict):
            bad.append("%s: reply without an error object: %r" % (name, raw[:300]))
        elif err.get("code") not in CODES or (strict and err.get("code") != expected):
            bad.append("%s: expected %s, got %r" % (name, expected, raw[:300]))
        elif not isinstance(err.get("message"), str) or not err["message"]:
            bad.append("%s: error without a message: %r" % (name, raw[:300]))
    if len(frames) == 1:
        rid = expected_rid(frames[0], expected)
        if rid is not None and obj.get("rid") != rid:
            bad.append("%s: rid %r not echoed: %r" % (name, rid, raw[:300]))
    return bad


def alive(s, c=None, what=""):
    if s.broker.poll() is not None:
        raise AssertionError("broker exited (%s) %s: %s" % (s.broker.returncode, what,
                             open(s.logs[0], errors="replace").read()[-3000:]))
    own = c is None
    c = c or s.client("admin")
    try:
        r = c.call("ping", timeout=5)
        check(r is not None and r.get("ok") is True, "no pong %s: %r" % (what, r))
        return r
    finally:
        if own:
            c.close()


def read_only(s, query):
    """Rows of query, from the database opened read-only (the broker keeps writing it)."""
    con = sqlite3.connect("file:%s?mode=ro" % s.db, uri=True, timeout=10)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raw_socket(s, endpoint, key):
    return Client(endpoint, s.key(key), os.path.join(s.dir, "keys", "broker.cert"))


def log_lines(s):
    return sum(1 for _ in open(s.logs[0], "rb"))


@test
def worker_socket_ignores_garbage_and_client_keys():
    """The worker corpus with a worker key, and everything with client keys on the worker
    socket: no answer but `announce`, no request touched, the real worker keeps serving and the
    log stays rate-limited."""
    s = shared()
    agent = s.client("agent")
    try:
        first = agent.call("status", id=1)
        check(first and first["ok"] and first["state"] == "done", first)
        slow_code = "import time; time.sleep(1.5); 'slow'"
        r = agent.call("submit", lang="python", code=slow_code, session="slow")
        check(r and r["ok"], r)
        SUBMITTED.append(slow_code)
        slow = r["id"]
        # the worker corpus names requests 1 and 2: a done one and a running one
        check(slow == 2, "the slow request is %d, not 2" % slow)
        before = log_lines(s)
        t0 = time.time()
        everything = load("worker") + load("client") + load("admin")
        rogue = raw_socket(s, s.workers_ep, "worker")       # a worker key, not a worker
        intruders = [raw_socket(s, s.workers_ep, k) for k in ("agent", "admin")]
        try:
            global INTRUDED
            for name, _, frames in everything:
                rogue.send_raw(*frames)
                INTRUDED += len(frames) != 1
                for c in intruders:
                    c.send_raw(*frames)
                    INTRUDED += 1
            time.sleep(0.5)
            while rogue.sock.poll(200):
                msg = rogue.sock.recv_multipart()
                check(len(msg) == 1 and json.loads(msg[0]) == {"op": "announce"},
                      "the broker answered garbage on the worker socket: %r" % msg[:2])
            for c in intruders:
                check(not c.sock.poll(200), "a client key got an answer on the worker socket")
        finally:
            rogue.close()
            for c in intruders:
                c.close()
        elapsed = time.time() - t0
        r = alive(s, what="after worker-socket garbage")
        check(r["stats"]["workers"] == 1, "garbage changed the workers: %r" % r["stats"])
        # the running request is ended by its own worker only, the done one is untouched
        r = agent.call("await", id=slow, timeout_ms=10000, timeout=15)
        check(r and r["ok"] and r["state"] == "done" and r["outcome"] == "ok"
              and r["value"] == "'slow'", r)
        r = agent.call("status", id=first["id"])
        check(r["ok"] and r["outcome"] == "ok" and r["stdout"] == "first\n"
              and r["finished_at"] == first["finished_at"], r)
        again = agent.run("print('still serving')")
        SUBMITTED.append("print('still serving')")
        check(again["outcome"] == "ok" and again["stdout"] == "still serving\n", again)
        # rate-limited complaints: about two lines a second, not one per message
        added = log_lines(s) - before
        check(added <= 2 * (elapsed + 2) + 4,
              "%d log lines for %d garbage messages in %.1fs"
              % (added, 3 * len(everything), elapsed))
    finally:
        agent.close()


@test
def every_client_frame_gets_its_stable_code():
    """client/ is sent with the agent key, admin/ with the admin key; a ping after each
    directory (a batch) shows the broker still answers."""
    s = shared()
    problems = []
    corpus = []
    for kind, key in (("client", "agent"), ("admin", "admin")):
        entries = load(kind)
        corpus += entries
        batches = {}
        for entry in entries:
            batches.setdefault(entry[1], []).append(entry)
        if kind == "client":
            check({"ok", "bad_json", "bad_utf8", "not_object", "unknown_op", "unknown_key",
                   "bad_type", "bad_value", "missing_field", "bad_frames"} <= set(batches),
                  sorted(batches))
        c = s.client(key)
        try:
            for code in sorted(batches):
                for name, expected, frames in batches[code]:
                    c.send_raw(*frames)
                    problems += judge(name, expected, frames, recv_reply(c.sock, 5))
                alive(s, c, "after the %s/%s batch" % (kind, code))
        finally:
            c.close()
    # a worker key on the client socket: parsed, then refused
    w = s.client("worker")
    try:
        ping = b'{"op":"ping","rid":"w"}'
        w.send_raw(ping)
        problems += judge("worker-key-ping", "forbidden", [ping], recv_reply(w.sock, 5))
    finally:
        w.close()
    check(not problems, "%d of %d frames misanswered:\n  %s"
          % (len(problems), len(corpus), "\n  ".join(problems)))


@test
def frames_at_the_documented_size_limits():
    """1 MiB is the largest frame read, 64 MiB the largest answered with too_large."""
    s = shared()
    problems = []
    head = b'{"op":"ping","rid":"edge"}'

    def one(size, fill=b" "):
        return head + fill * (size - len(head))

    for size, expected in ((MAX_FRAME, "ok"), (MAX_FRAME + 1, "too_large"),
                           (MAX_WIRE, "too_large")):
        c = s.client("agent")
        try:
            frame = one(size)
            c.send_raw(frame)
            problems += judge("frame-of-%d-bytes" % size, expected, [frame], recv_reply(c.sock, 20))
        finally:
            c.close()
    # also as garbage: a frame of exactly 64 MiB of 0xff is still answered, before any UTF-8 check
    c = s.client("agent")
    try:
        frame = b"\xff" * MAX_WIRE
        c.send_raw(frame)
        problems += judge("garbage-of-64-MiB", "too_large", [frame], recv_reply(c.sock, 20))
    finally:
        c.close()
    # one byte over: libzmq drops the connection, nothing is answered, the broker lives on
    c = s.client("agent")
    try:
        c.send_raw(one(MAX_WIRE + 1))
        late = recv_reply(c.sock, 3)
        if late is not None:
            problems.append("64 MiB + 1 was answered: %r" % (late[0][:200],))
    finally:
        c.close()
    alive(s, what="after a frame above 64 MiB")
    check(not problems, "\n  ".join(problems))


@test
def replaying_the_corpus_keeps_memory_flat():
    """20 quick rounds of the whole corpus (client frames pipelined, worker garbage beside
    them): every message answered, the broker's RSS stays within a few MB."""
    s = shared()
    client, admin, worker = load("client"), load("admin"), load("worker")
    c, a = s.client("agent"), s.client("admin")
    rogue = raw_socket(s, s.workers_ep, "worker")
    intruder = raw_socket(s, s.workers_ep, "agent")
    problems = []

    def one_round():
        for sock, entries in ((c, client), (a, admin)):
            for _, _, frames in entries:
                sock.send_raw(*frames)
        global INTRUDED
        for _, _, frames in worker + client + admin:
            rogue.send_raw(*frames)
            INTRUDED += len(frames) != 1
            intruder.send_raw(*frames)
            INTRUDED += 1
        for sock, entries in ((c, client), (a, admin)):
            for name, expected, frames in entries:
                reply = recv_reply(sock.sock, 10)
                problems.extend(judge(name, expected, frames, reply, strict=False))
        while rogue.sock.poll(0):
            rogue.sock.recv_multipart()

    try:
        for _ in range(3):                  # warm up: caches, SQLite pages, allocator arenas
            one_round()
        alive(s, c)
        base = rss_kb(s.broker.pid)
        t0 = time.time()
        for _ in range(20):
            one_round()
            if problems:
                break
        elapsed = time.time() - t0
        alive(s, c, "after 20 rounds")
        grown = rss_kb(s.broker.pid) - base
        print("   20 rounds of %d client + %d worker-socket messages in %.1fs; broker RSS %+d KiB "
              "(from %d KiB)" % (len(client + admin), 2 * len(worker + client + admin), elapsed,
                                 grown, base), flush=True)
        check(not problems, "%d misanswered, e.g.:\n  %s"
              % (len(problems), "\n  ".join(problems[:20])))
        # (ASan's quarantine holds freed memory back: its RSS says nothing about leaks)
        check(ASAN or grown < 4096, "broker RSS grew by %d KiB over 20 rounds" % grown)
    finally:
        for sock in (c, a, rogue, intruder):
            sock.close()


@test
def the_record_holds_refusals_but_no_attacker_bytes():
    s = shared()
    time.sleep(1.5 * SLOW)                  # the last one-second windows close and are recorded
    alive(s)
    problems = []
    rows = read_only(s, "select seq, type, actor, request_id, data from events order by seq")
    rejected = [(seq, actor, json.loads(data)) for seq, kind, actor, _, data in rows
                if kind == "rejected"]
    check(rejected or REFUSED == 0, "no rejected events for %d refusals" % REFUSED)
    total = 0
    for seq, actor, data in rejected:
        if not isinstance(data, dict) or not set(data) <= REJECTED_KEYS or "code" not in data:
            problems.append("event %d holds %r" % (seq, data))
            continue
        if data["code"] not in CODES:
            problems.append("event %d: code %r" % (seq, data["code"]))
        for k in ("size", "count", "bytes"):
            if not isinstance(data.get(k), int) or data[k] < 0:
                problems.append("event %d: %s is %r" % (seq, k, data.get(k)))
        if data.get("size", 0) > MAX_WIRE:
            problems.append("event %d: a frame above 64 MiB was read: %r" % (seq, data))
        if data.get("principal") not in ("agent", "admin", "worker"):
            problems.append("event %d: principal %r" % (seq, data.get("principal")))
        if actor != data.get("principal") and not (actor == "broker" and data.get("overflow")):
            problems.append("event %d: actor %r" % (seq, actor))
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(data.get("first_at"))):
            problems.append("event %d: first_at %r" % (seq, data.get("first_at")))
        total += data.get("count", 0)
    if total != REFUSED + INTRUDED:
        problems.append("rejected events count %d refusals, the broker gave %d error replies and "
                        "had %d client-key messages on its worker socket" % (total, REFUSED, INTRUDED))
    # no event of any type quotes an attacker or an error text
    for seq, kind, _, _, data in rows:
        blob = data.encode() if isinstance(data, str) else bytes(data or b"")
        for needle in [CANARY] + ERROR_TEXTS:
            if needle in blob:
                problems.append("event %d (%s) holds %r: %s" % (seq, kind, needle, blob[:300]))
    # nor does any byte of the database files (WAL included)
    for suffix in ("", "-wal"):
        path = s.db + suffix
        if os.path.exists(path) and CANARY in open(path, "rb").read():
            problems.append("%s holds the canary" % os.path.basename(path))
    # no request was made by a malformed frame
    codes = [r[0] for r in read_only(s, "select code from requests order by id")]
    if codes != SUBMITTED:
        problems.append("requests %r, expected only %r" % (codes, SUBMITTED))
    r = s.cli("verify")
    if r.returncode != 0 or not r.stdout.startswith("ok"):
        problems.append("verify: %s %s" % (r.stdout, r.stderr))
    check(not problems, "\n  ".join(problems))
    print("   %d rejected events stand for %d refusals; verify: %s"
          % (len(rejected), total, r.stdout.splitlines()[0]), flush=True)


if __name__ == "__main__":
    try:
        rc = run_all("frames")
    finally:
        if S is not None:
            bad = S.stop()
            if bad:
                print("sanitizer reports:\n" + "\n".join(bad), flush=True)
                rc = 1
    sys.exit(rc)
