"""tests/harness.py: starts real brokers and workers on loopback and talks to them.

Integration tests use real processes, real CURVE keys (made by the broker) and a real SQLite
file. `Stack` owns one state directory and the processes on it; `Client` is a pyzmq DEALER with
the key pair of a named principal."""
import atexit, json, os, re, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, time, traceback
import zmq

BIN = os.environ.get("REPLGATE_BIN", os.path.join(os.path.dirname(__file__), "..", "bin"))
ASAN = os.environ.get("REPLGATE_ASAN") == "1"
SLOW = 3 if ASAN else 1          # sanitizers make everything slower; deadlines scale with it


def proc_env():
    """Environment of broker and worker processes. Under ASan they keep czmq's SIGTERM handler,
    so stop() ends them with a clean exit and LeakSanitizer gets to report."""
    env = dict(os.environ)
    if ASAN:
        env.pop("ZSYS_SIGHANDLER", None)
    else:
        env["ZSYS_SIGHANDLER"] = "false"
    return env


def free_port_pair():
    """Two consecutive free TCP ports on 127.0.0.1."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port >= 65000:
            continue
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port + 1))
            t.close()
            return port
        except OSError:
            t.close()
    raise RuntimeError("no free port pair")


def read_cert(path):
    """Reads a czmq ZPL cert: returns dict with public, secret (if present) and metadata."""
    out = {"meta": {}}
    for p in (path, path + "_secret"):
        if not os.path.exists(p):
            continue
        section = None
        for line in open(p):
            if line.startswith("#") or not line.strip():
                continue
            if not line.startswith(" "):
                section = line.strip()
                continue
            m = re.match(r'\s+([\w-]+)\s*=\s*"(.*)"', line)
            if not m:
                continue
            k, v = m.groups()
            if section == "metadata":
                out["meta"][k] = v
            elif k == "public-key":
                out["public"] = v
            elif k == "secret-key":
                out["secret"] = v
    return out


class Client:
    def __init__(self, endpoint, cert_path, server_cert_path, ctx=None):
        self.ctx = ctx or zmq.Context.instance()
        cert, server = read_cert(cert_path), read_cert(server_cert_path)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_secretkey = cert["secret"].encode()
        self.sock.curve_publickey = cert["public"].encode()
        self.sock.curve_serverkey = server["public"].encode()
        self.sock.connect(endpoint)
        self.n = 0

    def send_raw(self, *frames):
        self.sock.send_multipart([f if isinstance(f, bytes) else f.encode() for f in frames])

    def recv(self, timeout=5.0):
        if self.sock.poll(int(timeout * 1000 * SLOW)):
            return json.loads(self.sock.recv())
        return None

    def call(self, op, timeout=5.0, **fields):
        self.n += 1
        rid = "t%d" % self.n
        msg = dict(fields, op=op, rid=rid)
        self.sock.send(json.dumps(msg).encode())
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            reply = self.recv(deadline - time.time())
            if reply is None:
                return None
            if reply.get("rid") == rid and "op" not in reply:
                return reply
        return None

    def run(self, code, lang="python", session="default", timeout=30.0, **kw):
        """Submits and waits for the terminal state; returns the request row."""
        r = self.call("submit", lang=lang, code=code, session=session, wait_ms=int(timeout * 1000 * SLOW),
                      timeout=timeout + 5, **kw)
        assert r is not None, "no reply to submit"
        assert r["ok"], r
        return r

    def close(self):
        self.sock.close()


class FakeWorker:
    """A worker key speaking the worker protocol by hand, to send results no real worker would."""

    def __init__(self, stack, name):
        cert, server = read_cert(stack.key("worker")), read_cert(os.path.join(stack.dir, "keys", "broker.cert"))
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_secretkey = cert["secret"].encode()
        self.sock.curve_publickey = cert["public"].encode()
        self.sock.curve_serverkey = server["public"].encode()
        self.sock.connect(stack.workers_ep)
        self.send({"op": "ready", "name": name, "slots": 4, "sandbox": "none", "sessions": [], "running": []})

    def send(self, msg):
        self.sock.send(msg if isinstance(msg, bytes) else json.dumps(msg).encode())

    def next(self, op, timeout=10):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            self.send({"op": "heartbeat"})
            if self.sock.poll(200):
                m = json.loads(self.sock.recv())
                if m.get("op") == op:
                    return m
        return None

    def close(self):
        self.sock.close()


def default_uid(args):
    """A worker without --uid-base takes REPLGATE_TEST_UID_BASE when set, so that two checkouts can run
    their suites side by side without their sandboxes sharing host uids."""
    base = os.environ.get("REPLGATE_TEST_UID_BASE")
    return [] if base is None or "--uid-base" in args else ["--uid-base", base]


_scratch = []               # directories scratch_dir made in this run
_failed = False             # a test of this run failed: its directories stay for a look


def scratch_dir(prefix):
    """A fresh directory under the temporary directory (a stack's state, a secrets file...),
    removed when the test program exits if every test passed: a suite run leaves about a
    gigabyte of databases and logs behind otherwise. If one failed, all stay, and are named."""
    d = tempfile.mkdtemp(prefix=prefix)
    _scratch.append(d)
    return d


@atexit.register
def _remove_scratch():
    # After the program's own `finally` stopped its shared stacks: nothing writes there now.
    if _failed:
        if _scratch:
            print("kept for a look: %s" % " ".join(_scratch), flush=True)
        return
    for d in _scratch:
        shutil.rmtree(d, ignore_errors=True)


class Stack:
    """A broker and (optionally) a worker on fresh ports and a fresh state directory."""

    ALLOW_ALL = {"version": 1, "rules": [{"name": "allow-all", "action": "allow"}]}

    def __init__(self, workers=1, slots=4, broker_args=(), worker_args=(), policy=ALLOW_ALL):
        self.dir = scratch_dir("replgate-test-")
        if policy is not None:
            self.write_policy(policy)
        self.port = free_port_pair()
        self.clients_ep = "tcp://127.0.0.1:%d" % self.port
        self.workers_ep = "tcp://127.0.0.1:%d" % (self.port + 1)
        self.broker_args = list(broker_args)
        self.worker_args = list(worker_args)
        self.slots = slots
        self.broker = None
        self.workers = []
        self.logs = []
        self.start_broker()
        for i in range(workers):
            self.start_worker("w%d" % i)
        if workers:
            self.wait_workers(workers)

    def write_policy(self, policy, name="policy.json"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(policy if isinstance(policy, str) else json.dumps(policy, indent=2))
        return path

    def reload_policy(self):
        self.broker.send_signal(signal.SIGHUP)

    @property
    def db(self):
        return os.path.join(self.dir, "replgate.db")

    def key(self, name):
        return os.path.join(self.dir, "keys", "private", name + ".cert")

    def _log(self, name):
        path = os.path.join(self.dir, name + ".log")
        self.logs.append(path)
        return open(path, "ab")

    def start_broker(self):
        env = proc_env()
        self.broker = subprocess.Popen(
            [os.path.join(BIN, "replgate-broker"), "--dir", self.dir, "--clients", self.clients_ep,
             "--workers", self.workers_ep] + self.broker_args,
            stdout=subprocess.DEVNULL, stderr=self._log("broker"), env=env)
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            if os.path.exists(os.path.join(self.dir, "keys", "private", "admin.cert_secret")):
                c = self.client("admin")
                r = c.call("ping", timeout=0.5)
                c.close()
                if r:
                    return
            if self.broker.poll() is not None:
                raise RuntimeError("broker exited: %s" % open(self.logs[0]).read())
            time.sleep(0.05)
        raise RuntimeError("broker did not start")

    def start_worker(self, name="w0", extra=()):
        env = proc_env()
        p = subprocess.Popen(
            [os.path.join(BIN, "replgate-worker"), "--broker", self.workers_ep, "--key", self.key("worker"),
             "--server-key", os.path.join(self.dir, "keys", "broker.cert"), "--name", name,
             "--slots", str(self.slots)] + default_uid(self.worker_args + list(extra)) + self.worker_args + list(extra),
            stdout=subprocess.DEVNULL, stderr=self._log("worker-" + name), env=env)
        self.workers.append(p)
        return p

    def wait_workers(self, n, timeout=10.0):
        c = self.client("admin")
        deadline = time.time() + timeout * SLOW
        try:
            while time.time() < deadline:
                r = c.call("ping")
                if r and r["stats"]["workers"] >= n:
                    return
                time.sleep(0.05)
        finally:
            c.close()
        raise RuntimeError("workers did not join")

    def client(self, name="agent", cert=None):
        return Client(self.clients_ep, cert or self.key(name), os.path.join(self.dir, "keys", "broker.cert"))

    def cli(self, *args, input=None, timeout=60, key=None):
        """Runs the replgate CLI against this stack; returns CompletedProcess (text)."""
        cmd = [os.path.join(BIN, "replgate"), args[0], "--dir", self.dir] + list(args[1:])
        env = dict(os.environ, ZSYS_SIGHANDLER="false")
        return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout * SLOW, env=env)

    def sql(self, query, *params):
        con = sqlite3.connect(self.db, timeout=10)
        try:
            rows = con.execute(query, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def kill_broker(self):
        self.broker.send_signal(signal.SIGKILL)
        self.broker.wait()

    def stop(self):
        procs = self.workers + ([self.broker] if self.broker else [])
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if ASAN else signal.SIGKILL)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        bad = []
        for path in self.logs:
            text = open(path, errors="replace").read()
            if "AddressSanitizer" in text or "runtime error:" in text or "LeakSanitizer" in text:
                bad.append("%s:\n%s" % (path, text[-4000:]))
        return bad


_tests = []


def test(fn):
    _tests.append(fn)
    return fn


class Skip(Exception):
    """Raised by a test that cannot run here (e.g. the broker lacks an op it needs): counted
    apart, neither passed nor failed."""


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_for(pred, timeout=10.0, what="condition"):
    """Polls pred until it returns something true (returned), or fails the test."""
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Terminal:
    """Runs cmd with a pseudo-terminal as stdin, stdout and stderr (as a person at a terminal
    runs it) and collects what it shows. close() kills it if it still runs."""

    def __init__(self, cmd):
        import pty, threading
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     env=dict(os.environ, ZSYS_SIGHANDLER="false"))
        os.close(slave)
        self.seen = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self):
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self.seen.append(data.decode("utf-8", "replace"))

    def text(self):
        return "".join(self.seen)

    def wait_for(self, pattern, timeout=10.0):
        """The first match of pattern in what the terminal showed; fails the test if none comes."""
        return wait_for(lambda: re.search(pattern, self.text()), timeout,
                        "the terminal to show %r; it showed %r" % (pattern, self.text()))

    def finish(self, timeout=15.0):
        """Waits for the program to end and for the rest of its output; its exit status."""
        status = self.proc.wait(timeout=timeout * SLOW)
        self.pump.join(2)
        return status

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def run_all(label):
    global _failed
    only = sys.argv[1:] if len(sys.argv) > 1 else None
    passed = failed = skipped = 0
    for fn in _tests:
        if only and fn.__name__ not in only:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print(" * %s: OK (%.1fs)" % (fn.__name__, time.time() - t0), flush=True)
        except Skip as e:
            skipped += 1
            print(" * %s: SKIPPED: %s" % (fn.__name__, e), flush=True)
        except Exception:
            _failed = True
            failed += 1
            print(" * %s: FAILED (%.1fs)\n%s" % (fn.__name__, time.time() - t0, traceback.format_exc()), flush=True)
    if skipped:
        print("%s: %d skipped" % (label, skipped), flush=True)
    print("%s: %d passed, %d failed" % (label, passed, failed), flush=True)
    return 1 if failed else 0
