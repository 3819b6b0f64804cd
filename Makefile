# nbgate: one non-recursive Makefile.
#
#   make run            install what is missing, build, start nbgate (embedded default)
#   make test           install what is missing, build, run unit + integration + fuzz replay
#   make check          unit tests only
#   make lint           clang-tidy, cppcheck, clang --analyze, banned functions, complexity
#   make fuzz           libFuzzer builds of tests/fuzz (clang)
#   make bench          bench/ scripts against real peers (writes docs/benchmarks.md)
#   make install-deps   apt packages from scripts/deps.apt (idempotent), then `make criu`
#   make criu           CRIU >= 4.2 in /usr/local/sbin (scripts/install-criu.sh)
#   make SANITIZE=address,undefined test
#
# Each component folder builds build/lib<dir>.a from every .c in it;
# binaries and tests link the archives.

CC        ?= cc
BUILD     ?= build
PKGS      := libwebsockets libsodium libssl libcrypto sqlite3 libcjson libseccomp libcap libcurl yaml-0.1
CPPFLAGS  += -I. -D_GNU_SOURCE -D_FORTIFY_SOURCE=2
CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -fstack-protector-strong \
             -Werror=implicit-function-declaration -Werror=incompatible-pointer-types \
             -Werror=int-conversion -Werror=return-type -Werror=format-security \
             -Werror=missing-prototypes -Werror=strict-prototypes
ifeq ($(DEVELOPER),1)
CFLAGS    += -Werror
endif
ifneq ($(SANITIZE),)
CFLAGS    += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS   += -fsanitize=$(SANITIZE)
BUILD     := build-san
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS     += $(PKG_CFLAGS)
LIBS       := $(PKG_LIBS) -lpthread

# Order matters for static linking: dependents first.
COMPONENTS := gateway spawner sandbox checkpoint images common
# <dir>/main.c and <dir>/*_main.c are programs, not library members.
define component
$(1)_SRC := $$(filter-out $(1)/main.c $(1)/%_main.c,$$(wildcard $(1)/*.c))
$(1)_OBJ := $$(patsubst %.c,$(BUILD)/%.o,$$($(1)_SRC))
$(BUILD)/lib$(1).a: $$($(1)_OBJ)
	@mkdir -p $$(@D)
	@rm -f $$@ # a member whose source is gone must not linger
	$$(AR) rcs $$@ $$^
endef
$(foreach c,$(COMPONENTS),$(eval $(call component,$(c))))
ARCHIVES := $(foreach c,$(COMPONENTS),$(BUILD)/lib$(c).a)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

NBGATE := $(BUILD)/nbgate
$(NBGATE): $(BUILD)/gateway/main.o $(ARCHIVES)
	$(CC) $(LDFLAGS) -o $@ $< $(ARCHIVES) $(LIBS)

# nbgate-init: the sandbox shim and PID 1 (sandbox/sandbox.h). It sits
# next to nbgate, which finds it there. The tests also get a copy built
# with -DSANDBOX_FAULTS (fault injection for SBX-14); nbgate never uses it.
NBGATE_INIT := $(BUILD)/nbgate-init
INIT_FAULTS := $(BUILD)/tests/sbx/nbgate-init-faults
# It links only what it uses: sandbox, checkpoint (CRIU dump and restore
# run from it) and common (no lws, no database).
INIT_ARCHIVES := $(BUILD)/libsandbox.a $(BUILD)/libcheckpoint.a $(BUILD)/libcommon.a
INIT_LIBS := $(shell pkg-config --libs libseccomp libcap libcjson 2>/dev/null)
$(NBGATE_INIT): sandbox/init_main.c $(INIT_ARCHIVES)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< $(INIT_ARCHIVES) $(INIT_LIBS)
$(INIT_FAULTS): sandbox/init_main.c $(INIT_ARCHIVES)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DSANDBOX_FAULTS $(CFLAGS) $(LDFLAGS) -o $@ $< $(INIT_ARCHIVES) $(INIT_LIBS)

# The in-sandbox probe of SECURITY.md 4.3: static, so it runs in any rootfs.
SBX_PROBE := $(BUILD)/tests/sbx/sbx-probe
$(SBX_PROBE): tests/sbx/probe.c
	@mkdir -p $(@D)
	$(CC) -D_GNU_SOURCE -O1 -g -Wall -Wextra -static -o $@ $<

# --- unit tests (cmocka): tests/unit/<dir>/test_<file>.c, one binary each ---
UNIT_SRC  := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN  := $(patsubst %.c,$(BUILD)/%,$(UNIT_SRC))
$(BUILD)/tests/unit/%: tests/unit/%.c $(ARCHIVES)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -o $@ $< $(ARCHIVES) $(LIBS) -lcmocka

# --- helpers and fuzz replay binaries ---
HELPER_SRC := $(wildcard tests/helpers/*.c)
HELPER_BIN := $(patsubst %.c,$(BUILD)/%,$(HELPER_SRC))
$(BUILD)/tests/helpers/%: tests/helpers/%.c $(ARCHIVES)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -o $@ $< $(ARCHIVES) $(LIBS)

FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(patsubst %.c,$(BUILD)/%,$(FUZZ_SRC))
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c $(ARCHIVES)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DFUZZ_REPLAY_MAIN -MMD -MP -o $@ $< $(ARCHIVES) $(LIBS)

# Images from images/recipes, cached by recipe digest in the machine-level
# store (images/image.h): unchanged recipes are not rebuilt.
images: all
	@scripts/build-images.sh $(NBGATE) $(IMAGES)

.PHONY: images all run test check check-integration check-fuzz check-browser fuzz lint bench install-deps criu clean complexity format-check
all: $(NBGATE) $(HELPER_BIN) $(if $(wildcard sandbox/init_main.c),$(NBGATE_INIT) $(INIT_FAULTS)) \
     $(if $(wildcard tests/sbx/probe.c),$(SBX_PROBE))

install-deps:
	@scripts/install-deps.sh

# CRIU >= 4.2 (install-deps runs it too); idempotent, see the script.
criu:
	@scripts/install-criu.sh

run: install-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory images
	scripts/run.sh $(NBGATE)

test: install-deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(FUZZ_BIN)
	@$(MAKE) --no-print-directory images
	@$(MAKE) --no-print-directory check check-fuzz check-integration check-browser

check: $(UNIT_BIN)
	@scripts/run-unit.sh $(UNIT_BIN)

check-fuzz: $(FUZZ_BIN)
	@scripts/run-fuzz-replay.sh $(FUZZ_BIN)

check-integration: all
	@NBGATE=$(abspath $(NBGATE)) BUILD=$(abspath $(BUILD)) scripts/run-integration.sh

check-browser: all
	@NBGATE=$(abspath $(NBGATE)) scripts/run-browser.sh

fuzz:
	@scripts/fuzz.sh

lint:
	@scripts/lint.sh

complexity:
	@scripts/complexity.sh

bench: all
	bench/proxy
	bench/spawn
	bench/checkpoint
	bench/kubernetes

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
