"""tests/fakeslack.py: a fake Slack for the approver's tests, faithful to reference/slack.md.

- Incoming webhooks, POST /services/T.../B.../X...: validates the JSON and the Block Kit limits
  and answers as Slack does: 200 `ok`, 400 `invalid_payload`, 400 `no_text`, 400 `invalid_blocks`,
  429 + Retry-After when a webhook gets more than one message a second, and whatever failures a
  test queued with `fail_next` (e.g. 500 `rollup_error`, 404 `no_service`).
- A click driver (`click`) that builds a `block_actions` payload from a stored message's blocks,
  form-encodes it, signs it like Slack (v0) and POSTs it to the approver, timing the answer.
- response_url endpoints, POST /actions/T.../<n>/<token>: one per click, 5 uses within 30
  minutes, then 404 `used_url` / `expired_url`; replace_original, delete_original, ephemeral.

Everything runs in the test process (a thread); tests inspect `messages`, `posts`, `ephemerals`.
"""
import hashlib, hmac, http.client, http.server, json, random, re, threading, time, urllib.parse

SECTION_MAX, FIELD_MAX, HEADER_MAX, BLOCKS_MAX = 3000, 2000, 150, 50


def sign(secret, ts, body):
    """Slack's v0 signature of a raw body (bytes)."""
    base = b"v0:" + str(ts).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def slack_len(s):
    """Characters as Slack counts them (UTF-16 units)."""
    return len(s.encode("utf-16-le")) // 2


def _text_obj(t, limit, kinds=("plain_text", "mrkdwn")):
    if not isinstance(t, dict) or t.get("type") not in kinds or not isinstance(t.get("text"), str):
        return "bad text object"
    if not 1 <= slack_len(t["text"]) <= limit:
        return "text length %d outside 1..%d" % (slack_len(t["text"]), limit)
    return None


def _check_button(e):
    if e.get("type") != "button":
        return "not a button"
    err = _text_obj(e.get("text"), 75, ("plain_text",))
    if err:
        return "button " + err
    if not 1 <= len(e.get("action_id", "")) <= 255 or len(e.get("value", "")) > 2000:
        return "button action_id/value"
    if "style" in e and e["style"] not in ("primary", "danger"):
        return "button style"
    c = e.get("confirm")
    if c is not None:
        for key, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
            err = _text_obj(c.get(key), limit, ("plain_text",) if key != "text" else ("plain_text", "mrkdwn"))
            if err:
                return "confirm %s: %s" % (key, err)
        if c.get("style", "primary") not in ("primary", "danger"):
            return "confirm style"
    return None


def _check_block(b):
    t = b.get("type")
    if "block_id" in b and not 1 <= len(b["block_id"]) <= 255:
        return "block_id length"
    if t == "header":
        return _text_obj(b.get("text"), HEADER_MAX, ("plain_text",))
    if t == "section":
        if "text" not in b and "fields" not in b:
            return "section without text or fields"
        if "text" in b:
            err = _text_obj(b["text"], SECTION_MAX)
            if err:
                return "section " + err
        fields = b.get("fields", [])
        if len(fields) > 10:
            return "more than 10 fields"
        for f in fields:
            err = _text_obj(f, FIELD_MAX)
            if err:
                return "field " + err
        return None
    if t == "context":
        els = b.get("elements")
        if not isinstance(els, list) or not 1 <= len(els) <= 10:
            return "context elements"
        for e in els:
            err = _text_obj(e, 3000)
            if err:
                return "context " + err
        return None
    if t == "actions":
        els = b.get("elements")
        if not isinstance(els, list) or not 1 <= len(els) <= 25:
            return "actions elements"
        ids = [e.get("action_id") for e in els]
        if len(set(ids)) != len(ids):
            return "duplicate action_id in block"
        for e in els:
            err = _check_button(e)
            if err:
                return err
        return None
    if t == "divider":
        return None
    return "unknown block type %r" % t


def validate(raw):
    """Slack's answer to a message body (bytes): (status, text body)."""
    try:
        msg = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return 400, "invalid_payload"
    if not isinstance(msg, dict):
        return 400, "invalid_payload"
    text, blocks = msg.get("text"), msg.get("blocks")
    if not text and not blocks:
        return 400, "no_text"
    if text is not None and not isinstance(text, str):
        return 400, "invalid_payload"
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > BLOCKS_MAX:
            return 400, "invalid_blocks"
        ids = [b.get("block_id") for b in blocks if isinstance(b, dict) and "block_id" in b]
        if len(set(ids)) != len(ids):
            return 400, "invalid_blocks"
        for b in blocks:
            if not isinstance(b, dict) or _check_block(b):
                return 400, "invalid_blocks"
    return 200, "ok"


class FakeSlack:
    def __init__(self, secret, team="T0FAKE", app="A0FAKE", burst=1):
        self.secret, self.team, self.app = secret, team, app
        self.lock = threading.Condition()
        self.messages = []      # channel messages: dicts with ts, hook, text, blocks, deleted
        self.posts = []         # every webhook POST: (time, hook, status, answer, body)
        self.responses = []     # every response_url POST: (time, url_id, status, answer, body)
        self.ephemerals = []    # (user_id, message dict)
        self.failures = {}      # hook path -> list of (status, answer, headers) to answer next
        self.urls = {}          # response_url id -> {"uses", "created", "user", "ts"}
        self.last_accept = {}   # hook path -> time of last accepted post (rate limit)
        self.burst = burst
        self.n = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size)
                if self.path.startswith("/services/"):
                    status, answer, headers = fake._webhook(self.path, body)
                elif self.path.startswith("/actions/"):
                    status, answer, headers = fake._response(self.path, body)
                else:
                    status, answer, headers = 404, "no_service", {}
                data = answer.encode()
                self.send_response(status)
                ctype = "application/json" if answer.startswith("{") else "text/plain;charset=utf-8"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def hook(self, name="B1"):
        """A webhook URL of this fake (its path is the hook's identity)."""
        return "%s/services/%s/%s/%s" % (self.base, self.team, name, "x" * 24)

    # -- test controls ----------------------------------------------------------------------
    def fail_next(self, hook_url, *answers):
        """Queues forced answers for a hook: (status, text) or (status, text, {headers})."""
        path = urllib.parse.urlparse(hook_url).path
        with self.lock:
            self.failures.setdefault(path, []).extend(
                [(a[0], a[1], a[2] if len(a) > 2 else {}) for a in answers])

    def wait_for(self, pred, timeout=10.0):
        """Waits until pred() (called under the lock) is true; returns its value or None."""
        deadline = time.time() + timeout
        with self.lock:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.lock.wait(min(left, 0.1))

    def live(self):
        with self.lock:
            return [m for m in self.messages if not m["deleted"]]

    def message_for(self, request_id):
        """The newest channel message whose buttons or text name request_id."""
        with self.lock:
            for m in reversed(self.messages):
                if not m["deleted"] and re.search(r"\brequest %d\b" % request_id, m.get("text") or ""):
                    return m
        return None

    def age_urls(self, seconds):
        with self.lock:
            for u in self.urls.values():
                u["created"] -= seconds

    # -- webhook ----------------------------------------------------------------------------
    def _webhook(self, path, body):
        now = time.time()
        with self.lock:
            status, answer, headers = self._webhook_answer(path, body, now)
            self.posts.append((now, path, status, answer, body))
            self.lock.notify_all()
        return status, answer, headers

    def _webhook_answer(self, path, body, now):
        if not re.match(r"^/services/T\w+/B\w+/\w+$", path):
            return 404, "no_service", {}
        queued = self.failures.get(path)
        if queued:
            return queued.pop(0)
        last = self.last_accept.get(path)
        if last and now - last < 0.95 / self.burst:
            return 429, json.dumps({"retry_after": 1}), {"Retry-After": "1"}
        status, answer = validate(body)
        if status != 200:
            return status, answer, {}
        self.last_accept[path] = now
        msg = json.loads(body)
        self.n += 1
        self.messages.append({"ts": "%d.%06d" % (int(now), self.n), "hook": path, "text": msg.get("text"),
                              "blocks": msg.get("blocks") or [], "deleted": False, "history": []})
        return 200, "ok", {}

    # -- response_url -----------------------------------------------------------------------
    def _response(self, path, body):
        now = time.time()
        with self.lock:
            status, answer = self._response_answer(path, body, now)
            self.responses.append((now, path, status, answer, body))
            self.lock.notify_all()
        return status, answer, {}

    def _response_answer(self, path, body, now):
        u = self.urls.get(path)
        if not u:
            return 404, json.dumps({"ok": False, "error": "invalid_url"})
        if now - u["created"] > 30 * 60:
            return 404, json.dumps({"ok": False, "error": "expired_url"})
        if u["uses"] >= 5:
            return 404, json.dumps({"ok": False, "error": "used_url"})
        status, answer = validate(body)
        if status != 200:
            return status, json.dumps({"ok": False, "error": answer})
        u["uses"] += 1
        msg = json.loads(body)
        target = next((m for m in self.messages if m["ts"] == u["ts"]), None)
        if msg.get("response_type") == "ephemeral":
            self.ephemerals.append((u["user"], msg))
        elif msg.get("delete_original") and target:
            target["deleted"] = True
        elif msg.get("replace_original") and target:
            target["history"].append({"text": target["text"], "blocks": target["blocks"]})
            target["text"], target["blocks"] = msg.get("text"), msg.get("blocks") or []
        else:
            self.n += 1
            self.messages.append({"ts": "%d.%06d" % (int(now), self.n), "hook": None, "text": msg.get("text"),
                                  "blocks": msg.get("blocks") or [], "deleted": False, "history": []})
        return 200, json.dumps({"ok": True})

    # -- click driver -----------------------------------------------------------------------
    def build_click(self, message, action_id, user_id, username=None, team=None, app=None):
        """A block_actions payload (dict) for clicking action_id on message, as Slack builds it."""
        block, element = None, None
        for b in message["blocks"]:
            if b.get("type") == "actions":
                for e in b.get("elements", []):
                    if e.get("action_id") == action_id:
                        block, element = b, e
        if element is None:
            raise KeyError("no %s button on message %s" % (action_id, message["ts"]))
        self.n += 1
        url_path = "/actions/%s/%d/%s" % (self.team, 100000 + self.n, "%032x" % random.getrandbits(128))
        with self.lock:
            self.urls[url_path] = {"uses": 0, "created": time.time(), "user": user_id, "ts": message["ts"]}
        now = time.time()
        team = team or self.team
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": username or user_id.lower(), "name": username or user_id.lower(),
                     "team_id": team},
            "api_app_id": app or self.app, "token": "legacyVerificationToken0",
            "container": {"type": "message", "message_ts": message["ts"], "channel_id": "C0FAKE",
                          "is_ephemeral": False},
            "trigger_id": "%d.%d.%032x" % (random.randrange(10**11, 10**12), random.randrange(10**10, 10**11),
                                           random.getrandbits(128)),
            "team": {"id": team, "domain": "fake"}, "enterprise": None, "is_enterprise_install": False,
            "channel": {"id": "C0FAKE", "name": "approvals"},
            "message": {"type": "message", "ts": message["ts"], "text": message["text"], "blocks": message["blocks"],
                        "bot_id": "B0FAKE"},
            "state": {"values": {}},
            "response_url": self.base + url_path,
            "actions": [{"action_id": action_id, "block_id": block.get("block_id", "3Yv+u"), "text": element["text"],
                         "value": element.get("value", ""), "type": "button", "style": element.get("style"),
                         "action_ts": "%.6f" % now}],
        }

    @staticmethod
    def encode(payload):
        """Form-encodes a payload like Slack: JSON with '/' escaped, then payload=<urlencoded>."""
        text = json.dumps(payload, separators=(",", ":")).replace("/", "\\/")
        return ("payload=" + urllib.parse.quote_plus(text)).encode()

    def post_to(self, url, body, ts=None, signature=None, headers=None, omit=()):
        """POSTs a raw body to the approver, signed unless told otherwise. Returns
        (status, body text, seconds taken)."""
        ts = str(int(time.time())) if ts is None else str(ts)
        h = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
             "Accept": "application/json,*/*", "X-Slack-Request-Timestamp": ts,
             "X-Slack-Signature": signature or sign(self.secret, ts, body)}
        h.update(headers or {})
        for k in omit:
            h.pop(k, None)
        u = urllib.parse.urlparse(url)
        t0 = time.time()
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            conn.request("POST", u.path, body=body, headers=h)
            r = conn.getresponse()
            text = r.read().decode(errors="replace")
            return r.status, text, time.time() - t0
        finally:
            conn.close()

    def click(self, approver_url, message, action_id, user_id, username=None, **kw):
        """Clicks a button like Slack: returns (status, body, seconds, payload, raw body)."""
        payload = self.build_click(message, action_id, user_id, username)
        raw = self.encode(payload)
        status, text, took = self.post_to(approver_url, raw, **kw)
        return status, text, took, payload, raw


if __name__ == "__main__":
    # Slack's published example (reference/slack.md section 4).
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    got = sign("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body)
    assert got == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", got
    print("fakeslack: signer matches Slack's test vector")
