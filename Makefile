# replgate build. `make` builds bin/; `make test` runs every suite; `make asan` runs the same suite
# under AddressSanitizer + UBSan; `make run` starts the local stack; `make deps` installs packages.

PKGS      := libczmq libzmq jansson sqlite3 libsodium libpcre2-8 libseccomp libcurl libmicrohttpd
DEBS      := build-essential pkg-config libczmq-dev libzmq3-dev libjansson-dev libsqlite3-dev \
             libsodium-dev libpcre2-dev libseccomp-dev python3 python3-zmq sqlite3 bash procps \
             libcurl4-openssl-dev libmicrohttpd-dev libunistring-dev python3-pip python3-setuptools \
             python3-wheel iproute2
B         ?= build
BIN       ?= bin
OPT       ?= -O2
SAN       ?=
CFLAGS    := -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
             -Wno-unused-parameter -I. -I$(B)/gen -MMD -MP $(SAN) \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Each program links only the objects and libraries it calls: every shared library is
# loaded and relocated at each start, even if never called (libczmq brings 23 with it).
# --as-needed also where the compiler does not default to it (Debian's gcc drops it under -fsanitize).
LDFLAGS   := $(SAN) -Wl,--as-needed
libs       = $(shell pkg-config --libs $(1) 2>/dev/null) -lm

COMMON    := $(wildcard common/*.c) $(wildcard store/*.c) $(wildcard policy/*.c)
BROKER    := $(filter-out broker/main.c,$(wildcard broker/*.c))
WORKER    := $(filter-out worker/main.c worker/init.c worker/shellhost.c,$(wildcard worker/*.c))
# client/lazy.c stands in for czmq in `replgate` and `replgate-local`, client/handoff.c for
# the commands that read files in `replgate` alone (see there).
CLIENT    := $(filter-out client/main.c client/lazy.c client/handoff.c,$(wildcard client/*.c))
# The commands that read the database or a policy file: `replgate-local` runs them.
LOCAL_CMDS := $(addprefix client/,local.c replay.c export.c policy_cmd.c)
APPROVER  := $(filter-out approver/main.c,$(wildcard approver/*.c))
# The shared modules, by what they need. The store's *_test.c files are part of the
# store (store_test.c runs the others, and defines store_raw_exec, which they call).
STORE     := $(addprefix store/,store.c store_read.c store_row.c store_write.c store_prune.c schema.c \
               query.c verify.c verify_schema.c checkpointer.c store_test.c verify_test.c schema_test.c \
               query_test.c checkpointer_test.c verify_schema_test.c)
POLICY    := $(addprefix policy/,policy.c load.c reader.c grant.c jpos.c nfkc.c network_text.c)
# libunistring (NFKC, policy/nfkc.c) has no pkg-config file: every link of $(POLICY) adds it.
POLICY_LIBS := -lunistring
MASK      := $(addprefix policy/,mask.c mask_builtins.c)
REDACT    := $(addprefix policy/,mask_apply.c mask_stream.c redact.c)
# What every program may call: helpers, growable buffers, the table of request states.
UTIL      := $(addprefix common/,util.c buf.c states.c)
# A CURVE DEALER connection to the broker, and its keys read from cert files, without czmq
# or libzmq: for the CLI, the approver and the worker's front (common/zmtp_test.c runs it
# against a real libzmq server: only the self-test, which links COMMON, links libzmq).
ZMTP      := $(addprefix common/,zmtp.c zmtp_wire.c certfile.c)
obj        = $(patsubst %.c,$(B)/%.o,$(1))
GEN       := $(B)/gen/pydriver_py.h $(B)/gen/shdriver_sh.h $(B)/gen/default_json.h

PROGS     := $(BIN)/replgate-broker $(BIN)/replgate-worker $(BIN)/replgate $(BIN)/replgate-local \
             $(BIN)/replgate-selftest $(BIN)/replgate-init \
             $(BIN)/replgate-approver

.PHONY: all deps test asan run bench bench-deps fuzz fuzz-deps clean check-deps
all: check-deps $(PROGS)

check-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "replgate: missing Debian packages:$$missing"; \
	  echo "  install them with: make deps   (as root), or: sudo apt-get install -y$$missing"; exit 2; fi

# What only tests need, found by command (each command is also its Debian package): nodejs and
# npm for tests/test_mcp.py (the official MCP SDK; a nodejs from elsewhere, NodeSource, bundles
# npm and conflicts with Debian's npm); curl (run inside sandboxes) and openssl (makes the test
# HTTPS origin's certificate) for tests/test_egress.py, which also runs pip (python3-pip, above).
TEST_CMDS := nodejs npm curl openssl
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for c in $(TEST_CMDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "replgate: missing Debian packages:$$missing"; \
	  echo "  run as root: apt-get install -y$$missing"; exit 2; fi; \
	echo "replgate: installing$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing

$(B)/%.o: %.c | $(GEN)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c $< -o $@

# Scripts run inside sessions are compiled into the worker as C string literals.
$(B)/gen/%_py.h: worker/%.py tests/cstring.sh
	@mkdir -p $(dir $@)
	sh tests/cstring.sh $* < $< > $@
$(B)/gen/%_json.h: policy/%.json tests/cstring.sh
	@mkdir -p $(dir $@)
	sh tests/cstring.sh $* < $< > $@
$(B)/gen/%_sh.h: worker/%.sh tests/cstring.sh
	@mkdir -p $(dir $@)
	sh tests/cstring.sh $* < $< > $@

$(BIN)/replgate-broker: $(call obj,broker/main.c $(BROKER) $(UTIL) common/keys.c \
                          common/proto.c common/egress_check.c common/preflight.c $(STORE) $(POLICY) $(MASK) $(REDACT))
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ -o $@ $(call libs,libczmq libzmq jansson sqlite3 libsodium libpcre2-8) $(POLICY_LIBS)
# No store, SQLite or policy engine: the worker only masks secrets out of results. No czmq
# or libzmq either: its front speaks to the broker through common/zmtp.c.
$(BIN)/replgate-worker: $(call obj,worker/main.c $(WORKER) $(UTIL) $(ZMTP) common/proto.c common/egress_check.c $(MASK) $(REDACT))
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ -o $@ $(call libs,jansson libsodium libpcre2-8 libseccomp)
# No libzmq or czmq: client/lazy.c loads them when a command first calls them. No SQLite,
# PCRE2 or libunistring either: the commands that read files are replgate-local's.
$(BIN)/replgate: $(call obj,client/main.c client/lazy.c client/handoff.c \
                   $(filter-out $(LOCAL_CMDS),$(CLIENT)) $(UTIL) $(ZMTP) common/keys.c policy/network_text.c)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ -o $@ $(call libs,jansson libsodium)
$(BIN)/replgate-local: $(call obj,client/main.c client/lazy.c $(CLIENT) $(UTIL) $(ZMTP) common/keys.c \
                         $(STORE) $(POLICY) $(MASK))
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ -o $@ $(call libs,jansson sqlite3 libsodium libpcre2-8) $(POLICY_LIBS)
# No czmq or libzmq: its connections to the broker are common/zmtp.c's.
$(BIN)/replgate-approver: $(call obj,approver/main.c $(APPROVER) client/conn.c $(ZMTP) $(UTIL) \
                            store/store_row.c)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ -o $@ $(call libs,jansson sqlite3 libsodium libcurl libmicrohttpd)
# The sandbox's PID 1: static, never sanitized, nothing of the worker inside the jail.
$(BIN)/replgate-init: worker/init.c worker/shellhost.c worker/shellhost.h
	@mkdir -p $(BIN)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -I. -static $(filter %.c,$^) -o $@
$(BIN)/replgate-selftest: $(call obj,tests/selftest.c $(BROKER) $(WORKER) $(CLIENT) \
                            $(APPROVER) $(COMMON))
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ -o $@ $(call libs,$(PKGS)) $(POLICY_LIBS)

test: deps
	@$(MAKE) --no-print-directory all
	@REPLGATE_BIN=$(CURDIR)/$(BIN) bash tests/run.sh

asan: deps
	@$(MAKE) --no-print-directory all B=build-asan BIN=bin-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
	@REPLGATE_BIN=$(CURDIR)/bin-asan REPLGATE_ASAN=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 bash tests/run.sh

run: deps
	@$(MAKE) --no-print-directory all
	$(BIN)/replgate up

# libFuzzer targets for the readers of hostile bytes (client and worker frames, Slack's
# callbacks, the sandbox claim, the policy, the terminal rendering, a ZeroMQ server's bytes to
# the CLI): each runs FUZZ_RUNS
# inputs from its seeds.
fuzz-deps:
	@dpkg -s clang >/dev/null 2>&1 || { if [ "$$(id -u)" != 0 ]; then \
	  echo "replgate: make fuzz needs clang: apt-get install -y clang"; exit 2; fi; \
	  echo "replgate: installing clang"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang; }

fuzz: deps fuzz-deps
	@bash tests/fuzz/run.sh

# The benchmark's baselines, and nothing else: bubblewrap (sandbox start) and a Jupyter kernel
# (python3-ipykernel, python3-jupyter-client: the kernel round trip). No test depends on them.
BENCH_DEBS := bubblewrap python3-ipykernel python3-jupyter-client
bench-deps:
	@missing=""; for p in $(BENCH_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "replgate: the bench skips the baselines of missing packages:$$missing"; \
	  echo "  run as root: apt-get install -y$$missing"; exit 0; fi; \
	echo "replgate: installing$$missing (bench baselines)"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing || \
	  echo "replgate: could not install$$missing; the bench skips their baselines"

bench: deps bench-deps
	@$(MAKE) --no-print-directory all
	@REPLGATE_BIN=$(CURDIR)/$(BIN) /usr/bin/python3 tests/bench.py

clean:
	rm -rf build build-asan bin bin-asan

-include $(shell find $(B) build build-asan -name '*.d' 2>/dev/null)
