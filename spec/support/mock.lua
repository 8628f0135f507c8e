-- Launcher of the local CometAPI token-API mock (nginx + Lua module, spec/support/mock/):
-- starts it on a loopback port, drives its admin API and stops it. Plain Lua 5.1/5.4/LuaJIT,
-- luasocket and lua-cjson; used by specs, `make demo`, `make mock` and users.
--
--   local mock = require "spec.support.mock"      -- or dofile("spec/support/mock.lua")
--   local m = mock.start{ keys = {...}, masked_keys = true }
--   ... m.url, m.token, m.user_id ...; m:fault{ type = "reset" }; m:stop()
--
-- The defaults are today's upstream server (docs/server-2026.md): keys masked (reveal with
-- POST /api/token/:id/key or /api/token/batch/keys), New-Api-User required (send m.user_id),
-- the global limiter (180 requests per 180 s), the search limiter (10 per 60 s), the critical
-- limiter on reveals (20 per 20 min), cross_group_retry forced false unless group "auto",
-- GET /api/status with quota_per_unit. `server = "2025" | "2026-03" | "2026-08" | "pat"`
-- picks an older (or the personal-access-token) build; single switches override a preset.
--
-- Options of mock.start (all optional): port, keys (seed rows; default: 6 varied keys of
-- user 1 + 1 of user 2), token, other_token, forbidden_token (a user whose role is too low),
-- user_id, other_user_id, tls = { cert, key }, server (preset), require_user_header,
-- masked_keys, reveal, batch_keys, cross_group_rule, auth ("access_token" | "pat"),
-- language ("en" | "zh" | "auto"), search_style ("paged" | "array"), rate_limit /
-- search_rate_limit / critical_rate_limit = { requests = N, window = seconds } or false,
-- quota_per_unit, display_in_currency, max_tokens, log_level, nginx (binary), watch
-- (default true: nginx exits when this process is gone).
-- Fault specs: { type = ..., count = 1 (-1: until cleared), match = "METHOD /path-prefix",
-- seconds, status, body, content_type, retry_after, location, bytes, depth, style, chunks,
-- processed, value } -- see spec/support/mock/server.lua and spec/mock_spec.lua.

local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson.safe"

local SOURCE = debug.getinfo(1, "S").source
local sys = dofile((SOURCE:match("^@(.*/)") or "./") .. "sys.lua")

local mock = {}

mock.DEFAULT_TOKEN = "mock-token-0123456789abcdef"
mock.OTHER_TOKEN = "mock-token-other-user"
mock.FORBIDDEN_TOKEN = "mock-token-low-role"

local START_TIMEOUT = 5
local STOP_TIMEOUT = 5

-- ------------------------------------------------------------------ nginx

local MOCK_DIR = sys.dir_of(SOURCE) .. "/mock"
local json = dofile(MOCK_DIR .. "/json.lua")

mock.null = json.null
mock.json = json

local function nginx_binary()
  local env = os.getenv("COMETKEY_NGINX")
  if env and env ~= "" then
    return env
  end
  if sys.file_exists("/usr/sbin/nginx") then
    return "/usr/sbin/nginx"
  end
  return "nginx"
end

-- lua_package_cpath for nginx's LuaJIT: every directory holding Lua 5.1 C modules (cjson).
local function nginx_cpath()
  local out = {}
  local dirs = sys.capture("ls -d /usr/lib/*/lua/5.1 /usr/local/lib/lua/5.1 /usr/lib/lua/5.1 2>/dev/null")
  for dir in dirs:gmatch("[^\n]+") do
    out[#out + 1] = dir .. "/?.so"
  end
  out[#out + 1] = ""
  return table.concat(out, ";") .. ";"
end

-- ------------------------------------------------------------------ JSON helpers

-- cjson decodes every number as a float; on 5.3+ give integral values back as integers.
local function integers(v)
  if type(v) == "table" then
    for k, x in pairs(v) do
      v[k] = integers(x)
    end
    return v
  end
  if type(v) == "number" and math.tointeger then
    return math.tointeger(v) or v
  end
  return v
end

-- A JSON array holding the elements of `list` (the caller's table is left untouched).
local function array_of(list)
  local out = json.array()
  for i, v in ipairs(list) do
    out[i] = v
  end
  return out
end

-- ------------------------------------------------------------------ instances

local live = {} -- running instances, stopped at exit if the caller forgot

local Mock = {}
Mock.__index = Mock

local OPTIONS = {
  port = "number", keys = "table", token = "string", other_token = "string",
  user_id = "number", other_user_id = "number", tls = "table",
  require_user_header = "boolean", masked_keys = "boolean", language = "string",
  search_style = "string", rate_limit = "limit", search_rate_limit = "limit",
  critical_rate_limit = "limit", max_tokens = "number", log_level = "string", nginx = "string",
  watch = "boolean", server = "string", forbidden_token = "string", reveal = "boolean",
  batch_keys = "boolean", cross_group_rule = "boolean", auth = "string",
  quota_per_unit = "number", display_in_currency = "boolean",
}

local CONFIG_OPTIONS = {
  "token", "other_token", "user_id", "other_user_id", "require_user_header", "masked_keys",
  "language", "search_style", "rate_limit", "search_rate_limit", "critical_rate_limit",
  "max_tokens", "server", "forbidden_token", "reveal", "batch_keys", "cross_group_rule", "auth",
  "quota_per_unit", "display_in_currency",
}

local function check_options(opts)
  if type(opts) ~= "table" then
    error("mock.start: options must be a table", 3)
  end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then
      error("mock.start: unknown option '" .. tostring(k) .. "'", 3)
    end
    if want == "limit" then
      if v ~= false and type(v) ~= "table" then
        error("mock.start: option '" .. k .. "' must be false or { requests = N, window = seconds }", 3)
      end
    elseif type(v) ~= want then
      error("mock.start: option '" .. k .. "' must be a " .. want, 3)
    end
  end
  if opts.tls and (type(opts.tls.cert) ~= "string" or type(opts.tls.key) ~= "string") then
    error("mock.start: option 'tls' must be { cert = path, key = path }", 3)
  end
end

local function render_conf(self, port, admin_port, opts)
  local template = assert(sys.read_file(MOCK_DIR .. "/nginx.conf"), "mock: nginx.conf template missing")
  local values = {
    USER = sys.is_root() and "user root root;" or "",
    DAEMON = "on",
    PREFIX = self.dir,
    LOG_LEVEL = opts.log_level or "notice",
    MOCK_DIR = MOCK_DIR,
    LUA_CPATH = nginx_cpath(),
    SETTINGS = self.dir .. "/settings.json",
    PORT = tostring(port),
    SSL = opts.tls and " ssl" or "",
    ADMIN_LISTEN = admin_port and ("listen 127.0.0.1:" .. admin_port .. ";") or "",
    SSL_FILES = opts.tls and ("ssl_certificate " .. opts.tls.cert .. ";\n        ssl_certificate_key "
      .. opts.tls.key .. ";") or "",
  }
  return (template:gsub("{{(%u[%u_]*)}}", function(name)
    return assert(values[name], "mock: unknown template field " .. name)
  end))
end

local function write_settings(self, opts)
  local config = {}
  for _, k in ipairs(CONFIG_OPTIONS) do
    if opts[k] ~= nil then
      config[k] = opts[k]
    end
  end
  local settings = {
    config = config,
    keys = opts.keys and array_of(opts.keys) or json.null,
    watch_pid = opts.watch ~= false and sys.own_pid() or json.null,
    prefix = self.dir,
  }
  sys.write_file(self.dir .. "/settings.json", json.encode(settings))
end

local function startup_log(dir)
  return (sys.read_file(dir .. "/error.log") or "") .. (sys.read_file(dir .. "/startup.log") or "")
end

local function master_pid(dir)
  return tonumber((sys.read_file(dir .. "/nginx.pid") or ""):match("%d+"))
end

local function launch(self, opts)
  local attempts = opts.port and 1 or 5
  local last_log = ""
  for _ = 1, attempts do
    local port = opts.port or sys.free_port()
    local admin_port = opts.tls and sys.free_port() or nil
    write_settings(self, opts)
    sys.write_file(self.dir .. "/nginx.conf", render_conf(self, port, admin_port, opts))
    sys.write_file(self.dir .. "/error.log", "")
    local q = sys.quote
    local cmd = q(opts.nginx or nginx_binary()) .. " -p " .. q(self.dir) .. " -c " .. q(self.dir .. "/nginx.conf")
      .. " -e " .. q(self.dir .. "/error.log") .. " >" .. q(self.dir .. "/startup.log") .. " 2>&1"
    if sys.execute(cmd) then
      -- The daemonised master writes its pid file shortly after `nginx` returns.
      local deadline = sys.now() + START_TIMEOUT
      while sys.now() < deadline do
        self.pid = self.pid or master_pid(self.dir)
        if self.pid and sys.port_answers(port) and (not admin_port or sys.port_answers(admin_port)) then
          self.port = port
          self.url = (opts.tls and "https" or "http") .. "://127.0.0.1:" .. port
          self.admin_url = admin_port and ("http://127.0.0.1:" .. admin_port) or self.url
          self.tls = opts.tls ~= nil
          self.token = opts.token or mock.DEFAULT_TOKEN
          self.other_token = opts.other_token or mock.OTHER_TOKEN
          self.user_id = opts.user_id or 1
          self.other_user_id = opts.other_user_id or 2
          self.forbidden_token = opts.forbidden_token or mock.FORBIDDEN_TOKEN
          live[self] = true
          return self
        end
        if self.pid and not sys.process_alive(self.pid) then
          break
        end
        sys.sleep(0.01)
      end
      last_log = startup_log(self.dir)
      sys.stop_process(self.pid or master_pid(self.dir), STOP_TIMEOUT)
      return nil, "mock: nginx did not answer on 127.0.0.1:" .. port .. " within " .. START_TIMEOUT
        .. " s; nginx error log:\n" .. last_log
    end
    last_log = startup_log(self.dir)
    if opts.port or not last_log:find("Address already in use", 1, true) then
      break
    end
  end
  return nil, "mock: nginx failed to start; nginx error log:\n" .. last_log
end

-- Starts a mock server; options are listed at the top of this file.
function mock.start(opts)
  opts = opts or {}
  check_options(opts)
  local self = setmetatable({}, Mock)
  self.dir = sys.temp_dir("cometkey-mock")
  local ok, result, err = pcall(launch, self, opts)
  if ok and result then
    return result
  end
  sys.remove_dir(self.dir)
  error(ok and err or ("mock: " .. tostring(result)), 2)
end

-- Stops nginx, waits for it to exit and removes the temporary directory. Idempotent.
function Mock:stop()
  if self.stopped then
    return
  end
  self.stopped = true
  live[self] = nil
  sys.stop_process(self.pid, STOP_TIMEOUT)
  sys.remove_dir(self.dir)
end

Mock.__close = Mock.stop

-- Text of nginx's error log (Lua errors of the mock land there).
function Mock:error_log()
  return sys.read_file(self.dir .. "/error.log") or ""
end

local function request(url, method, body, headers)
  local chunks = {}
  local req = {
    url = url, method = method, headers = headers or {}, redirect = false,
    sink = ltn12.sink.table(chunks),
    create = function()
      local s = socket.tcp()
      s:settimeout(30)
      return s
    end,
  }
  if body then
    req.source = ltn12.source.string(body)
    req.headers["content-length"] = tostring(#body)
  end
  local ok, code, response_headers = http.request(req)
  if not ok then
    return nil, code
  end
  return code, table.concat(chunks), response_headers
end

-- Admin API call: raises (level 3) on transport errors and non-200 answers.
local function admin(self, method, path, value)
  if self.stopped then
    error("mock: admin call on a stopped mock", 3)
  end
  local body = value ~= nil and json.encode(value) or nil
  local code, text = request(self.admin_url .. path, method, body,
    body and { ["content-type"] = "application/json" } or nil)
  if not code then
    error("mock: " .. method .. " " .. path .. " failed: " .. tostring(text), 3)
  end
  local decoded = cjson.decode(text)
  if code ~= 200 then
    local message = type(decoded) == "table" and decoded.error or text
    error("mock: " .. method .. " " .. path .. " -> " .. code .. ": " .. tostring(message), 3)
  end
  return integers(decoded)
end

-- Back to the state at start: seeded keys, start config, no faults, empty log and stats.
function Mock:reset()
  admin(self, "POST", "/__mock/reset")
  return self
end

-- Every stored row (soft-deleted ones too, with `deleted` and `deleted_at`), id ascending.
function Mock:keys()
  return admin(self, "GET", "/__mock/keys")
end

function Mock:key(id)
  for _, row in ipairs(self:keys()) do
    if row.id == id then
      return row
    end
  end
  return nil
end

-- Replaces the whole store; omitted fields get defaults (see the report).
function Mock:set_keys(rows)
  if type(rows) ~= "table" then
    error("mock:set_keys: rows must be an array", 2)
  end
  admin(self, "PUT", "/__mock/keys", array_of(rows))
  return self
end

-- Queues one fault spec or an array of them; returns the number of pending faults.
function Mock:fault(spec)
  if type(spec) ~= "table" then
    error("mock:fault: spec must be a table", 2)
  end
  if spec[1] ~= nil then
    spec = array_of(spec)
  end
  return admin(self, "POST", "/__mock/fault", spec).pending
end

function Mock:faults()
  return admin(self, "GET", "/__mock/fault")
end

function Mock:clear_faults()
  admin(self, "DELETE", "/__mock/fault")
  return self
end

-- Changes modes at run time (nil: just read them); returns the resulting configuration.
function Mock:config(changes)
  if changes == nil then
    return admin(self, "GET", "/__mock/config")
  end
  if type(changes) ~= "table" then
    error("mock:config: changes must be a table", 2)
  end
  local result = admin(self, "POST", "/__mock/config", changes)
  if changes.token then
    self.token = changes.token
  end
  return result
end

-- One line per behaviour of a configuration (m:config()): what a client meets on this mock.
function mock.describe(config)
  local function limit(l)
    if type(l) ~= "table" then
      return "off"
    end
    return string.format("%d requests per %g s", l.requests, l.window)
  end
  local pat = config.auth == "pat"
  return {
    "server build      " .. tostring(config.server)
      .. (config.server == "2026" and " (= 2026-08, today's upstream)" or ""),
    "keys              " .. (config.masked_keys and "masked in list/get/search/update (reveal: POST /api/token/:id/key)"
      or "full keys in every answer"),
    "reveal endpoints  " .. (config.reveal and "POST /api/token/:id/key" or "none (404)")
      .. (config.batch_keys and ", POST /api/token/batch/keys (<= 100 ids)" or ""),
    "auth              " .. (pat and "personal access token (New-Api-User ignored; 401/403 with a code)"
      or (config.require_user_header
        and "access token + New-Api-User required (user id " .. tostring(config.user_id) .. ")"
      or "access token, New-Api-User not checked")),
    "global limiter    " .. limit(config.rate_limit) .. " per IP (429, empty body, no Retry-After)",
    "search limiter    " .. limit(config.search_rate_limit),
    "reveal limiter    " .. limit(config.critical_rate_limit),
    "cross_group_retry " .. (config.cross_group_rule and "stored false unless group \"auto\"; auto_groups emitted"
      or "stored as sent"),
    "GET /api/status   quota_per_unit " .. tostring(config.quota_per_unit) .. ", display_in_currency "
      .. tostring(config.display_in_currency),
    "language          " .. tostring(config.language) .. ", search " .. tostring(config.search_style),
  }
end

function Mock:stats()
  return admin(self, "GET", "/__mock/stats")
end

function Mock:requests()
  return admin(self, "GET", "/__mock/requests")
end

function Mock:clear_requests()
  admin(self, "DELETE", "/__mock/requests")
  return self
end

-- One plain HTTP request to the mock (no redirects followed, no token added):
-- returns status, body, headers (lower-case names) or nil, error.
function Mock:http(method, path, opts)
  opts = opts or {}
  local url = (opts.admin and self.admin_url or self.url) .. path
  if url:sub(1, 6) == "https:" then
    error("mock:http: plain HTTP only; use an HTTPS client for a TLS mock", 2)
  end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do
    headers[k:lower()] = v
  end
  return request(url, method, opts.body, headers)
end

-- Stops every running instance when the Lua state closes (normal exit, busted's end).
local sentinel_mt = {
  __gc = function()
    for m in pairs(live) do
      pcall(Mock.stop, m)
    end
  end,
}
if newproxy then
  local proxy = newproxy(true)
  getmetatable(proxy).__gc = sentinel_mt.__gc
  mock._sentinel = proxy
else
  mock._sentinel = setmetatable({}, sentinel_mt)
end

-- Stops every running instance now (for harnesses).
function mock.stop_all()
  for m in pairs(live) do
    m:stop()
  end
end

return mock
