# Kamailio `uac` module in Rust.
#
#   make            build target/uac.so (release)
#   make run        set up, build, create run/uacreg.db and start Kamailio in
#                   the foreground with examples/kamailio.cfg on 127.0.0.1:5060
#   make test       unit tests, fuzz smoke run, and build + clippy + integration
#                   tests on every release in RELEASES (each in its own root)
#   make test-release    build + clippy + integration tests against the
#                   Kamailio of this machine (or of the root it runs in)
#   make test-in-trixie  the same inside the trixie root (any of RELEASES)
#   make install    copy target/uac.so to $(MODULES_DIR)/$(INSTALL_NAME)
#   make bench      side-by-side benchmark against Debian's C uac.so
#   make soak       100k calls + 100k uac_req_send: shm, processes, RSS flat
#   make fuzz       run every fuzz target for FUZZ_SECONDS each

MODULES_DIR ?= /usr/local/lib/kamailio/modules
INSTALL_NAME ?= uac.so
KAMAILIO ?= /usr/sbin/kamailio
SQL_DIR := /usr/share/kamailio/db_sqlite
DEBIAN_MODULES_DIR := /usr/lib/x86_64-linux-gnu/kamailio/modules
CARGO ?= cargo
# Debian releases `make test` proves the module on: bookworm (Kamailio 5.6),
# trixie (6.0), sid (6.1). The machine's own release runs directly, the others
# in a debootstrapped root (scripts/in-release.sh).
RELEASES ?= bookworm trixie sid
HOST_RELEASE := $(shell . /etc/os-release 2>/dev/null && echo $$VERSION_CODENAME)
# scripts/in-release.sh builds each release into target/<release>/.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
export UAC_SO := $(abspath $(TARGET_DIR))/uac.so
FUZZ_SECONDS ?= 60

.PHONY: all setup build test test-release test-cross unit integration run install clean fmt clippy bench soak fuzz fuzz-setup fuzz-ci

all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --lib
	# A new file, not an overwrite: a running kamailio keeps its mapping.
	cp $(TARGET_DIR)/release/libuac.so $(TARGET_DIR)/uac.so.tmp && mv -f $(TARGET_DIR)/uac.so.tmp $(TARGET_DIR)/uac.so

target/uac.so: build

# Unit tests and fuzzing need no Kamailio: once. Integration tests start real
# kamailio processes loading $(UAC_SO): once per release.
test:
	$(CARGO) test --no-default-features --lib
	$(MAKE) fuzz-ci
	for r in $(RELEASES); do $(MAKE) test-in-$$r || exit 1; done
	$(MAKE) test-cross

test-release: build
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --no-default-features --no-fail-fast --tests -- --test-threads=2

# Each release's Kamailio refuses the modules built for the other releases
# with its version-mismatch message (tests/cross_release.rs). Needs every
# release built, which the test-in-* targets above did.
test-cross:
	@set -e; [ $(words $(RELEASES)) -ge 2 ] || exit 0; \
	module_of() { if [ "$$1" = "$(HOST_RELEASE)" ]; then echo $(CURDIR)/target/uac.so; \
	  else echo $(CURDIR)/target/$$1/uac.so; fi; }; \
	for r in $(RELEASES); do \
	  others=""; for o in $(RELEASES); do [ $$o = $$r ] || others="$$others:$$(module_of $$o)"; done; \
	  echo "== modules of other releases in the Kamailio of Debian $$r =="; \
	  cmd="UAC_OTHER_RELEASE_MODULES=$$others $(CARGO) test --no-default-features --test cross_release -- --ignored"; \
	  if [ "$$r" = "$(HOST_RELEASE)" ]; then sh -c "$$cmd"; else scripts/in-release.sh $$r sh -c "$$cmd"; fi; \
	done

test-in-%:
	@echo "== Kamailio of Debian $* =="
	@if [ "$*" = "$(HOST_RELEASE)" ]; then $(MAKE) test-release; \
	 else scripts/in-release.sh $* $(MAKE) test-release; fi

run/uacreg.db:
	mkdir -p run
	rm -f run/uacreg.db.tmp
	sqlite3 run/uacreg.db.tmp < $(SQL_DIR)/standard-create.sql
	sqlite3 run/uacreg.db.tmp < $(SQL_DIR)/uac-create.sql
	mv run/uacreg.db.tmp run/uacreg.db

# /var/run/kamailio holds the ctl socket kamcmd finds by default
# (examples/kamailio.cfg), so plain `kamcmd uac.reg_dump` reaches it.
run: build run/uacreg.db
	mkdir -p /var/run/kamailio
	$(KAMAILIO) -DD -E -f examples/kamailio.cfg -Y $(CURDIR)/run \
	  -A 'UACREG_DB_URL="sqlite://$(CURDIR)/run/uacreg.db"' \
	  -A 'UAC_MPATH="$(dir $(UAC_SO)):$(DEBIAN_MODULES_DIR)/"'

install: target/uac.so
	install -d $(MODULES_DIR)
	install -m 0644 target/uac.so $(MODULES_DIR)/$(INSTALL_NAME)

fmt:
	$(CARGO) fmt

clippy: setup
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf run

# Defaults (bench/bench.py): replace,auth,reqsend; a 300-call warm-up, 5 rounds
# of 1000 calls at 500/s per variant, then 100 calls per variant under
# callgrind. Duration and precision: bench/README.md.
# BENCH_ARGS="--scenarios register" for the registration figures.
BENCH_ARGS ?=
bench: build
	python3 bench/bench.py $(BENCH_ARGS)

# Long-running leak/crash check of our module (not part of `make test`):
# SOAK_CALLS=100000 calls through replace+auth and as many uac_req_send
# requests; smaller with e.g. `make soak SOAK_CALLS=10000`.
soak: build
	python3 bench/soak.py

FUZZ_TARGETS := challenge rr_param name_addr credential uac_req register_reply reg_row cluster_msg
# cargo-fuzz drives libFuzzer; RUSTC_BOOTSTRAP lets the stable toolchain take
# the sanitizer flags it needs.
fuzz-setup: setup
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz

fuzz: fuzz-setup
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus-work/$$t; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz $$t fuzz/corpus-work/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=16384 || exit 1; \
	done

# The short run CI does on every push (seed corpus kept in fuzz/seeds).
fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=10
