-- cometkey 0.2.0 rockspec (the release; cometkey-scm-1.rockspec follows the
-- checkout): `luarocks --lua-version=5.4 make cometkey-0.2.0-1.rockspec` builds and
-- installs from this checkout (no network needed). The C headers of libcurl and libjansson sit
-- in Debian's multiarch include directory, which the compiler searches by
-- itself, so only the libraries are looked up here.
rockspec_format = "3.0"
package = "cometkey"
version = "0.2.0-1"
source = {
  url = "git+https://example.invalid/cometkey.git",
  tag = "v0.2.0",
}
description = {
  summary = "Safe CometAPI API-key management for Lua (C core, libcurl, OpenResty, Neovim)",
  detailed = [[
cometkey updates CometAPI API keys without tripping the server's full-replace
update: nothing the caller did not name changes, every mistake is caught before
it is sent, and every failure has a clear message and a kind.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  CURL = { library = "curl" },
  JANSSON = { library = "jansson" },
}
build = {
  type = "builtin",
  modules = {
    ["cometkey"] = "lua/cometkey.lua",
    ["cometkey.options"] = "lua/cometkey/options.lua",
    ["cometkey.client"] = "lua/cometkey/client.lua",
    ["cometkey.call"] = "lua/cometkey/call.lua",
    ["cometkey.retry_after"] = "lua/cometkey/retry_after.lua",
    ["cometkey.plan"] = "lua/cometkey/plan.lua",
    ["cometkey.bulk"] = "lua/cometkey/bulk.lua",
    ["cometkey.pace"] = "lua/cometkey/pace.lua",
    ["cometkey.health"] = "lua/cometkey/health.lua",
    ["cometkey.types"] = "lua/cometkey/types.lua",
    ["cometkey.cli"] = "lua/cometkey/cli/init.lua",
    ["cometkey.cli.base"] = "lua/cometkey/cli/base.lua",
    ["cometkey.cli.args"] = "lua/cometkey/cli/args.lua",
    ["cometkey.cli.commands"] = "lua/cometkey/cli/commands.lua",
    ["cometkey.cli.complete"] = "lua/cometkey/cli/complete.lua",
    ["cometkey.cli.lib"] = "lua/cometkey/cli/lib.lua",
    ["cometkey.cli.profile"] = "lua/cometkey/cli/profile.lua",
    ["cometkey.cli.values"] = "lua/cometkey/cli/values.lua",
    ["cometkey.cli.format"] = "lua/cometkey/cli/format.lua",
    ["cometkey.transport.auto"] = "lua/cometkey/transport/auto.lua",
    ["cometkey.errors"] = "lua/cometkey/errors.lua",
    ["cometkey.headers"] = "lua/cometkey/headers.lua",
    ["cometkey.transport.func"] = "lua/cometkey/transport/func.lua",
    ["cometkey.transport.curl"] = "lua/cometkey/transport/curl.lua",
    ["cometkey.transport.resty"] = "lua/cometkey/transport/resty.lua",
    ["cometkey.transport.nvim"] = "lua/cometkey/transport/nvim.lua",
    ["cometkey.transport.luanti"] = "lua/cometkey/transport/luanti.lua",
    ["cometkey.luanti"] = "lua/cometkey/luanti.lua",
    ["cometkey.core"] = {
      sources = {
        "src/ck_core.c", "src/ck_cidr.c", "src/ck_allowlist.c", "src/ck_json.c", "src/ck_utf8.c",
        "src/ck_util.c", "src/ck_validate.c", "src/ck_codec.c", "src/ck_schema.c", "src/ck_secret.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "src", "$(JANSSON_INCDIR)" },
      libdirs = { "$(JANSSON_LIBDIR)" },
      libraries = { "jansson" },
    },
    ["cometkey.curl"] = {
      sources = { "src/ck_curl.c", "src/ck_secret.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "src", "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
      libraries = { "curl" },
    },
  },
  install = {
    bin = { cometkey = "bin/cometkey" },
  },
  copy_directories = { "docs" }, -- docs/cometkey.1 (the man page) and the guides
}
