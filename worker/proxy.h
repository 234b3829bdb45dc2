/*  worker/proxy.h: the egress proxy of one granted run (proxy.c). The worker forks it, puts
    its listening socket in the session's network namespace, drops privileges and calls
    proxy_serve: a forward proxy (CONNECT tunnels and absolute-form plain HTTP) that lets
    through only what the run's grant names, and writes one report line per ended client
    connection:

      E <method> <host> <port> <address or -> <bytes_out> <bytes_in> <ms> <allowed|denied> <reason or ->
      L connections|bytes        (a cap was passed; the worker ends the run with egress_limit)

    Fields tab-separated, printable ASCII, `-` for an empty one, ms with 3 decimals. */
#ifndef RG_PROXY_H
#define RG_PROXY_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct {
    const char *const *allow;  size_t allow_count;     //  grant entries as in the policy
    const char *const *methods; size_t method_count;   //  0: any method
    int64_t max_connections;                           //  client connections accepted (<= 0: no cap)
    int64_t max_bytes;                                 //  both ways, all connections (<= 0: no cap)
    const struct sockaddr_storage *own; size_t own_count;  //  extra refused addresses
} proxy_grant_t;

//  Serves clients of listen_fd (already listening, non-blocking) until SIGTERM or
//  SIGKILL; writes one record per ended connection to report_fd. Returns the exit code:
//  0 after SIGTERM, 1 when it could not start. Blocks SIGTERM and ignores SIGPIPE in the
//  calling process. Name-resolver threads may still be running when it returns: the caller
//  exits with _exit() at once (it is the proxy's own process).
int proxy_serve (int listen_fd, const proxy_grant_t *grant, int report_fd);

int proxy_test (void);
#endif
