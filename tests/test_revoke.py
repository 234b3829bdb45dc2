"""tests/test_revoke.py: revoking keys on open connections, and refusal floods that stay small
in the record."""
import json, os, signal, stat, time
import zmq
import harness
from harness import Stack, check, read_cert, run_all, test, SLOW

UIDS = ["--uid-base", "261000"]


def stack(**kw):
    return Stack(worker_args=UIDS, **kw)


def keygen(s, name, role="agent"):
    p = s.cli("keygen", name, "--role", role)
    check(p.returncode == 0, p.stderr)


def done(s):
    p = s.cli("verify")
    bad = s.stop()
    check(p.returncode == 0, ("verify", p.stdout, p.stderr))
    check(not bad, "sanitizer report")


def events(s, type_, actor=None, after=0):
    q = "select seq, actor, data from events where type = ? and seq > ?"
    args = [type_, after]
    if actor is not None:
        q += " and actor = ?"
        args.append(actor)
    return [(seq, a, json.loads(d)) for seq, a, d in s.sql(q + " order by seq", *args)]


def refused_within(c, seconds):
    """Pings until the connection is refused as revoked; the seconds it took, or None."""
    t0 = time.time()
    while time.time() - t0 < seconds * SLOW:
        r = c.call("ping", timeout=0.3)
        if r is not None:
            if not r["ok"] and r["error"]["code"] == "forbidden" and r["error"]["message"] == "key revoked":
                return time.time() - t0
            check(r["ok"], ("unexpected refusal", r))
        time.sleep(0.02)
    return None


def check_silenced(s, c, name, since_seq):
    """Every message on c is refused now: answers (at most one a second) say forbidden, no
    request is recorded, and the key's only events after since_seq are rejections."""
    before = s.sql("select count(*) from requests")[0][0]
    for i in range(50):
        c.send_raw(json.dumps({"op": "submit", "rid": "late%d" % i, "lang": "python", "code": "1",
                               "session": "late"}))
    replies = []
    deadline = time.time() + 1.5 * SLOW
    while time.time() < deadline:
        r = c.recv(0.2)
        if r is not None:
            replies.append(r)
    # the ping that saw the refusal was answered less than a second ago: maybe none of these is
    check(all(not r["ok"] and r["error"]["code"] == "forbidden" for r in replies), replies)
    check(len(replies) <= 3, ("answered more than once a second", len(replies)))
    check(s.sql("select count(*) from requests")[0][0] == before, "a revoked key's submit was recorded")
    check(s.sql("select count(*) from requests where principal = ? and session = 'late'", name)[0][0] == 0,
          "late request")
    time.sleep(1.2)              # the aggregated rejections are on record by now
    mine = s.sql("select type, data from events where actor = ? and seq > ?", name, since_seq)
    check(mine and all(t == "rejected" for t, _ in mine), mine)
    check(all(json.loads(d)["code"] == "forbidden" for _, d in mine), mine)
    check(sum(json.loads(d)["count"] for _, d in mine) >= 50, mine)


@test
def admin_revokes_an_open_connection():
    s = stack()
    try:
        keygen(s, "mallory")
        m = s.client("mallory")
        r = m.run("1 + 1", session="m")
        check(r["state"] == "done" and r["value"] == "2", r)
        key = read_cert(s.key("mallory"))["public"]
        p = s.cli("revoke", "mallory")
        check(p.returncode == 0 and "revoked mallory" in p.stdout, (p.returncode, p.stdout, p.stderr))
        keys = os.path.join(s.dir, "keys")
        check(not os.path.exists(os.path.join(keys, "trusted", "mallory.cert")), "still trusted")
        check(os.path.exists(os.path.join(keys, "revoked", "mallory.cert")), "not moved to revoked/")
        check(stat.S_IMODE(os.stat(os.path.join(keys, "revoked")).st_mode) == 0o700, "revoked/ mode")
        ev = events(s, "revoked")
        check(len(ev) == 1 and ev[0][1] == "admin", ev)
        check(ev[0][2] == {"name": "mallory", "key": key, "role": "agent"}, ev)
        took = refused_within(m, 1.0)
        check(took is not None, "the open connection still speaks")
        check_silenced(s, m, "mallory", ev[0][0])
        # answers resume once a second, still refusals
        time.sleep(1.0)
        r = m.call("ping", timeout=1.0)
        check(r and not r["ok"] and r["error"]["code"] == "forbidden", r)
        # a new connection with the key gets nothing at all (zauth refuses the handshake)
        fresh = s.client("mallory")
        check(fresh.call("ping", timeout=1.5) is None, "a revoked key connected")
        # everyone else is served as before; revoking again finds nothing
        a = s.client("agent")
        check(a.run("'still'", session="a")["value"] == "'still'", "agent")
        p = s.cli("revoke", "mallory")
        check(p.returncode == 3 and "not_found" in p.stderr, (p.returncode, p.stderr))
        for c in (m, fresh, a):
            c.close()
    finally:
        done(s)


@test
def revoked_key_loses_its_subscription():
    s = stack()
    try:
        keygen(s, "watcher", "approver")
        w = s.client("watcher")
        check(w.call("subscribe", since=0)["ok"], "subscribe")
        a = s.client("agent")
        check(a.run("1", session="x")["state"] == "done", "run")
        got = []
        deadline = time.time() + 3 * SLOW
        while time.time() < deadline and not any(e.get("type") == "done" for e in got):
            m = w.recv(0.2)
            if m and m.get("op") == "event":
                got.append(m)
        check(any(e["type"] == "done" for e in got), "subscription not served before revoking")
        p = s.cli("revoke", "watcher")
        check(p.returncode == 0, p.stderr)
        time.sleep(0.3)
        while w.recv(0.2):          # whatever was already on its way
            pass
        for i in range(3):
            check(a.run("%d" % i, session="x")["state"] == "done", "run after revoke")
        late = []
        deadline = time.time() + 1.0 * SLOW
        while time.time() < deadline:
            m = w.recv(0.2)
            if m and m.get("op") == "event":
                late.append(m["type"])
        check(not late, ("a revoked key is still pushed events", late))
        w.close()
        a.close()
    finally:
        done(s)


@test
def deleting_the_cert_by_hand_revokes():
    s = stack()
    try:
        keygen(s, "eve")
        e = s.client("eve")
        check(e.run("'hi'", session="e")["value"] == "'hi'", "eve before")
        path = os.path.join(s.dir, "keys", "trusted", "eve.cert")
        saved = open(path).read()
        seq = s.sql("select coalesce(max(seq), 0) from events")[0][0]
        os.unlink(path)
        took = refused_within(e, 1.5)
        check(took is not None, "deleting trusted/eve.cert did not stop the open connection")
        ev = events(s, "revoked", after=seq)
        check(len(ev) == 1 and ev[0][1] == "broker", ev)
        check(ev[0][2]["name"] == "eve" and ev[0][2]["reason"] == "removed from trusted/", ev)
        check_silenced(s, e, "eve", ev[0][0])
        # put back, it is trusted again: the same connection speaks again
        with open(path, "w") as f:
            f.write(saved)
        t0 = time.time()
        r = None
        while time.time() - t0 < 1.5 * SLOW:
            r = e.call("ping", timeout=0.3)
            if r and r["ok"]:
                break
            time.sleep(0.05)
        check(r and r["ok"] and r["principal"] == "eve", ("trusted again", r))
        check(len(events(s, "revoked")) == 1, "a re-added key was recorded as revoked again")
        e.close()
    finally:
        done(s)


@test
def revoked_worker_is_dropped():
    s = stack()
    try:
        keygen(s, "w2", "worker")
        s.start_worker("w2", extra=["--key", s.key("w2"), "--uid-base", "261100"])
        s.wait_workers(2)
        seq = s.sql("select coalesce(max(seq), 0) from events")[0][0]
        p = s.cli("revoke", "w2")
        check(p.returncode == 0, (p.stdout, p.stderr))
        admin = s.client("admin")
        deadline = time.time() + 6 * SLOW
        while time.time() < deadline and admin.call("ping")["stats"]["workers"] != 1:
            time.sleep(0.1)
        check(admin.call("ping")["stats"]["workers"] == 1, "the revoked worker is still counted")
        check(events(s, "worker_lost", after=seq), "no worker_lost")
        dropped = events(s, "rejected", actor="w2", after=seq)
        check(dropped and all(d["code"] == "forbidden" for _, _, d in dropped), dropped)
        a = s.client("agent")
        check(a.run("'w0'", session="after")["value"] == "'w0'", "the other worker serves")
        a.close()
        admin.close()
    finally:
        done(s)


@test
def revoke_is_for_admins_and_checks_its_input():
    s = stack(workers=0)
    try:
        keygen(s, "bob")
        agent, admin = s.client("agent"), s.client("admin")
        r = agent.call("revoke", name="bob")
        check(r and not r["ok"] and r["error"]["code"] == "forbidden", r)
        for name, code in (("nobody", "not_found"), (5, "bad_type"), ("../private/admin", "bad_value"),
                           ("", "bad_value"), ("x" * 200, "bad_value")):
            r = admin.call("revoke", name=name)
            check(r and not r["ok"] and r["error"]["code"] == code, (name, r))
        r = admin.call("revoke")
        check(r and not r["ok"] and r["error"]["code"] == "missing_field", r)
        check(os.path.exists(os.path.join(s.dir, "keys", "trusted", "bob.cert")), "bob was touched")
        check(not events(s, "revoked"), "a refused revoke was recorded")
        # the CLI: 2 usage, 3 forbidden or not found, 7 unreachable, 0 done
        check(s.cli("revoke").returncode == 2, "usage")
        p = s.cli("revoke", "bob", "--key", s.key("agent"))
        check(p.returncode == 3 and "forbidden" in p.stderr, (p.returncode, p.stderr))
        p = s.cli("revoke", "nobody")
        check(p.returncode == 3 and "not_found" in p.stderr, (p.returncode, p.stderr))
        p = s.cli("revoke", "bob", "--broker", "tcp://127.0.0.1:9")
        check(p.returncode == 7 and "the last connection: Connection refused" in p.stderr,
              (p.returncode, p.stderr))
        p = s.cli("revoke", "bob", "--json")
        check(p.returncode == 0 and json.loads(p.stdout)["revoked"] == "bob", (p.stdout, p.stderr))
        agent.close()
        admin.close()
    finally:
        done(s)


def garbage(i, secret):
    kind = i % 5
    if kind == 0:
        return b"not json %d" % i
    if kind == 1:
        return b'{"op":"ping","rid":"g%d","%s":1}' % (i, secret.encode())
    if kind == 2:
        return b'{"op":"ping","rid":"g%d","x":"\xff\xfe%d"}' % (i, i)
    if kind == 3:
        return b'{"op":"ping","rid":' + secret.encode() + b"}"          # jansson: near 'TOKEN'
    return b'{"op":"status","rid":"g%d","id":"seven"}' % i


@test
def garbage_flood_is_aggregated():
    s = stack(workers=0)
    try:
        keygen(s, "flooder")
        c = s.client("flooder")
        secret = "zq" + os.urandom(30).hex()           # a long unknown key name, and a bad token
        seq = s.sql("select coalesce(max(seq), 0) from events")[0][0]
        n, sent, got, codes = 5000, 0, [], {}
        t0 = time.time()
        while len(got) < n:
            if sent < n and sent - len(got) < 500 and c.sock.poll(0, zmq.POLLOUT):
                c.send_raw(garbage(sent, secret))
                sent += 1
                continue
            r = c.recv(10)
            check(r is not None, ("no answer to a refused message", sent, len(got)))
            got.append(r)
        elapsed = time.time() - t0
        check(all(not r["ok"] for r in got), "a garbage frame was accepted")
        for r in got:
            codes[r["error"]["code"]] = codes.get(r["error"]["code"], 0) + 1
        check(set(codes) == {"bad_json", "unknown_key", "bad_utf8", "bad_type"}, codes)
        time.sleep(1.5)                                  # the last window closes
        rows = events(s, "rejected", actor="flooder", after=seq)
        check(0 < len(rows) <= elapsed + 2, ("too many rejected events", len(rows), elapsed))
        check(all("count" in d and d["principal"] == "flooder" and "message" not in d for _, _, d in rows), rows)
        check(sum(d["count"] for _, _, d in rows) == n, [d for _, _, d in rows])
        check(rows[0][2]["code"] == "bad_json" and rows[0][2]["size"] == len(garbage(0, secret)), rows[0])
        # none of the garbage reached the record, not even quoted in an error message
        check(s.sql("select count(*) from events where instr(data, ?) > 0", secret[:16])[0][0] == 0,
              "garbage bytes in the events table")
        check(s.sql("select count(*) from events where data like '%near%'")[0][0] == 0, "jansson text recorded")
        # the client was told what was wrong each time, the key name included (to it alone)
        check(any(secret[:16] in r["error"]["message"] for r in got), "error messages lost their detail")
        check(c.call("ping")["ok"], "the flooder's connection still works")
        c.close()
    finally:
        done(s)


@test
def pending_rejections_are_flushed_at_shutdown():
    # czmq's SIGTERM handler ends the loop cleanly, so the broker can flush on the way out.
    orig = harness.proc_env
    harness.proc_env = lambda: {k: v for k, v in os.environ.items() if k != "ZSYS_SIGHANDLER"}
    try:
        s = stack(workers=0)
    finally:
        harness.proc_env = orig
    try:
        c = s.client("agent")
        seq = s.sql("select coalesce(max(seq), 0) from events")[0][0]
        for i in range(100):
            c.send_raw(b"garbage %d" % i)
        check(all(c.recv(5) is not None for _ in range(100)), "missing error replies")
        c.close()
        s.broker.send_signal(signal.SIGTERM)
        s.broker.wait(timeout=10 * SLOW)
        rows = events(s, "rejected", actor="agent", after=seq)
        check(sum(d["count"] for _, _, d in rows) == 100, [d for _, _, d in rows])
    finally:
        done(s)


if __name__ == "__main__":
    raise SystemExit(run_all("test_revoke"))
