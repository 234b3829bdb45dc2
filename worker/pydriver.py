# replgate python driver: runs every snippet of one session in one persistent namespace.
# fd 3 brings requests (4-byte big-endian length, then the UTF-8 code); fd 4 takes replies
# (same framing, a JSON object). After each reply the worker sends a fence (length 0xffffffff,
# then a 32-byte nonce) that the loop echoes the same way: a snippet can write a fake reply,
# but only the loop, back from the snippet, answers the fence the worker sends after it. fds 1 and 2 are the worker's pipes themselves, so output
# from os.write, C extensions and subprocesses is captured too, not just sys.stdout.
# This file runs as `python3 -I -u -c SOURCE`, so its own frames carry the file "<string>".
# Start-up time is part of every cold session, so the driver imports only C modules up front:
# ast, json, linecache and traceback pull in re, enum and collections and would double
# the interpreter's start; traceback and linecache are imported when a snippet first fails.
import _ast, _json, _signal, builtins, os, sys

REQ, REP = 3, 4
VALUE_MAX = 65536
TEXT_MAX = 1 << 20          # error names, values and tracebacks; the worker caps them further
FENCE = 0xFFFFFFFF
PROXY = 0xFFFFFFFE          # then a 4-byte length and NAME=VALUE\0 pairs: the next snippet's proxy
DRIVER_FILE = sys._getframe().f_code.co_filename


def read_exact(n):
    parts = []
    while n:
        chunk = os.read(REQ, n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def write_all(data):
    view = memoryview(data)
    while view:
        view = view[os.write(REP, view):]


def encode(value):
    # JSON for the driver's replies, which hold only None, bools, ints, strs and flat dicts.
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _json.encode_basestring(value)
    return "{" + ",".join(encode(k) + ":" + encode(v) for k, v in value.items()) + "}"


def clean(text):
    # Lone surrogates cannot be encoded; the worker needs valid UTF-8.
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def capped(text):
    # A 20 MB exception message must not become a 20 MB reply: cut, and say so.
    return (text[:TEXT_MAX], True) if len(text) > TEXT_MAX else (text, False)


class Runner:
    def __init__(self):
        # A real module as __main__, so classes defined in snippets pickle like in a script.
        main = type(sys)("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        self.globals = main.__dict__
        self.count = 0
        self.running = False    # a snippet runs: SIGINT raises KeyboardInterrupt in it
        self.interrupted = False    # SIGINT came between snippets: the next one starts with it
        self.unsynced = []      # (file name, source) of snippets linecache does not hold yet
        self.value = None
        sys.displayhook = self.displayhook

    def displayhook(self, value):
        # Like the interactive hook, but the value goes into the reply, not onto stdout.
        if value is None:
            return
        builtins._ = value
        text = repr(value)
        if len(text) > VALUE_MAX:
            text = text[:VALUE_MAX] + "..."
        self.value = text

    def sync_sources(self):
        # Snippet sources reach linecache once something has imported it (a failing snippet,
        # or user code using traceback or inspect), so their frames show their lines.
        linecache = sys.modules.get("linecache")
        if linecache is None:
            return
        for name, code in self.unsynced:
            linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        self.unsynced.clear()

    def error(self, exc):
        try:
            lines = self.format(exc)
        except BaseException:   # a snippet may have broken traceback itself, or memory ran out
            lines = ["%s (traceback unavailable)\n" % type(exc).__name__]
        try:
            value = str(exc)
        except BaseException:
            value = "<unprintable %s>" % type(exc).__name__
        name, name_cut = capped(type(exc).__name__)
        value, value_cut = capped(value)
        tb, tb_cut = capped("".join(lines))
        return {"name": clean(name), "value": clean(value), "traceback": clean(tb),
                "name_cut": name_cut, "value_cut": value_cut, "traceback_cut": tb_cut}

    def format(self, exc):
        import traceback
        self.sync_sources()
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == DRIVER_FILE:
            tb = tb.tb_next
        if isinstance(exc, SyntaxError):
            return traceback.format_exception_only(type(exc), exc)
        return traceback.format_exception(type(exc), exc, tb)

    def run(self, code):
        self.count += 1
        self.value = None
        name = "<snippet-%d>" % self.count
        self.unsynced.append((name, code))
        self.sync_sources()
        try:
            self.running = True
            if self.interrupted:
                self.interrupted = False
                raise KeyboardInterrupt
            tree = compile(code, name, "exec", _ast.PyCF_ONLY_AST)
            last = tree.body[-1:] if tree.body and isinstance(tree.body[-1], _ast.Expr) else []
            if last:
                tree.body = tree.body[:-1]
            exec(compile(tree, name, "exec"), self.globals)
            if last:
                exec(compile(_ast.Interactive(body=last), name, "single"), self.globals)
            self.running = False
        except SystemExit:
            self.running = False
            raise
        except BaseException as exc:
            self.running = False
            return {"status": "error", "execution_count": self.count, "value": None,
                    "error": self.error(exc)}
        value = clean(self.value) if self.value is not None else None
        return {"status": "ok", "execution_count": self.count, "value": value, "error": None}


def flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def main():
    # Keep the protocol pipes out of os.system() and other exec'd children.
    os.set_inheritable(REQ, False)
    os.set_inheritable(REP, False)
    runner = Runner()

    # An interrupt (SIGINT) is for the snippet: raised in it while it runs, kept for the next
    # one when it comes before the snippet began (the broker may ask that early), and never
    # raised in this loop, which would end the session. The worker sends none once it has
    # the reply, so one that came before a fence was for the snippet that just ended.
    def on_sigint(signum, frame):
        if runner.running:
            raise KeyboardInterrupt
        runner.interrupted = True
    _signal.signal(_signal.SIGINT, on_sigint)
    proxy = {}
    while True:
        head = read_exact(4)
        if head is None:
            return
        size = int.from_bytes(head, "big")
        if size == PROXY:
            head = read_exact(4)
            pairs = head and read_exact(int.from_bytes(head, "big"))
            if pairs is None:
                return
            proxy = dict(p.split("=", 1) for p in pairs.decode().split("\0") if "=" in p)
            continue
        if size == FENCE:
            runner.interrupted = False
            nonce = read_exact(32)
            if nonce is None:
                return
            write_all(head + nonce)
            continue
        code = read_exact(size)
        if code is None:
            return
        # The proxy is this snippet's alone: what the names held before comes back after it.
        saved = {name: os.environ.get(name) for name in proxy}
        os.environ.update(proxy)
        reply = runner.run(code.decode("utf-8", "replace"))
        flush()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        proxy = {}
        data = encode(reply).encode("utf-8")
        write_all(len(data).to_bytes(4, "big") + data)


main()
