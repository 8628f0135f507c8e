# cometkey - build, test, install, demo.
#
#   make                      build the C modules for Lua $(LUA_VERSION) into build/$(LUA_VERSION)
#   make test                 everything CI runs (installs missing Debian packages when root)
#   make demo                 update keys against the local mock server
#   make mock                 run the local mock server in the foreground
#   make install PREFIX=/usr/local LUA_VERSION=5.4|5.1 [LUA_INCDIR=/usr/include/luajit-2.1]
#   make luanti               the Luanti proof alone (a headless minetestserver against the mock)
#   make bench | make fuzz FUZZ_SECONDS=N | make lint | make clean

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
LOGS = build/logs

LUA_VERSION ?= 5.4
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
PREFIX      ?= /usr/local
DESTDIR     ?=
BUILD       ?= build/$(LUA_VERSION)
FUZZ_SECONDS ?= 10

CC       ?= cc
CWARN    = -std=c99 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes -Wstrict-prototypes
CFLAGS   ?= -O2 -g
PKG_CFLAGS := $(shell pkg-config --cflags libcurl jansson 2>/dev/null)
CURL_LIBS  := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
JSON_LIBS  := $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)
ALL_CFLAGS = $(CWARN) $(CFLAGS) -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L -I$(LUA_INCDIR) -Isrc $(PKG_CFLAGS)
LIBFLAG  ?= -shared

# The C sources of each module: the one list. test/c/Makefile, tools/asan-specs.sh and
# tools/fuzz.sh read it (`make -s print-CORE_SRC`); `make lint` checks the rockspec against it.
CORE_SRC = src/ck_core.c src/ck_cidr.c src/ck_allowlist.c src/ck_json.c src/ck_utf8.c src/ck_util.c \
           src/ck_validate.c src/ck_codec.c src/ck_schema.c src/ck_secret.c
CURL_SRC = src/ck_curl.c src/ck_secret.c
HEADERS  = $(wildcard src/*.h)

CORE_SO = $(BUILD)/cometkey/core.so
CURL_SO = $(BUILD)/cometkey/curl.so

.PHONY: all build deps test lint ctest spec luanti valgrind install-check install uninstall demo mock bench bench-soak \
        asan fuzz soak clean clean-logs
# (pattern targets such as spec-5.4 and build-luajit cannot be .PHONY: make would skip them)

all: build
build: $(CORE_SO) $(CURL_SO)

$(CORE_SO): $(CORE_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $(CORE_SRC) $(JSON_LIBS)

$(CURL_SO): $(CURL_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $(CURL_SRC) $(CURL_LIBS)

# ---------------------------------------------------------------- dependencies
# Debian packages every target here may need; `make deps` installs the missing
# ones when run as root and prints the exact command otherwise.
deps: deps-test
deps-%:
	@sh tools/deps.sh $*

# ---------------------------------------------------------------- tests
LUAS = 5.4 5.1 luajit
lua_5.4    = lua5.4
lua_5.1    = lua5.1
lua_luajit = luajit
inc_5.4    = /usr/include/lua5.4
inc_5.1    = /usr/include/lua5.1
inc_luajit = /usr/include/luajit-2.1

build-%:
	@$(MAKE) --no-print-directory build LUA_VERSION=$* BUILD=build/$* LUA_INCDIR=$(inc_$*)

spec-%: build-% build-5.4 build-luajit
	@echo "== busted on $(lua_$*)"
	@mkdir -p $(LOGS)
	CK_BUILD=build/$* $(lua_$*) /usr/bin/busted --cpath='build/$*/?.so' --lpath='lua/?.lua;lua/?/init.lua' spec \
	    | tee $(LOGS)/spec-$*.log

spec: spec-5.4 spec-5.1 spec-luajit

# The Luanti proof alone (it also runs in every spec-%): the engine loads build/luajit.
luanti: deps-test build-luajit
	@mkdir -p $(LOGS)
	CK_BUILD=build/luajit luajit /usr/bin/busted --cpath='build/luajit/?.so' --lpath='lua/?.lua;lua/?/init.lua' \
	    spec/luanti_spec.lua spec/luanti_transport_spec.lua | tee $(LOGS)/luanti.log

ctest:
	@mkdir -p $(LOGS) && $(MAKE) --no-print-directory -f test/c/Makefile CORE_SRC="$(CORE_SRC)" \
	    | tee $(LOGS)/ctest.log

valgrind: build-5.4
	@mkdir -p $(LOGS)
	@sh tools/valgrind-specs.sh | tee $(LOGS)/valgrind.log

lint:
	luacheck -q lua spec examples bench tools bin/cometkey
	@sh tools/check-format.sh
	@sh tools/check-rockspec.sh "$(CORE_SRC)" "$(CURL_SRC)"
	@sh tools/check-bench-symbols.sh
	@lua5.4 tools/check-annotations.lua

# `make -s print-CORE_SRC` prints a variable (the source lists, for scripts).
print-%:
	@echo $($*)

install-check:
	@mkdir -p $(LOGS)
	@sh tools/check-install.sh | tee $(LOGS)/install.log

asan:
	@mkdir -p $(LOGS)
	@sh tools/asan-specs.sh | tee $(LOGS)/asan.log

fuzz: deps-fuzz build-5.4
	@mkdir -p $(LOGS)
	sh tools/fuzz.sh $(FUZZ_SECONDS) | tee $(LOGS)/fuzz.log

soak: deps-demo build-5.4
	CK_BUILD=build/5.4 lua5.4 tools/soak.lua

test: deps-test clean-logs lint ctest spec valgrind asan fuzz install-check
	@sh tools/test-summary.sh $(LOGS)

clean-logs:
	@rm -rf $(LOGS)

# ---------------------------------------------------------------- install
LUA_SHARE = $(DESTDIR)$(PREFIX)/share/lua/$(LUA_VERSION)
LUA_LIB   = $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_VERSION)
SHARE     = $(DESTDIR)$(PREFIX)/share

# The command-line tool runs on the Lua it was installed for (lua5.4 or lua5.1).
CLI_LUA = $(if $(findstring luajit,$(LUA_INCDIR)),luajit,lua$(LUA_VERSION))

install: build
	install -d $(LUA_SHARE)/cometkey/transport $(LUA_SHARE)/cometkey/cli $(LUA_LIB)/cometkey \
	    $(DESTDIR)$(PREFIX)/bin
	install -m 644 lua/cometkey.lua $(LUA_SHARE)/cometkey.lua
	install -m 644 $(wildcard lua/cometkey/*.lua) $(LUA_SHARE)/cometkey/
	install -m 644 $(wildcard lua/cometkey/transport/*.lua) $(LUA_SHARE)/cometkey/transport/
	install -m 644 $(wildcard lua/cometkey/cli/*.lua) $(LUA_SHARE)/cometkey/cli/
	install -m 755 $(CORE_SO) $(CURL_SO) $(LUA_LIB)/cometkey/
	sed '1s|.*|#!/usr/bin/env $(CLI_LUA)|' bin/cometkey > $(DESTDIR)$(PREFIX)/bin/cometkey
	chmod 755 $(DESTDIR)$(PREFIX)/bin/cometkey
	install -d $(SHARE)/man/man1 $(SHARE)/bash-completion/completions $(SHARE)/zsh/site-functions \
	    $(SHARE)/fish/vendor_completions.d
	install -m 644 docs/cometkey.1 $(SHARE)/man/man1/cometkey.1
	lua5.4 bin/cometkey completion bash > $(SHARE)/bash-completion/completions/cometkey
	lua5.4 bin/cometkey completion zsh > $(SHARE)/zsh/site-functions/_cometkey
	lua5.4 bin/cometkey completion fish > $(SHARE)/fish/vendor_completions.d/cometkey.fish

uninstall:
	rm -rf $(LUA_SHARE)/cometkey $(LUA_SHARE)/cometkey.lua $(LUA_LIB)/cometkey
	rm -f $(DESTDIR)$(PREFIX)/bin/cometkey $(SHARE)/man/man1/cometkey.1 $(SHARE)/bash-completion/completions/cometkey \
	    $(SHARE)/zsh/site-functions/_cometkey $(SHARE)/fish/vendor_completions.d/cometkey.fish

# ---------------------------------------------------------------- demo & mock
demo: deps-demo build-5.4
	CK_BUILD=build/5.4 lua5.4 tools/demo.lua

mock: deps-demo
	lua5.4 tools/mock.lua $(if $(PORT),--port $(PORT))

# ---------------------------------------------------------------- benchmarks
bench: deps-bench build-5.4 build-luajit
	lua5.4 bench/run.lua

bench-soak: deps-bench build-5.4
	lua5.4 bench/run.lua soak

clean:
	rm -rf build bench/out
