"""tests/egress_servers.py: local servers that stand in for the internet in the egress tests
(tests/test_egress.py) and the egress bench (tests/bench.py).

Everything runs in threads of the calling process, on 127.0.0.1, on ports the OS picks (several
stacks may share the host). `EgressServers().start()` brings up four servers:

- `http`: a plain HTTP origin. `/hello` answers HELLO; `/bytes/N` answers N bytes, written in
  chunks from one shared buffer so that 100 MB never sit in memory; any other path is a 404.
  Every request's line and Host header are kept (`seen()`), so a test can check what a proxy
  forwarded, and a request that never arrived is provably absent.
- `https`: the same origin behind TLS, with a self-signed certificate made at start by the
  `openssl` command (CN localhost, subjectAltName IP:127.0.0.1 and DNS:localhost). `cert_pem`
  holds its PEM text, to be handed to a sandbox that cannot read this host's temp dir.
- `other`: one more plain HTTP origin like `http`, for the tests to leave out of every grant:
  that it saw nothing shows that a denied request never left the proxy.
- `index`: a PEP 503 "simple" package index with one pure-Python wheel, tinypkg 0.1.0, built
  at start with zipfile (METADATA, WHEEL and a RECORD with hashes), so that
  `pip download --no-deps --index-url http://127.0.0.1:PORT/simple/ tinypkg` fetches it.

Run as a program, it starts them, checks each with curl and pip from this host and stops
(`--check`), or starts them and waits for Ctrl-C, printing the ports (`--serve`)."""
import base64, hashlib, http.server, io, json, os, shutil, socket, ssl, subprocess, sys
import tempfile, threading, time, zipfile

HELLO = b"hello from the replgate egress origin\n"
CHUNK = b"\x5a" * (256 * 1024)          # /bytes/N writes slices of this, never N bytes at once
MAX_BYTES = 1 << 34                    # the most /bytes/N serves
WHEEL_NAME = "tinypkg-0.1.0-py3-none-any.whl"


class _Origin(http.server.BaseHTTPRequestHandler):
    """The origin's handler, shared by the HTTP and HTTPS servers; `self.server.owner` is the
    EgressServers that records what it saw."""
    protocol_version = "HTTP/1.1"      # keep-alive with Content-Length: what real origins do
    timeout = 30                       # a client that stops talking does not hold a thread forever

    def log_message(self, *args):      # quiet: the record of requests is seen()
        pass

    def _record(self):
        self.server.owner._saw(self.server.kind, self.command, self.requestline, self.headers.get("Host"))

    def _send(self, code, body=b"", ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drain_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        while n > 0:
            got = self.rfile.read(min(n, 65536))
            if not got:
                break
            n -= len(got)

    def _path(self):
        """The path without query, also when a client (or proxy) sent the absolute form."""
        p = self.path
        if p.startswith("http://") or p.startswith("https://"):
            p = "/" + p.split("/", 3)[3] if p.count("/") >= 3 else "/"
        return p.split("?", 1)[0]

    def do_GET(self):
        self._record()
        self._drain_body()
        path = self._path()
        if path == "/hello":
            return self._send(200, HELLO)
        if path.startswith("/bytes/"):
            try:
                n = int(path[len("/bytes/"):])
            except ValueError:
                n = -1
            if not 0 <= n <= MAX_BYTES:
                return self._send(400, b"bad size\n")
            return self._stream(n)
        if self.server.kind == "index":
            return self._index(path)
        self._send(404, b"not here\n")

    do_HEAD = do_GET

    def do_POST(self):
        self._record()
        self._drain_body()
        self._send(200, HELLO) if self._path() == "/hello" else self._send(404, b"not here\n")

    do_PUT = do_DELETE = do_POST

    def _stream(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.command == "HEAD":
            return
        view = memoryview(CHUNK)
        try:
            while n > 0:
                k = min(n, len(CHUNK))
                self.wfile.write(view[:k])
                n -= k
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True   # the client (or a proxy at its cap) went away

    def _index(self, path):
        owner = self.server.owner
        if path in ("/simple", "/simple/"):
            body = b'<!DOCTYPE html>\n<html><body><a href="tinypkg/">tinypkg</a></body></html>\n'
            return self._send(200, body, "text/html")
        if path in ("/simple/tinypkg", "/simple/tinypkg/"):
            body = ('<!DOCTYPE html>\n<html><body><a href="../../packages/%s#sha256=%s">%s</a>'
                    '</body></html>\n' % (WHEEL_NAME, owner.wheel_sha256, WHEEL_NAME)).encode()
            return self._send(200, body, "text/html")
        if path == "/packages/" + WHEEL_NAME:
            return self._send(200, owner.wheel, "application/octet-stream")
        self._send(404, b"not here\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 512          # the hostile tests open hundreds of connections at once

    def __init__(self, owner, kind, tls=None):
        self.owner, self.kind, self.tls = owner, kind, tls
        super().__init__(("127.0.0.1", 0), _Origin)

    def handle_error(self, request, client_address):
        """A client that went away mid-request is the hostile tests' normal case: no traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)

    def finish_request(self, request, client_address):
        """TLS is set up here, in the connection's own thread, so a client that never finishes
        its handshake holds only that thread, not the accept loop."""
        if self.tls is not None:
            request.settimeout(30)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
        super().finish_request(request, client_address)


def make_cert(directory):
    """A self-signed certificate and key made by openssl into directory: (cert path, key path)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cert, key


def _b64hash(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel():
    """tinypkg 0.1.0 as a py3-none-any wheel (bytes), with a RECORD that pip would accept."""
    files = [
        ("tinypkg/__init__.py", b'"""A tiny package served by the replgate egress tests."""\n'
                                b'__version__ = "0.1.0"\nVALUE = 42\n'),
        ("tinypkg-0.1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1.0\n"
                                             b"Summary: A tiny package for the replgate egress tests\n"),
        ("tinypkg-0.1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nGenerator: replgate-tests\n"
                                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        ("tinypkg-0.1.0.dist-info/top_level.txt", b"tinypkg\n"),
    ]
    record = "".join("%s,sha256=%s,%d\n" % (name, _b64hash(data), len(data)) for name, data in files)
    record += "tinypkg-0.1.0.dist-info/RECORD,,\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files + [("tinypkg-0.1.0.dist-info/RECORD", record.encode())]:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return out.getvalue()


class EgressServers:
    """The servers; start() returns self. Ports: http_port, https_port, index_port, other_port."""

    def __init__(self):
        self.dir = None
        self.servers = {}
        self.threads = []
        self._seen = []
        self._lock = threading.Lock()

    def _saw(self, kind, method, line, host):
        with self._lock:
            self._seen.append({"server": kind, "method": method, "line": line, "host": host, "at": time.time()})

    def seen(self, kind=None):
        """What the servers were asked so far: dicts of server, method, line, host, at."""
        with self._lock:
            return [dict(s) for s in self._seen if kind is None or s["server"] == kind]

    def saw_path(self, kind, fragment):
        """The requests of server kind whose request line contains fragment."""
        return [s for s in self.seen(kind) if fragment in s["line"]]

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="replgate-egress-")
        self.cert_path, self.key_path = make_cert(self.dir)
        self.cert_pem = open(self.cert_path).read()
        self.wheel = make_wheel()
        self.wheel_sha256 = hashlib.sha256(self.wheel).hexdigest()
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.cert_path, self.key_path)
        for kind, ctx in (("http", None), ("https", tls), ("index", None), ("other", None)):
            srv = _Server(self, kind, ctx)
            self.servers[kind] = srv
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                 name="egress-" + kind, daemon=True)
            t.start()
            self.threads.append(t)
        self.http_port = self.servers["http"].server_address[1]
        self.https_port = self.servers["https"].server_address[1]
        self.index_port = self.servers["index"].server_address[1]
        self.other_port = self.servers["other"].server_address[1]
        return self

    def url(self, kind, path):
        scheme = "https" if kind == "https" else "http"   # kind: http, https, index, other
        return "%s://127.0.0.1:%d%s" % (scheme, self.servers[kind].server_address[1], path)

    @property
    def index_url(self):
        return "http://127.0.0.1:%d/simple/" % self.index_port

    def stop(self):
        for srv in self.servers.values():
            srv.shutdown()
            srv.server_close()
        for t in self.threads:
            t.join(5)
        self.servers, self.threads = {}, []
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def self_check(s):
    """Each server, from this host, with the tools the sandboxed snippets use: curl (HTTP, and
    HTTPS trusting only the test cert), urllib, and pip download from the index. Raises on a
    failure; returns what it checked."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    out = []
    r = subprocess.run(["curl", "-sS", "--fail", s.url("http", "/hello?via=curl")], capture_output=True, env=env, timeout=30)
    assert r.returncode == 0 and r.stdout == HELLO, r
    assert s.saw_path("http", "/hello?via=curl")[0]["host"] == "127.0.0.1:%d" % s.http_port, s.seen("http")
    out.append("curl http /hello")
    r = subprocess.run(["curl", "-sS", "--fail", "--cacert", s.cert_path, s.url("https", "/hello?via=curl")],
                       capture_output=True, env=env, timeout=30)
    assert r.returncode == 0 and r.stdout == HELLO, r
    r = subprocess.run(["curl", "-sS", "--fail", "--cacert", s.cert_path,
                        "https://localhost:%d/hello" % s.https_port], capture_output=True, env=env, timeout=30)
    assert r.returncode == 0 and r.stdout == HELLO, ("DNS:localhost in the SAN", r)
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", s.url("https", "/hello")], capture_output=True, env=env, timeout=30)
    assert r.returncode != 0, "curl trusted the self-signed cert without --cacert"
    out.append("curl https /hello with --cacert (and refused without)")
    r = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}",
                        s.url("http", "/bytes/1000000")], capture_output=True, env=env, timeout=30)
    assert r.returncode == 0 and r.stdout == b"1000000", r
    out.append("curl http /bytes/1000000")
    import urllib.request
    ctx = ssl.create_default_context(cadata=s.cert_pem)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    assert opener.open(s.url("https", "/hello"), timeout=10).read() == HELLO
    out.append("urllib https /hello with cadata")
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(["/usr/bin/python3", "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                            "--disable-pip-version-check", "--index-url", s.index_url, "-d", d, "tinypkg"],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0 and os.listdir(d) == [WHEEL_NAME], (r.stdout, r.stderr)
        assert open(os.path.join(d, WHEEL_NAME), "rb").read() == s.wheel
        t = os.path.join(d, "target")
        r = subprocess.run(["/usr/bin/python3", "-m", "pip", "install", "--no-deps", "--no-index", "--no-cache-dir",
                            "--disable-pip-version-check", "--target", t, os.path.join(d, WHEEL_NAME)],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, (r.stdout, r.stderr)
        r = subprocess.run(["/usr/bin/python3", "-c", "import tinypkg; print(tinypkg.VALUE)"],
                           capture_output=True, text=True, env=dict(env, PYTHONPATH=t), timeout=30)
        assert r.stdout.strip() == "42", r
    assert s.saw_path("index", "/packages/" + WHEEL_NAME), s.seen("index")
    out.append("pip download tinypkg from the index (and the wheel installs and imports)")
    return out


if __name__ == "__main__":
    with EgressServers() as servers:
        if "--serve" in sys.argv[1:]:
            print(json.dumps({"http": servers.http_port, "https": servers.https_port, "index": servers.index_port,
                              "cert": servers.cert_path}), flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        else:
            for line in self_check(servers):
                print("ok:", line)
            print("egress servers: %d requests seen" % len(servers.seen()))
