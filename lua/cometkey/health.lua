--- cometkey.health: `:checkhealth cometkey` for Neovim. Reports whether the C
-- module loads in this Neovim's LuaJIT (and, when not, which build to make), the
-- library version, the curl executable the nvim transport runs, whether an access
-- token is set (never shown), and, when asked, whether a server answers:
--   let g:cometkey_health_url = 'http://127.0.0.1:8080'   " or $COMETKEY_HEALTH_URL
-- Works on Neovim 0.7 (require("health").report_*) and 0.9+ (vim.health.*).
-- luacheck: globals vim
local M = {}

local function reporter()
  local h = vim.health
  if h and h.start then
    return { start = h.start, ok = h.ok, warn = h.warn, error = h.error, info = h.info }
  end
  h = require "health"
  return { start = h.report_start, ok = h.report_ok, warn = h.report_warn, error = h.report_error,
    info = h.report_info }
end

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

--- check(): the health report (called by :checkhealth cometkey)
function M.check()
  local r = reporter()
  r.start("cometkey: C module")
  local ok, core = pcall(require, "cometkey.core")
  if ok then
    r.ok("cometkey.core " .. tostring(core.version) .. " loads in " .. (jit and jit.version or _VERSION))
    local lib_ok, cometkey = pcall(require, "cometkey")
    if lib_ok then
      r.ok(cometkey._VERSION)
    else
      r.error("the cometkey library does not load: " .. tostring(cometkey))
    end
  else
    local hint_ok, cli = pcall(require, "cometkey.cli")
    local hint = hint_ok and cli.load_hint(core) or tostring(core)
    r.error("cometkey.core does not load in this Neovim's LuaJIT: " .. hint,
      { "build it for LuaJIT: make build-luajit, then add build/luajit/?.so to package.cpath",
        "or install it: make install LUA_VERSION=5.1 LUA_INCDIR=/usr/include/luajit-2.1" })
  end

  r.start("cometkey: nvim transport")
  if vim.fn.executable("curl") == 1 then
    local version = (vim.fn.system({ "curl", "--version" }) or ""):match("^[^\n]*") or "curl"
    r.ok("curl found: " .. version)
  else
    r.error("curl not found in $PATH; the nvim transport runs the curl command-line tool",
      { "install curl (Debian: apt install curl)" })
  end

  r.start("cometkey: credentials")
  local token = env("COMETAPI_ACCESS_TOKEN")
  if token then
    r.ok("COMETAPI_ACCESS_TOKEN is set (" .. #token .. " characters; not shown)")
  else
    r.warn("COMETAPI_ACCESS_TOKEN is not set", { "export it before starting Neovim; it is never written anywhere" })
  end

  local url = (vim.g and vim.g.cometkey_health_url) or env("COMETKEY_HEALTH_URL")
  r.start("cometkey: server")
  if not url or url == "" then
    r.info("not checked (set g:cometkey_health_url or $COMETKEY_HEALTH_URL to a base URL, e.g. the mock's)")
    return
  end
  if vim.fn.executable("curl") ~= 1 then return r.error("cannot check " .. url .. " without curl") end
  -- No token is sent: any HTTP answer (401 included) proves the server is reachable.
  local code = vim.fn.system({ "curl", "-q", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
    "--noproxy", "127.0.0.1,localhost,::1", url:gsub("/+$", "") .. "/api/token/" })
  code = tostring(code):match("%d%d%d")
  if code and code ~= "000" then
    r.ok(url .. " answers (HTTP " .. code .. " without a token)")
  else
    r.error(url .. " does not answer", { "is the server (or `make mock`) running on that address?" })
  end
end

return M
