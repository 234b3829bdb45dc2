"""tests/bench.py (`make bench`): warm-session round trip through the real broker and worker,
against a baseline measured in the same run: a fresh `python3 -c` of the same snippet.
Prints figures and ratios; asserts nothing (timings are not tests)."""
import os, statistics, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(__file__))
from harness import Stack

SNIPPET = "x = x + 1 if 'x' in globals() else 1"
N = int(os.environ.get("BENCH_N", "2000"))


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def baseline(runs=60):
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/python3", "-c", SNIPPET], check=True)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def warm(stack):
    c = stack.client()
    c.run(SNIPPET, session="bench")
    out = []
    for _ in range(N):
        t0 = time.perf_counter()
        r = c.call("submit", lang="python", code=SNIPPET, session="bench", wait_ms=10000)
        out.append((time.perf_counter() - t0) * 1000)
        assert r["ok"] and r["outcome"] == "ok", r
    c.close()
    return out


def throughput(stack, clients=4, each=500):
    done = []

    def run(n):
        c = stack.client()
        for _ in range(each):
            c.call("submit", lang="python", code=SNIPPET, session="tp-%d" % n, wait_ms=10000)
        c.close()
        done.append(each)
    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def main():
    stack = Stack()
    try:
        base = baseline()
        w = warm(stack)
        tp = throughput(stack)
    finally:
        stack.stop()
    b50, w50, w99 = statistics.median(base), statistics.median(w), pct(w, 99)
    print("baseline python3 -c (fresh process): p50 %.2f ms  p99 %.2f ms  (%d runs)" % (b50, pct(base, 99), len(base)))
    print("warm session via broker (round trip): p50 %.3f ms  p99 %.3f ms  (%d runs)" % (w50, w99, len(w)))
    print("throughput, 4 clients x 500 snippets: %.0f snippets/s" % tp)
    print("ratio baseline/warm at p50: %.1fx faster" % (b50 / w50))
    sandbox_bench()


def sandbox_bench(runs=int(os.environ.get("BENCH_SANDBOX_N", "100"))):
    """Issue 3: cold and warm-pool session starts, next to bwrap + python3 -c of the same
    snippet measured now, and the warm snippet path with and without the sandbox."""
    import shutil
    out = {}
    bwrap = shutil.which("bwrap")
    if bwrap:
        cmd = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
               "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
               "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev",
               "--tmpfs", "/tmp", "/usr/bin/python3", "-c", SNIPPET]
        b = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            b.append((time.perf_counter() - t0) * 1000)
        out["bwrap"] = b
    # cold: every step at request time, back to back like the bwrap loop (so the kernel's
    # grace period for cgroup moves is often shared). prepared: namespaces, id maps, cgroup
    # and the shared part of the jail done before the session came; measured back to back
    # in rounds of 16, with a pause to prepare the next round. warm-pool: interpreter ready.
    starts = (("cold", ["--warm", "0", "--prepare", "0"], 0),
              ("prepared", ["--warm", "0", "--prepare", "16"], 16),
              ("warm-pool", ["--warm", "2"], 1))
    for label, args, burst in starts:
        stack = Stack(slots=runs + 2, worker_args=args)   # no evictions: start cost alone
        try:
            c = stack.client()
            c.run("1", session="prime")
            t = []
            for i in range(runs):
                if burst and i % burst == 0:
                    time.sleep(0.15 if burst == 1 else 1.0)   # let the pool refill
                t0 = time.perf_counter()
                r = c.call("submit", lang="python", code=SNIPPET, session="%s-%d" % (label, i),
                           wait_ms=10000)
                t.append((time.perf_counter() - t0) * 1000)
                assert r["ok"] and r["outcome"] == "ok", r
            out[label] = t
            c.close()
        finally:
            stack.stop()
    for label, args in (("warm sandboxed", []), ("warm --no-sandbox", ["--no-sandbox"])):
        stack = Stack(worker_args=args)
        try:
            global N
            saved, N = N, min(N, 1000)
            out[label] = warm(stack)
            N = saved
        finally:
            stack.stop()
    for label, t in out.items():
        print("session start / snippet, %-18s p50 %7.2f ms  p99 %7.2f ms  (%d runs)"
              % (label, statistics.median(t), pct(t, 99), len(t)))
    if "bwrap" not in out:
        print("bwrap not installed: no baseline (make bench-deps)")
    ws, wn = statistics.median(out["warm sandboxed"]), statistics.median(out["warm --no-sandbox"])
    print("warm path sandboxed / unsandboxed at p50: %.1f%%" % (100.0 * ws / wn))


if __name__ == "__main__":
    main()
