# hearth: build, run, test, bench and fuzz targets.
# Layers build into their own static libraries so a test links only what it
# needs: engine (src/engine) and server (core, store, http, api, jobs).
# Debian dependencies are installed by scripts/deps.sh when pkg-config misses one.

CC      ?= cc
PKGS    := libmicrohttpd jansson sqlite3 nettle libpcre2-8 libcurl icu-uc
OPT     ?= -O2
CFLAGS  ?= -g
CFLAGS  += $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -Isrc -MMD -MP
# Lazily expanded: evaluated after the deps target has run.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
LDLIBS  = $(PKG_LIBS) -lm -pthread

B := build
ENGINE_SRC := $(wildcard src/engine/*.c)
SERVER_SRC := $(wildcard src/core/*.c src/store/*.c src/http/*.c src/api/*.c src/jobs/*.c)
CLI_SRC    := src/main.c $(wildcard src/cli/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(B)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(B)/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(B)/%.o)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

# SIMD kernels: files named *_avx2.c / *_avx512.c get their ISA flags; the
# choice between them is made at run time (engine/cpu.c).
$(B)/src/engine/%_avx2.o:   XFLAGS := -mavx2 -mfma -mf16c
$(B)/src/engine/%_avx512.o: XFLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c
$(ENGINE_OBJ): OPT := -O3

.PHONY: all deps run test unit e2e bench fuzz clean format
all: deps
	@$(MAKE) --no-print-directory hearth

deps:
	@pkg-config --exists $(PKGS) 2>/dev/null && command -v node >/dev/null || scripts/deps.sh

hearth: $(CLI_OBJ) $(B)/libserver.a $(B)/libengine.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(B)/libserver.a $(B)/libengine.a $(LDLIBS)

$(B)/libengine.a: $(ENGINE_OBJ)
	@rm -f $@; ar rcs $@ $^
$(B)/libserver.a: $(SERVER_OBJ)
	@rm -f $@; ar rcs $@ $^

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(XFLAGS) $(PKG_CFLAGS) -c $< -o $@

# Unit tests: test_engine_* link the engine only; the rest link server + engine.
$(B)/tests/test_engine_%: tests/unit/test_engine_%.c $(B)/libengine.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit -o $@ $< $(B)/libengine.a $(LDLIBS)
$(B)/tests/test_%: tests/unit/test_%.c $(B)/libserver.a $(B)/libengine.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit -o $@ $< $(B)/libserver.a $(B)/libengine.a $(LDLIBS)

run: all
	./hearth serve

test: deps
	@$(MAKE) --no-print-directory hearth $(UNIT_BIN)
	@scripts/test.sh

unit: deps
	@$(MAKE) --no-print-directory hearth $(UNIT_BIN)
	@scripts/test.sh --unit-only

e2e: all
	@[ -d tests/e2e/node_modules ] || (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
	node tests/e2e/run.mjs

# Side-by-side benchmarks (minutes; see bench/README.md): HTTP vs nginx,
# engine vs llama.cpp. Each writes its RESULTS.md under bench/.
bench: all
	bench/http/run.sh
	bench/engine/run.sh
	bench/serving/run.sh

fuzz: deps
	@scripts/fuzz.sh

format:
	clang-format -i $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]' 'fuzz/*.c')

clean:
	rm -rf $(B) hearth

-include $(shell find $(B) -name '*.d' 2>/dev/null)
