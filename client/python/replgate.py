"""replgate.py: the Python client of the replgate broker, one module on pyzmq.

    import replgate
    with replgate.Gate() as gate:          # $REPLGATE_DIR or ./var: endpoint and keys, as the CLI
        r = gate.run("x = 6 * 7; x")
        print(r.value)                     # '42'

It owns the client half of the broker protocol (README, "Protocol"): the CURVE connection made
from czmq cert files it parses itself, one JSON frame per request matched to its reply by `rid`,
long polls cut into slices so that a broker that went away is noticed, pushed `output` frames
handed to a callback and never taken for replies, and one exception class per error code.

Rules it keeps:
- `run` and `wait` return the request when it ran to its end (state `done`), whatever the
  outcome: a snippet that raised is data (`ok` False, `error`). A request that ended without
  running to its end raises `NotDone`: `Denied` (the policy or an approver said no), `Expired`,
  `Cancelled`, `Lost`; one still going when the wait ended raises `StillPending`. Each carries
  the request. `submit`, `result`, `cancel` and `interrupt` return the request as it is.
- A refused op raises the class of its error code (`Forbidden` for `forbidden`, ...), a code
  this module does not know raises `ReplgateError` with that `code`.
- No answer within `timeout` seconds beyond the wait an op asked for raises `Timeout`: the
  broker is down, or does not trust the key (it never answers unknown keys), or the server key
  is wrong. The connection is then dropped with whatever it had not sent, so a submit that
  timed out is never sent later; whether the broker recorded it is unknown: retry with the
  same idempotency `key`.
- Threads: a Gate may be shared. Each thread gets its own connection (same keys), so one
  thread may `interrupt` what another thread's `run` waits for. Output frames go to the
  connection, hence the thread, that submitted.
"""
from __future__ import annotations

import base64
import codecs
import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

import zmq

__version__ = "0.1.0"

TERMINAL_STATES = frozenset({"done", "denied", "expired", "cancelled", "lost"})
DEFAULT_ENDPOINT = "tcp://127.0.0.1:7710"
SLICE_S = 2.0                 # the longest one long poll asks for
MAX_WAIT_MS = 3600000         # the broker's cap on wait_ms and await's timeout_ms

OutputHandler = Callable[[str, str], None]
PathOrCert = Union[str, "os.PathLike[str]", "Cert"]


# ---------------------------------------------------------------------------------------------
# Errors

class ReplgateError(Exception):
    """Base of every error of this module. `code` is the broker's error code (or the name of
    a condition of the client: `no_answer`, `config`, a state for NotDone); `reply` the
    broker's reply when there was one."""
    code = "error"

    def __init__(self, message: str, code: Optional[str] = None, reply: Optional[dict] = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.reply = reply or {}


class ConfigError(ReplgateError):
    """A cert, directory or argument this client cannot use; nothing was sent."""
    code = "config"


class Timeout(ReplgateError, TimeoutError):
    """No answer in time: the broker is down, the key is not trusted or the server key is wrong."""
    code = "no_answer"


class BadJson(ReplgateError):
    code = "bad_json"


class NotObject(ReplgateError):
    code = "not_object"


class BadUtf8(ReplgateError):
    code = "bad_utf8"


class TooLarge(ReplgateError):
    """The request frame is above the broker's 1 MiB cap."""
    code = "too_large"


class BadFrames(ReplgateError):
    code = "bad_frames"


class UnknownOp(ReplgateError):
    """The broker does not know this op (an older broker)."""
    code = "unknown_op"


class UnknownKey(ReplgateError):
    """The broker refuses a field it does not know (an older broker, or a typo)."""
    code = "unknown_key"


class MissingField(ReplgateError):
    code = "missing_field"


class BadType(ReplgateError):
    code = "bad_type"


class BadValue(ReplgateError):
    code = "bad_value"


class Forbidden(ReplgateError):
    """The key's role may not do this (or the key was revoked)."""
    code = "forbidden"


class NotFound(ReplgateError):
    """No such request or session, or one the key may not see."""
    code = "not_found"


class BadState(ReplgateError):
    """The request or session is not in a state that allows this (e.g. cancelling a run)."""
    code = "bad_state"


class Duplicate(ReplgateError):
    """This approver already decided on this request."""
    code = "duplicate"


class TooMany(ReplgateError):
    code = "too_many"


class Busy(ReplgateError):
    """Nothing was recorded: the database cannot be written for now, or this connection's
    replies wait unread. Retry after `retry_after` seconds (the broker retries its own writes
    at most every 0.25 s)."""
    code = "busy"
    retry_after = 0.25


class Internal(ReplgateError):
    code = "internal"


class Conflict(ReplgateError):
    """The idempotency key was used for another snippet (code, lang or session)."""
    code = "conflict"


ERRORS: Dict[str, type] = {cls.code: cls for cls in (
    BadJson, NotObject, BadUtf8, TooLarge, BadFrames, UnknownOp, UnknownKey, MissingField, BadType,
    BadValue, Forbidden, NotFound, BadState, Duplicate, TooMany, Busy, Internal, Conflict)}


def error_from_reply(reply: dict) -> ReplgateError:
    """The exception for a refusal `{"ok": false, "error": {"code", "message"}}`."""
    error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
    code = str(error.get("code") or "error")
    message = "%s: %s" % (code, error.get("message") or "refused")
    return ERRORS.get(code, ReplgateError)(message, code=code, reply=reply)


class NotDone(ReplgateError):
    """`run` or `wait` ended and the request did not run to its end: `request` says why."""

    def __init__(self, request: "Request", message: Optional[str] = None):
        super().__init__(message or "request %s %s" % (request.id, request.state),
                         code=request.state, reply=request.row)
        self.request = request


class Denied(NotDone):
    """The policy or an approver denied it: `reason` (the rule's message or the approver's
    reason), `rule`, `denied_by` (the approvers who denied, None for the policy)."""
    code = "denied"

    def __init__(self, request: "Request"):
        self.rule = request.rule
        self.denied_by = request.denied_by
        self.reason = request.deny_reason or request.decision_message or "denied"
        who = "by %s" % self.denied_by if self.denied_by else "by rule %s" % self.rule
        super().__init__(request, "request %s denied %s: %s" % (request.id, who, self.reason))


class Expired(NotDone):
    """No quorum of approvals before its time to live ran out."""
    code = "expired"


class Cancelled(NotDone):
    code = "cancelled"


class Lost(NotDone):
    """Its worker or the broker died while it ran: it may have run in part."""
    code = "lost"


class StillPending(NotDone):
    """The wait ended before the request did: it is parked for approvers (`approvals` so far,
    `quorum`, `expires_at`), queued or running. Wait again with `Gate.wait(e.request.id)`."""

    def __init__(self, request: "Request"):
        super().__init__(request, "request %s still %s" % (request.id, request.state))
        self.code = "pending"            # not a state: queued and running end here too
        self.state = request.state
        self.approvals = request.approvals
        self.quorum = request.quorum
        self.expires_at = request.expires_at


_NOT_DONE = {"denied": Denied, "expired": Expired, "cancelled": Cancelled, "lost": Lost}


# ---------------------------------------------------------------------------------------------
# Requests and sessions

class ErrorInfo(NamedTuple):
    """What a failed snippet raised (python) or how it failed (shell)."""
    name: Optional[str]
    value: Optional[str]
    traceback: Optional[str]


class Request:
    """A request as the broker reports it (the README's request object). `row` holds every
    field, including those this class does not name."""

    def __init__(self, row: dict):
        g = row.get
        self.row = row
        self.id: int = g("id")
        self.state: str = g("state")
        self.outcome: Optional[str] = g("outcome")
        self.principal: Optional[str] = g("principal")
        self.session: Optional[str] = g("session")
        self.lang: Optional[str] = g("lang")
        self.code: Optional[str] = g("code")
        self.rule: Optional[str] = g("rule")
        self.decision_message: Optional[str] = g("decision_message")
        self.stdout: str = g("stdout") or ""
        self.stderr: str = g("stderr") or ""
        self.value: Optional[str] = g("value")
        self.exit_code: Optional[int] = g("exit_code")
        self.signal: Optional[int] = g("signal")
        self.wall_ms: Optional[float] = g("wall_ms")
        self.cpu_ms: Optional[float] = g("cpu_ms")
        self.execution_count: Optional[int] = g("execution_count")
        self.session_reset: bool = bool(g("session_reset"))
        self.reset_reason: Optional[str] = g("reset_reason")
        self.approvals: List[dict] = g("approvals") or []
        self.approvers: Optional[str] = g("approvers")
        self.denied_by: Optional[str] = g("denied_by")
        self.deny_reason: Optional[str] = g("deny_reason")
        self.review: Optional[dict] = g("review") if isinstance(g("review"), dict) else None
        self.duplicate: bool = bool(g("duplicate"))
        self.error: Optional[ErrorInfo] = None
        if g("error_name") is not None or g("traceback") is not None:
            self.error = ErrorInfo(g("error_name"), g("error_value"), g("traceback"))

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def ok(self) -> bool:
        """It ran and succeeded (state done, outcome ok)."""
        return self.state == "done" and self.outcome == "ok"

    @property
    def stdout_bytes(self) -> bytes:
        """Exactly what the snippet wrote (`stdout` shows bytes that are not UTF-8 as U+FFFD)."""
        return self._bytes("stdout")

    @property
    def stderr_bytes(self) -> bytes:
        return self._bytes("stderr")

    def _bytes(self, name: str) -> bytes:
        raw = self.row.get(name + "_base64")
        return base64.b64decode(raw) if isinstance(raw, str) else (self.row.get(name) or "").encode()

    @property
    def quorum(self) -> Optional[int]:
        return self.review.get("quorum") if self.review else None

    @property
    def expires_at(self) -> Optional[str]:
        """When a parked request expires (ISO-8601 UTC), if it is parked."""
        return self.review.get("expires_at") if self.review else None

    def __repr__(self) -> str:
        return "<Request %s %s%s>" % (self.id, self.state, "/" + self.outcome if self.outcome else "")


@dataclass
class Session:
    """A live interpreter of the caller's (an admin key sees everyone's: `principal`)."""
    session: str
    lang: str
    principal: Optional[str] = None
    worker: Optional[str] = None
    state: Optional[str] = None
    last_used: Optional[str] = None
    execution_count: Optional[int] = None
    memory_kb: Optional[int] = None
    row: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_row(cls, row: dict) -> "Session":
        names = ("session", "lang", "principal", "worker", "state", "last_used", "execution_count",
                 "memory_kb")
        return cls(**{n: row.get(n) for n in names}, row=row)


# ---------------------------------------------------------------------------------------------
# czmq cert files (ZPL, rfc.zeromq.org/spec/4)

_ZPL_LINE = re.compile(r"""^( *)([A-Za-z0-9$\-_@.&+/]+) *(?:= *(?:"([^"]*)"|'([^']*)'|([^\s#"']*)))? *(?:#.*)?$""")
_Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def parse_zpl(text: str, source: str = "<text>") -> Dict[str, str]:
    """Parses ZPL text into {"section/name": value}; raises ConfigError naming source:line."""
    out: Dict[str, str] = {}
    path: List[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _ZPL_LINE.match(line.rstrip())
        if not m or len(m.group(1)) % 4:
            raise ConfigError("%s:%d: not a ZPL line" % (source, n))
        depth = len(m.group(1)) // 4
        if depth > len(path):
            raise ConfigError("%s:%d: indented deeper than its parent" % (source, n))
        path[depth:] = [m.group(2)]
        values = [v for v in m.group(3, 4, 5) if v is not None]
        if values:
            out["/".join(path)] = values[0]
    return out


@dataclass(frozen=True)
class Cert:
    """A CURVE key pair (secret None for a public cert) with the cert's metadata."""
    public: str
    secret: Optional[str] = None
    metadata: Dict[str, str] = field(default_factory=dict)
    path: Optional[str] = None


def _read_zpl(path: str) -> Optional[Dict[str, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            return parse_zpl(f.read(), path)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("cannot read %s: %s" % (path, e)) from None


def _z85(value: Optional[str], what: str, path: str) -> str:
    if value is None or not _Z85_KEY.match(value):
        raise ConfigError("%s: %s is %s" % (path, what, "missing" if value is None else "not a 40-character Z85 key"))
    return value


def load_cert(path: Union[str, "os.PathLike[str]"]) -> Cert:
    """Reads a czmq cert: PATH (public key, metadata) and PATH_secret when it exists (the
    secret key). PATH may also name the _secret file itself."""
    path = os.fspath(path)
    base = path[:-len("_secret")] if path.endswith("_secret") else path
    public, secret = _read_zpl(base), _read_zpl(base + "_secret")
    if public is None and secret is None:
        raise ConfigError("cannot read %s: no such file" % path)
    main = public if public is not None else secret
    key = _z85(main.get("curve/public-key"), "curve/public-key", base if public is not None else base + "_secret")
    secret_key = None
    if secret is not None:
        secret_key = _z85(secret.get("curve/secret-key"), "curve/secret-key", base + "_secret")
        if secret.get("curve/public-key") not in (None, key):
            raise ConfigError("%s_secret: its public key is not the one in %s" % (base, base))
    meta = {k.split("/", 1)[1]: v for k, v in main.items() if k.startswith("metadata/")}
    return Cert(key, secret_key, meta, base)


# ---------------------------------------------------------------------------------------------
# One connection: one DEALER socket, used by one thread

class _Stream:
    """The output callback of one streamed request, with a UTF-8 decoder per stream so that a
    character split across two frames comes out whole."""

    def __init__(self, handler: OutputHandler):
        self.handler = handler
        self.decoders: Dict[str, Any] = {}

    def feed(self, frame: dict) -> None:
        name = str(frame.get("stream") or "stdout")
        data = frame.get("data")
        raw = data.encode() if isinstance(data, str) else base64.b64decode(frame.get("data_base64") or "")
        dec = self.decoders.setdefault(name, codecs.getincrementaldecoder("utf-8")("replace"))
        self._emit(name, dec.decode(raw))

    def flush(self) -> None:
        for name, dec in self.decoders.items():
            self._emit(name, dec.decode(b"", final=True))

    def _emit(self, name: str, text: str) -> None:
        if text:
            self.handler(name, text)


class _Conn:
    def __init__(self, ctx: zmq.Context, endpoint: str, cert: Cert, server_public: str):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_secretkey = cert.secret.encode()
        self.sock.curve_publickey = cert.public.encode()
        self.sock.curve_serverkey = server_public.encode()
        self.sock.connect(endpoint)
        self.rids = itertools.count(1)
        self.streams: Dict[Any, _Stream] = {}     # request id -> its output callback
        self.unclaimed: Optional[_Stream] = None  # the streamed submit whose id is not known yet

    def call(self, msg: dict, timeout_s: float) -> Optional[dict]:
        """Sends msg, returns the reply with its rid, or None after timeout_s."""
        rid = next(self.rids)
        try:
            self.sock.send(json.dumps(dict(msg, rid=rid)).encode(), zmq.NOBLOCK)
        except zmq.Again:
            return None
        deadline = time.monotonic() + timeout_s
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not self.sock.poll(left_ms):
                return None
            try:
                frame = json.loads(self.sock.recv())
            except ValueError:
                continue                  # not JSON: no reply of ours
            if not isinstance(frame, dict):
                continue
            if "op" in frame:
                self._pushed(frame)
            elif frame.get("rid") == rid:
                return frame              # other rids: replies to calls that timed out

    def _pushed(self, frame: dict) -> None:
        if frame.get("op") != "output":
            return                        # events: this client holds no subscription
        rid = frame.get("id")
        if rid not in self.streams and self.unclaimed is not None:
            self.streams[rid], self.unclaimed = self.unclaimed, None
        stream = self.streams.get(rid)
        if stream:
            stream.feed(frame)

    def claim(self, request_id: Any) -> None:
        if self.unclaimed is not None:
            self.streams.setdefault(request_id, self.unclaimed)
            self.unclaimed = None

    def finished(self, request_id: Any) -> None:
        stream = self.streams.pop(request_id, None)
        if stream:
            stream.flush()

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# The gate

def _read_endpoint(dir: str) -> str:
    try:
        with open(os.path.join(dir, "endpoint"), encoding="utf-8") as f:
            return f.readline().strip() or DEFAULT_ENDPOINT
    except OSError:
        return DEFAULT_ENDPOINT


def _cert(value: Optional[PathOrCert], default: str) -> Cert:
    return value if isinstance(value, Cert) else load_cert(value if value is not None else default)


def _ms(seconds: float) -> int:
    return max(0, min(MAX_WAIT_MS, int(seconds * 1000)))


class Gate:
    """A connection to a replgate broker under one key.

    dir: a local stack's state directory (default $REPLGATE_DIR, else ./var), for the defaults:
    broker: endpoint (default the DIR/endpoint file `replgate up` writes, else tcp://127.0.0.1:7710);
    key: the client's cert (path to NAME.cert with NAME.cert_secret beside it, or a Cert;
    default DIR/keys/private/agent.cert); server_key: the broker's public cert (default
    DIR/keys/broker.cert); timeout: seconds to wait for an answer beyond the wait an op asks
    for, after which `Timeout` is raised; context: a zmq.Context (default the shared one)."""

    def __init__(self, dir: Optional[str] = None, key: Optional[PathOrCert] = None,
                 broker: Optional[str] = None, server_key: Optional[PathOrCert] = None,
                 timeout: float = 10.0, context: Optional[zmq.Context] = None):
        self.dir = os.fspath(dir) if dir is not None else os.environ.get("REPLGATE_DIR") or "var"
        self.endpoint = broker or _read_endpoint(self.dir)
        self.cert = _cert(key, os.path.join(self.dir, "keys", "private", "agent.cert"))
        if not self.cert.secret:
            raise ConfigError("%s: no secret key (expected in %s_secret)" % (self.cert.path, self.cert.path))
        self.server_public = _cert(server_key, os.path.join(self.dir, "keys", "broker.cert")).public
        self.timeout = timeout
        self._ctx = context or zmq.Context.instance()
        self._local = threading.local()
        self._conns: List[_Conn] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "Gate":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes every thread's connection; call it when no thread uses the Gate any more."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def _conn(self) -> _Conn:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _Conn(self._ctx, self.endpoint, self.cert, self.server_public)
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop(self, conn: _Conn) -> None:
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        self._local.conn = None
        conn.close()

    def _call(self, msg: dict, wait_s: float = 0.0, conn: Optional[_Conn] = None) -> dict:
        conn = conn or self._conn()
        reply = conn.call(msg, wait_s + self.timeout)
        if reply is None:
            self._drop(conn)
            raise Timeout("no answer from %s within %.1f s to %s (is the broker running? does it trust "
                          "this key? is the server key right?)" % (self.endpoint, wait_s + self.timeout, msg["op"]))
        if reply.get("ok") is not True:
            raise error_from_reply(reply)
        return reply

    def call(self, op: str, **fields: Any) -> dict:
        """Any op of the protocol (e.g. `pending`, `approve` for an approver key): returns the
        reply; a refusal raises its error class."""
        wait_ms = fields.get("timeout_ms", 30000) if op == "await" else fields.get("wait_ms", 0)
        return self._call(dict(fields, op=op), (wait_ms or 0) / 1000)

    # -- snippets ---------------------------------------------------------------------------

    def submit(self, code: str, lang: str = "python", session: str = "default", *,
               timeout: Optional[float] = None, on_output: Optional[OutputHandler] = None,
               reason: Optional[str] = None, key: Optional[str] = None) -> Request:
        """Submits without waiting: the request as recorded (received, pending_approval, queued,
        running, or already done or denied). See `run` for the arguments."""
        return self._submit(code, lang, session, timeout, on_output, reason, key, 0)

    def run(self, code: str, lang: str = "python", session: str = "default", *,
            timeout: Optional[float] = None, wait: Optional[float] = None,
            on_output: Optional[OutputHandler] = None, reason: Optional[str] = None,
            key: Optional[str] = None) -> Request:
        """Runs code in the caller's session (lang `python` or `shell`) and returns the request
        once it ran (check `.ok`). timeout: the run's wall-clock limit in seconds (the broker's
        default when None); wait: how long to wait in all (None: until it ends; a parked
        request waits for humans), after which StillPending is raised; on_output(stream, text):
        called with output while it runs (`stream` is stdout or stderr); reason: shown to
        approvers; key: an idempotency key (the same key returns the first request).
        Raises Denied, Expired, Cancelled, Lost, StillPending, or the error of a refusal."""
        deadline = None if wait is None else time.monotonic() + wait
        req = self._submit(code, lang, session, timeout, on_output, reason, key, self._slice(deadline))
        return self._until_done(req, deadline)

    def wait(self, id: int, timeout: Optional[float] = None) -> Request:
        """Waits up to timeout seconds (None: until it ends) for a request, as `run` does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._until_done(self._await(id, self._slice(deadline)), deadline)

    def result(self, id: int) -> Request:
        """The request as it is now."""
        return Request(self._call({"op": "status", "id": id}))

    def cancel(self, id: int) -> Request:
        """Cancels a queued or parked request (BadState once it runs: use interrupt)."""
        return self._finished(Request(self._call({"op": "cancel", "id": id})))

    def interrupt(self, id: int) -> Request:
        """Sends SIGINT to a running snippet: it ends with outcome `interrupted`, the session
        keeps its state. Returns the request, still `running`."""
        return Request(self._call({"op": "interrupt", "id": id}))

    # -- sessions and the broker ------------------------------------------------------------

    def sessions(self) -> List[Session]:
        """The caller's live sessions (an admin key: everyone's)."""
        return [Session.from_row(s) for s in self._call({"op": "sessions"}).get("sessions", [])]

    def reset(self, session: str = "default", lang: str = "python") -> dict:
        """Gives the session a new interpreter: its state is gone."""
        return self._call({"op": "reset", "session": session, "lang": lang})

    def close_session(self, session: str = "default", lang: str = "python") -> dict:
        """Ends the session's interpreter and frees its slot."""
        return self._call({"op": "close", "session": session, "lang": lang})

    def ping(self) -> dict:
        """Who the broker says you are (`principal`, `role`) and how busy it is (`stats`)."""
        return self._call({"op": "ping"})

    # -- waiting ----------------------------------------------------------------------------

    @staticmethod
    def _slice(deadline: Optional[float]) -> int:
        """The next long poll in ms: short, so a broker that went away is noticed."""
        left = SLICE_S if deadline is None else min(SLICE_S, deadline - time.monotonic())
        return _ms(left)

    def _submit(self, code: str, lang: str, session: str, timeout: Optional[float],
                on_output: Optional[OutputHandler], reason: Optional[str], key: Optional[str],
                wait_ms: int) -> Request:
        msg: Dict[str, Any] = {"op": "submit", "lang": lang, "code": code, "session": session}
        for name, value in (("reason", reason), ("key", key)):
            if value is not None:
                msg[name] = value
        if timeout is not None:
            msg["timeout_ms"] = max(1, int(timeout * 1000))
        if wait_ms:
            msg["wait_ms"] = wait_ms
        conn = self._conn()
        conn.unclaimed = _Stream(on_output) if on_output is not None else None
        if on_output is not None:
            msg["stream"] = True
        try:
            req = Request(self._call(msg, wait_ms / 1000, conn))
            conn.claim(req.id)       # unless an output frame before the reply did
        finally:
            conn.unclaimed = None
        return self._finished(req)

    def _await(self, id: int, wait_ms: int) -> Request:
        return Request(self._call({"op": "await", "id": id, "timeout_ms": wait_ms}, wait_ms / 1000))

    def _finished(self, req: Request) -> Request:
        if req.terminal:
            self._conn().finished(req.id)
        return req

    def _until_done(self, req: Request, deadline: Optional[float]) -> Request:
        while not req.terminal:
            wait_ms = self._slice(deadline)
            if wait_ms == 0:
                raise StillPending(req)
            req = self._await(req.id, wait_ms)
        self._finished(req)
        if req.state == "done":
            return req
        raise _NOT_DONE.get(req.state, NotDone)(req)


Result = Request    # what run() and wait() return: a request that ran
