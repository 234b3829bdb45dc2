/*  worker/egress.c: a granted run's proxy process, seen from the back (see egress.h): its
    start in two namespaces, its reports, its end, and what goes into the result. */
#define _GNU_SOURCE
#include "worker/egress.h"
#include "worker/grant.h"
#include "worker/proxy.h"
#include "worker/seccomp.h"
#include "common/buf.h"
#include "common/egress_check.h"
#include "common/check.h"
#include "common/util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_MS 3000           //  for the proxy to say it listens
#define STOP_MS 250             //  for it to report its open connections after SIGTERM
#define LINE_MAX_BYTES 1024     //  a report line longer than this is not one the proxy wrote
#define FD_LISTEN 3             //  the proxy's descriptors, as egress_proxy_main expects them
#define FD_REPORT 4
#define FD_EXE 5

struct _egress_t {
    pid_t pid;
    int fd;                     //  the report pipe's read end, non-blocking; -1 at its end
    char url [40];
    buf_t in;                   //  a report line not complete yet
    json_t *entries;
    int64_t connections, denied, bytes_out, bytes_in, dropped;
    bool limit;                 //  the proxy said the run passed a cap
};

static uid_t s_uid;
static char s_broker [64];
static scfilter_t *s_filter;    //  built once: a child of the back (which may have threads)
                                //  only installs it between fork and exec

void
egress_configure (uid_t uid, const char *broker)
{
    s_uid = uid;
    s_broker [0] = 0;
    if (!s_filter && !(s_filter = scfilter_new ()))
        log_error ("egress: no seccomp filter: granted runs will fail to start their proxy");
    //  tcp://ADDRESS:PORT, numeric: the proxies refuse it unless a grant names it.
    const char *host = broker && strncmp (broker, "tcp://", 6) == 0 ? broker + 6 : NULL;
    const char *colon = host ? strrchr (host, ':') : NULL;
    if (colon && (size_t) (colon - host) < sizeof s_broker) {
        snprintf (s_broker, sizeof s_broker, "%.*s", (int) (colon - host), host);
        if (s_broker [0] == '[' && s_broker [strlen (s_broker) - 1] == ']') {
            memmove (s_broker, s_broker + 1, strlen (s_broker));
            s_broker [strlen (s_broker) - 1] = 0;
        }
        struct in6_addr a;
        if (inet_pton (AF_INET, s_broker, &a) != 1 && inet_pton (AF_INET6, s_broker, &a) != 1)
            s_broker [0] = 0;
    }
}

//  --------------------------------------------------------------------------
//  The start, in the forked child: never returns. What fails is said on the report pipe.

static void __attribute__ ((noreturn))
s_die (int report, const char *what)
{
    char line [256];
    int n = snprintf (line, sizeof line, "X %s: %s\n", what, strerror (errno));
    if (write (report, line, (size_t) n) < 0) {
        //  nobody to tell: the parent sees the pipe end without a "P" line
    }
    _exit (125);
}

//  Brings the namespace's loopback up: a new network namespace has it down.
static void
s_loopback_up (int report)
{
    int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = { .ifr_name = "lo" };
    if (s < 0 || ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
        s_die (report, "the session's loopback");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
        s_die (report, "bringing the session's loopback up");
    close (s);
}

//  A listening socket on 127.0.0.1 of the namespace of process pid; the caller stays in its own.
static int
s_listen_in (pid_t pid, int report)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/ns/net", (int) pid);
    int home = open ("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int box = open (path, O_RDONLY | O_CLOEXEC);
    struct stat h, b;
    if (home < 0 || box < 0 || fstat (home, &h) < 0 || fstat (box, &b) < 0)
        s_die (report, "the session's network namespace");
    //  Unsandboxed (--no-sandbox), the session shares ours: nothing to enter.
    bool enter = h.st_ino != b.st_ino || h.st_dev != b.st_dev;
    if (enter && setns (box, CLONE_NEWNET) < 0)
        s_die (report, "entering the session's network namespace");
    if (enter)
        s_loopback_up (report);
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in at = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    if (fd < 0 || bind (fd, (struct sockaddr *) &at, sizeof at) < 0 || listen (fd, 512) < 0)
        s_die (report, "listening in the session's network namespace");
    if (enter && setns (home, CLONE_NEWNET) < 0)
        s_die (report, "leaving the session's network namespace");
    close (home);
    close (box);
    return fd;
}

static void __attribute__ ((noreturn))
s_child (pid_t pid, pid_t back, const char *grant, const session_limits_t *limits, int report,
         int exe)
{
    int fd = s_listen_in (pid, report);
    //  Out of the way first: any of the three may sit where another must go.
    int high [3] = { fcntl (fd, F_DUPFD_CLOEXEC, 10), fcntl (report, F_DUPFD_CLOEXEC, 10),
                     fcntl (exe, F_DUPFD_CLOEXEC, 10) };
    if (high [0] < 0 || high [1] < 0 || high [2] < 0 || dup2 (high [0], FD_LISTEN) < 0
    ||  dup2 (high [1], FD_REPORT) < 0 || dup3 (high [2], FD_EXE, O_CLOEXEC) < 0
    ||  close_range (FD_EXE + 1, ~0U, 0) < 0)
        s_die (report, "arranging descriptors");
    report = FD_REPORT;
    if (geteuid () == 0 && (setgroups (0, NULL) < 0 || setresgid (s_uid, s_uid, s_uid) < 0
                            || setresuid (s_uid, s_uid, s_uid) < 0))
        s_die (report, "dropping privileges");
    //  After the uid changed, which clears it; a back already gone is seen by getppid.
    if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid () != back)
        s_die (report, "prctl pdeathsig");
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        s_die (report, "prctl no_new_privs");
    //  The sessions' filter too: the proxy parses what a sandbox sends, and needs none of
    //  the kernel surfaces it refuses (worker/seccomp.c).
    if (!s_filter || scfilter_install (s_filter) < 0)
        s_die (report, "installing the seccomp filter");
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    char conns [24], bytes [24];
    snprintf (conns, sizeof conns, "%lld", (long long) limits->egress_connections);
    snprintf (bytes, sizeof bytes, "%lld", (long long) limits->egress_bytes);
    char *argv [] = { "replgate-worker", "--egress-proxy", conns, bytes, (char *) grant,
                      s_broker [0] ? s_broker : NULL, NULL };
    fexecve (FD_EXE, argv, environ);
    s_die (report, "starting the proxy");
}

//  --------------------------------------------------------------------------
//  The back's side.

//  Waits up to ms for the first report line; 0 when it was "P PORT".
static int
s_await_port (egress_t *self, int ms, char *why, size_t size)
{
    int64_t end = clock_mono_ms () + ms;
    char line [LINE_MAX_BYTES];
    size_t len = 0;
    while (len < sizeof line - 1) {
        struct pollfd p = { self->fd, POLLIN, 0 };
        int left = (int) (end - clock_mono_ms ());
        if (left <= 0 || poll (&p, 1, left) <= 0) {
            snprintf (why, size, "the run's proxy did not start in time");
            return -1;
        }
        ssize_t n = read (self->fd, line + len, 1);     //  one line, byte by byte: it is short
        if (n <= 0) {
            snprintf (why, size, "the run's proxy ended before it listened");
            return -1;
        }
        if (line [len] == '\n') {
            line [len] = 0;
            int port = 0;
            if (sscanf (line, "P %d", &port) == 1 && port > 0 && port < 65536) {
                snprintf (self->url, sizeof self->url, "http://127.0.0.1:%d", port);
                return 0;
            }
            snprintf (why, size, "the run's proxy could not start (%.200s)",
                      line [0] == 'X' && line [1] == ' ' ? line + 2 : line);
            return -1;
        }
        len++;
    }
    snprintf (why, size, "the run's proxy said something else than its port");
    return -1;
}

egress_t *
egress_new (pid_t pid, const char *grant, const session_limits_t *limits, char *why, size_t size)
{
    egress_t *self = (egress_t *) calloc (1, sizeof *self);
    if (self)
        self->fd = -1;
    int p [2] = { -1, -1 };
    int exe = open ("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (!self || !(self->entries = json_array ()) || exe < 0 || pipe2 (p, O_CLOEXEC) < 0) {
        snprintf (why, size, "cannot start the run's proxy: %s", strerror (errno));
        goto fail;
    }
    self->fd = p [0];
    pid_t back = getpid ();
    self->pid = fork ();
    if (self->pid == 0)
        s_child (pid, back, grant, limits, p [1], exe);
    close (p [1]);
    p [1] = -1;
    if (self->pid < 0) {
        snprintf (why, size, "cannot start the run's proxy: fork: %s", strerror (errno));
        goto fail;
    }
    if (s_await_port (self, START_MS, why, size) < 0)
        goto fail;
    if (fcntl (self->fd, F_SETFL, O_NONBLOCK) < 0) {
        snprintf (why, size, "cannot watch the run's proxy: %s", strerror (errno));
        goto fail;
    }
    close (exe);
    return self;
fail:
    if (exe >= 0)
        close (exe);
    if (p [1] >= 0)
        close (p [1]);
    egress_destroy (&self);
    return NULL;
}

void
egress_destroy (egress_t **self_p)
{
    egress_t *self = *self_p;
    if (!self)
        return;
    if (self->pid > 0) {
        kill (self->pid, SIGKILL);
        while (waitpid (self->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (self->fd >= 0)
        close (self->fd);
    buf_free (&self->in);
    json_decref (self->entries);
    free (self);
    *self_p = NULL;
}

const char *
egress_url (egress_t *self)
{
    return self->url;
}

int
egress_fd (egress_t *self)
{
    return self->fd;
}

//  One report line: a connection (counted, and kept while there is room) or a cap passed.
static void
s_report (egress_t *self, const char *line)
{
    if (strcmp (line, "L\tconnections") == 0 || strcmp (line, "L\tbytes") == 0) {
        self->limit = true;
        return;
    }
    json_t *entry = egress_entry (line);
    if (!entry) {
        log_warn ("egress: ignored a report line the proxy could not have written");
        return;
    }
    self->connections++;
    self->denied += strcmp (json_string_value (json_object_get (entry, "outcome")), "denied") == 0;
    self->bytes_out += json_integer_value (json_object_get (entry, "bytes_out"));
    self->bytes_in += json_integer_value (json_object_get (entry, "bytes_in"));
    if (json_array_size (self->entries) < EGRESS_MAX_ENTRIES)
        json_array_append_new (self->entries, entry);
    else {
        self->dropped++;
        json_decref (entry);
    }
}

//  Reads the pipe; -1 once it ended (the proxy is gone).
static int
s_read (egress_t *self)
{
    while (self->fd >= 0) {
        if (buf_reserve (&self->in, 4096) < 0)
            return -1;
        ssize_t n = read (self->fd, self->in.data + self->in.len, self->in.alloc - self->in.len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            close (self->fd);
            self->fd = -1;
            break;
        }
        self->in.len += (size_t) n;
        char *nl;
        while ((nl = memchr (self->in.data, '\n', self->in.len))) {
            *nl = 0;
            s_report (self, self->in.data);
            buf_consume (&self->in, (size_t) (nl - self->in.data) + 1);
        }
        if (self->in.len > LINE_MAX_BYTES)
            self->in.len = 0;   //  not a line the proxy wrote: dropped
    }
    return self->fd >= 0 ? 0 : -1;
}

bool
egress_step (egress_t *self)
{
    s_read (self);
    return self->limit;
}

void
egress_finish (egress_t **self_p, json_t *result)
{
    egress_t *self = *self_p;
    if (!self)
        return;
    if (self->pid > 0 && kill (self->pid, SIGTERM) < 0)
        log_warn ("egress: kill %d: %s", (int) self->pid, strerror (errno));
    int64_t end = clock_mono_ms () + STOP_MS;
    while (s_read (self) == 0) {
        struct pollfd p = { self->fd, POLLIN, 0 };
        int left = (int) (end - clock_mono_ms ());
        if (left <= 0 || poll (&p, 1, left) == 0)
            break;
    }
    json_object_set (result, "egress", self->entries);
    json_object_set_new (result, "egress_totals", json_pack (
        "{s:I, s:I, s:I, s:I, s:I}", "connections", (json_int_t) self->connections,
        "denied", (json_int_t) self->denied, "bytes_out", (json_int_t) self->bytes_out,
        "bytes_in", (json_int_t) self->bytes_in, "dropped", (json_int_t) self->dropped));
    egress_destroy (self_p);
}

//  --------------------------------------------------------------------------
//  Report lines.

static bool
s_count (const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll (text, &end, 10);
    if (errno || end == text || *end || v < 0)
        return false;
    *out = v;
    return true;
}

json_t *
egress_entry (const char *line)
{
    char copy [LINE_MAX_BYTES + 1];
    if (strncmp (line, "E\t", 2) != 0 || strlen (line) > LINE_MAX_BYTES)
        return NULL;
    snprintf (copy, sizeof copy, "%s", line + 2);
    char *field [9], *rest = copy;
    for (int i = 0; i < 9; i++)
        if (!(field [i] = strsep (&rest, "\t")))
            return NULL;
    int64_t port, out, in;
    char *end;
    double ms = strtod (field [6], &end);
    bool allowed = strcmp (field [7], "allowed") == 0, denied = strcmp (field [7], "denied") == 0;
    if (rest || !s_count (field [2], &port) || port > 65535 || !s_count (field [4], &out)
    ||  !s_count (field [5], &in) || *end || end == field [6] || !(ms >= 0) || !(allowed || denied)
    ||  strlen (field [1]) > EGRESS_MAX_HOST || strlen (field [3]) > EGRESS_MAX_ADDRESS)
        return NULL;
    for (const char *c = line; *c; c++)
        if ((unsigned char) *c < 0x20 ? *c != '\t' : (unsigned char) *c >= 0x7f)
            return NULL;
    //  "-" is a field the proxy did not know (a request it could not read): the record keeps
    //  the connection with what is known. A method is a word of A-Z for the broker.
    bool method = strlen (field [0]) >= 1 && strlen (field [0]) <= EGRESS_MAX_METHOD
               && strspn (field [0], "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == strlen (field [0]);
    json_t *e = json_pack ("{s:s, s:s, s:I, s:I, s:I, s:f, s:s}", "method", method ? field [0] : "UNKNOWN",
                           "host", strcmp (field [1], "-") ? field [1] : "", "port", (json_int_t) port,
                           "bytes_out", (json_int_t) out, "bytes_in", (json_int_t) in, "ms", ms,
                           "outcome", field [7]);
    if (e && *field [3] && strcmp (field [3], "-") != 0)
        json_object_set_new (e, "address", json_string (field [3]));
    if (e && denied)
        json_object_set_new (e, "reason", json_stringn (strcmp (field [8], "-") ? field [8] : "denied",
                                                        strlen (field [8]) > EGRESS_MAX_REASON
                                                        ? EGRESS_MAX_REASON : strlen (field [8])));
    return e;
}

//  --------------------------------------------------------------------------
//  The proxy process: replgate-worker --egress-proxy CONNECTIONS BYTES GRANT [BROKER_ADDRESS]

//  The addresses of this host's interfaces, and the broker's: refused unless a grant names them.
static size_t
s_own_addresses (const char *broker, struct sockaddr_storage *own, size_t max)
{
    size_t n = 0;
    struct ifaddrs *list = NULL, *i;
    if (getifaddrs (&list) == 0)
        for (i = list; i && n < max; i = i->ifa_next)
            if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6)) {
                memset (&own [n], 0, sizeof own [n]);
                memcpy (&own [n++], i->ifa_addr, i->ifa_addr->sa_family == AF_INET
                        ? sizeof (struct sockaddr_in) : sizeof (struct sockaddr_in6));
            }
    freeifaddrs (list);
    if (broker && n < max) {
        struct sockaddr_in *v4 = (struct sockaddr_in *) &own [n];
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) &own [n];
        memset (&own [n], 0, sizeof own [n]);
        if (inet_pton (AF_INET, broker, &v4->sin_addr) == 1)
            v4->sin_family = AF_INET, n++;
        else
        if (inet_pton (AF_INET6, broker, &v6->sin6_addr) == 1)
            v6->sin6_family = AF_INET6, n++;
    }
    return n;
}

int
egress_proxy_main (int argc, char *argv [])
{
    //  exec made us dumpable again: the sessions share no uid with us, but the front does.
    //  (AddressSanitizer builds stay dumpable: LeakSanitizer ptraces its own process.)
#if !defined (__SANITIZE_ADDRESS__)
    if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        fprintf (stderr, "replgate-worker --egress-proxy: prctl: %s\n", strerror (errno));
        return 2;
    }
#endif
    if (argc < 3 || argc > 4) {
        fprintf (stderr, "replgate-worker --egress-proxy: started by the worker only\n");
        return 2;
    }
    proxy_grant_t grant = { 0 };
    const char *allow [GRANT_MAX_ALLOW], *methods [GRANT_MAX_METHODS];
    int64_t conns, bytes;
    if (!s_count (argv [0], &conns) || !s_count (argv [1], &bytes)
    ||  grant_split (argv [2], allow, &grant.allow_count, methods, &grant.method_count) < 0) {
        fprintf (stderr, "replgate-worker --egress-proxy: bad arguments\n");
        return 2;
    }
    struct sockaddr_storage own [64];
    grant.allow = allow;
    grant.methods = methods;
    grant.max_connections = conns;
    grant.max_bytes = bytes;
    grant.own = own;
    grant.own_count = s_own_addresses (argc == 4 ? argv [3] : NULL, own, 64);
    //  Two sockets and two pipes per connection, 256 connections: more than the usual soft
    //  limit of 1024 descriptors. Without them a connection copies instead of splicing.
    struct rlimit nofile;
    if (getrlimit (RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 2048) {
        nofile.rlim_cur = nofile.rlim_max < 2048 ? nofile.rlim_max : 2048;
        setrlimit (RLIMIT_NOFILE, &nofile);
    }
    struct sockaddr_in at;
    socklen_t len = sizeof at;
    if (getsockname (FD_LISTEN, (struct sockaddr *) &at, &len) < 0 || at.sin_family != AF_INET) {
        fprintf (stderr, "replgate-worker --egress-proxy: no listening socket\n");
        return 2;
    }
    char line [32];
    int n = snprintf (line, sizeof line, "P %d\n", ntohs (at.sin_port));
    if (write (FD_REPORT, line, (size_t) n) != n)
        return 2;
    //  _exit: resolver threads may still be inside getaddrinfo (proxy.h).
    _exit (proxy_serve (FD_LISTEN, &grant, FD_REPORT));
}

//  --------------------------------------------------------------------------
//  Self-test: the report lines.

int
egress_test (void)
{
    json_t *e = egress_entry ("E\tCONNECT\tfiles.example.com\t443\t93.184.216.34\t517\t4096\t12.500\tallowed\t-");
    CHECK (e && strcmp (json_string_value (json_object_get (e, "host")), "files.example.com") == 0
           && json_integer_value (json_object_get (e, "bytes_in")) == 4096
           && json_real_value (json_object_get (e, "ms")) == 12.5
           && json_object_get (e, "reason") == NULL
           && strcmp (json_string_value (json_object_get (e, "address")), "93.184.216.34") == 0);
    json_decref (e);
    e = egress_entry ("E\tGET\t169.254.169.254\t80\t-\t0\t0\t0.100\tdenied\tlink-local address");
    CHECK (e && !json_object_get (e, "address")
           && strcmp (json_string_value (json_object_get (e, "reason")), "link-local address") == 0);
    json_decref (e);
    //  What the proxy could not read is kept with what is known, in the broker's shape.
    e = egress_entry ("E\t-\t-\t0\t-\t0\t0\t0.010\tdenied\tbad request line");
    CHECK (e && strcmp (json_string_value (json_object_get (e, "method")), "UNKNOWN") == 0
           && strcmp (json_string_value (json_object_get (e, "host")), "") == 0
           && json_integer_value (json_object_get (e, "port")) == 0);
    json_decref (e);
    //  An empty address is no address (the broker's checks refuse an empty one).
    e = egress_entry ("E\tCONNECT\th.example\t443\t\t1\t2\t12.5\tallowed\te");
    CHECK (e && !json_object_get (e, "address") && !json_object_get (e, "reason"));
    char why [160];
    json_t *list = json_pack ("[O]", e);
    CHECK (egress_check_entries (list, why, sizeof why) == NULL);
    json_decref (list);
    json_decref (e);
    const char *bad [] = {
        "E\tGET\th\t80\t-\t0\t0\t0.1\tallowed",                 //  a field short
        "E\tGET\th\t80\t-\t0\t0\t0.1\tallowed\t-\tx",           //  one too many
        "E\tGET\th\t65536\t-\t0\t0\t0.1\tallowed\t-",           //  port
        "E\tGET\th\t80\t-\t-1\t0\t0.1\tallowed\t-",             //  negative bytes
        "E\tGET\th\t80\t-\t0\t0\tx\tallowed\t-",                //  ms
        "E\tGET\th\t80\t-\t0\t0\t0.1\tmaybe\t-",                //  outcome
        "E\tGET\th\xc3\xa9\t80\t-\t0\t0\t0.1\tallowed\t-",      //  not ASCII
        "E\tGET\th\x1b[2J\t80\t-\t0\t0\t0.1\tallowed\t-",       //  a control character
        "X\tGET\th\t80\t-\t0\t0\t0.1\tallowed\t-", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        e = egress_entry (bad [i]);
        CHECK (e == NULL);
        json_decref (e);
    }
    egress_configure (65534, "tcp://[::1]:5555");
    CHECK (strcmp (s_broker, "::1") == 0);
    egress_configure (65534, "tcp://broker.example:5555");
    CHECK (s_broker [0] == 0);
    egress_configure (65534, "tcp://10.0.0.7:5555");
    CHECK (strcmp (s_broker, "10.0.0.7") == 0);
    return 0;
}
