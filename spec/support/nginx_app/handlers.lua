--- nginx_app.handlers: the Lua side of the test nginx in spec/support/nginx_app/
-- (cometkey inside nginx on cosockets). Each handler answers with one JSON line
-- that spec/resty_spec.lua reads; the log-phase handler writes its outcome to
-- the error log with a "cometkey-spec" marker.
-- luacheck: globals ngx
local cjson = require "cjson.safe"
local cometkey = require "cometkey"

local tonumber, tostring, type, pairs = tonumber, tostring, type, pairs

local M = {}

local settings -- set in init_by_lua (master), inherited by the worker
local matchers -- compiled once per worker in init_worker_by_lua

--- configure{ token, user_id, mock_url, tls_url, self_signed_url, watch_pid } (init_by_lua)
function M.configure(opts)
  settings = opts
end

-- Stops this nginx when the process that started it (busted) is gone.
local function watch(pid)
  ngx.timer.every(0.5, function(premature)
    if premature or io.open("/proc/" .. pid .. "/stat", "rb") then return end
    local f = io.open(ngx.config.prefix() .. "/nginx.pid", "rb")
    local master = f and tonumber(f:read("*l"))
    if f then f:close() end
    if master then os.execute("kill -TERM " .. master) end
  end)
end

--- init_worker(): compiles the allowlists this worker checks in access_by_lua.
function M.init_worker()
  matchers = {
    inside = cometkey.allowlist.compile { "10.0.0.0/8", "127.0.0.1", "2001:db8::/32" },
    outside = cometkey.allowlist.compile { "10.0.0.0/8", "192.168.1.10", "::1" },
  }
  if settings.watch_pid then watch(settings.watch_pid) end
end

-- A key record made printable (cometkey.null is cjson.null, so it encodes as null).
local function plain(key)
  local out = {}
  for k, v in pairs(key) do out[k] = v end
  return out
end

local function reply(result)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(result))
end

local function outcome(client, key, message, info)
  if key then return { ok = true, transport = client.transport.name, key = plain(key) } end
  info = type(info) == "table" and info or {}
  return {
    ok = false, transport = client.transport.name, message = message, kind = info.kind,
    retryable = info.retryable, sent = info.sent, attempts = info.attempts,
  }
end

--- /update?id=N&name=S
function M.update()
  local args = ngx.req.get_uri_args()
  local client = cometkey.new { token = settings.token, user_id = settings.user_id, base_url = settings.mock_url }
  local key, message, info = client:update { id = tonumber(args.id), name = args.name or "from-nginx" }
  reply(outcome(client, key, message, info))
end

--- /get?id=N&base=plain|tls|self_signed&timeout=s&max_body=n&retries=n&ca_file=path[&async=1]
-- async=1 uses the callback form, which must complete before the handler returns.
function M.get()
  local args = ngx.req.get_uri_args()
  local base = ({ plain = settings.mock_url, tls = settings.tls_url,
    self_signed = settings.self_signed_url })[args.base or "plain"]
  local client = cometkey.new {
    token = settings.token, user_id = settings.user_id, base_url = base, timeout = tonumber(args.timeout),
    max_body = tonumber(args.max_body), retries = tonumber(args.retries), ca_file = args.ca_file,
  }
  if not args.async then return reply(outcome(client, client:get(tonumber(args.id)))) end
  local result
  client:get(tonumber(args.id), function(err, key, info)
    result = outcome(client, key, err, info)
  end)
  reply(result or { ok = false, message = "the callback had not run when get returned" })
end

--- /raw?port=P&id=N[&close_after=s][&timeout=s]: one client:get against a loopback server
-- of the spec's (hostile answers); with close_after, a second light thread closes the
-- client while the get waits on its cosocket.
function M.raw()
  local args = ngx.req.get_uri_args()
  local client = cometkey.new { token = settings.token, base_url = "http://127.0.0.1:" .. tonumber(args.port),
    retries = 0, timeout = tonumber(args.timeout) }
  local closer
  if args.close_after then
    closer = ngx.thread.spawn(function()
      ngx.sleep(tonumber(args.close_after))
      client:close()
    end)
  end
  local t0 = ngx.now()
  local key, message, info = client:get(tonumber(args.id))
  ngx.update_time()
  if closer then ngx.thread.wait(closer) end
  local result = outcome(client, key, message, info)
  result.info_strings = {}
  for k, v in pairs(type(info) == "table" and info or {}) do
    if type(v) == "string" then result.info_strings[k] = v end
  end
  result.wiped = client.conf.secret:wiped()
  result.seconds = ngx.now() - t0
  reply(result)
end

--- log_by_lua: try an update here (refused: no cosockets), then from a timer.
function M.from_log_phase()
  local id = tonumber(ngx.var.arg_id)
  local client = cometkey.new { token = settings.token, user_id = settings.user_id, base_url = settings.mock_url,
    retries = 0 }
  local key, message = client:update { id = id, name = "from-log-phase" }
  ngx.log(ngx.WARN, "cometkey-spec log phase: ", key and "unexpected success" or message)
  local ok, err = ngx.timer.at(0, function(premature)
    if premature then return end
    local k, m = client:update { id = id, name = "from-timer" }
    ngx.log(ngx.WARN, "cometkey-spec timer: ", k and ("updated " .. tostring(k.name)) or m)
  end)
  if not ok then ngx.log(ngx.ERR, "cometkey-spec timer: cannot start: ", err) end
end

--- access_by_lua: 403 unless the peer address is in the named allowlist.
function M.allow(which)
  if not matchers[which]:contains(ngx.var.binary_remote_addr, "binary") then
    return ngx.exit(ngx.HTTP_FORBIDDEN)
  end
end

return M
