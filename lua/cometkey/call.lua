--- cometkey.call: runs one API request through the client's transport with
-- the wire rules (exact URL, retries for idempotent operations with jittered
-- exponential backoff and Retry-After, one deadline per request), and drives
-- a whole operation either synchronously or, with a callback, as a coroutine
-- whose I/O the transport completes on the host's loop.
local core = require "cometkey.core"
local errors = require "cometkey.errors"

local coroutine, type, tostring, select, pairs = coroutine, type, tostring, select, pairs
local min, max, random, floor = math.min, math.max, math.random, math.floor
local format = string.format

local M = {}

M.BACKOFF_BASE = 0.25 -- seconds before the first retry (doubled per attempt, full jitter)
M.BACKOFF_CAP = 8     -- no single wait is longer than this, Retry-After included

-- Operations that may be repeated safely once sent (the server applies them the same
-- way twice, or only reads): the idempotent flag of each row of the endpoint table.
local endpoints = core.endpoints

--- backoff(attempt, retry_after) --> seconds to wait before the next attempt
function M.backoff(attempt, retry_after)
  if retry_after then return min(max(retry_after, 0), M.BACKOFF_CAP) end
  local ceiling = min(M.BACKOFF_BASE * 2 ^ (attempt - 1), M.BACKOFF_CAP)
  return ceiling / 2 + random() * ceiling / 2
end

local function target(built)
  return built.method .. " " .. built.path .. (built.query and ("?" .. built.query) or "")
end

--- redact(secret, message, info) --> message
-- A server or proxy may echo the Authorization header back (error pages,
-- debugging proxies): the token is cut out of a failure's message and of every
-- string in its info table, in C (secret:redact), before anyone sees them.
function M.redact(secret, message, info)
  if type(info) == "table" then
    for k, v in pairs(info) do
      if type(v) == "string" then info[k] = secret:redact(v) end
    end
  end
  return secret:redact(message)
end

--- perform(client, ctx, op, built) --> value | nil, message, info
-- built: core.request's table. ctx: { request(req), sleep(s), now() }.
function M.perform(client, ctx, op, built)
  local conf = client.conf
  local method, path, query = built.method, built.path, built.query
  local url = query and (conf.base_url .. path .. "?" .. query) or (conf.base_url .. path)
  local headers = built.headers
  if client.transport.needs_token then
    headers.Authorization = conf.secret:reveal()
  end
  local req = { method = method, url = url, headers = headers, body = built.body, timeout = 0 }
  local debug = conf.debug
  local now = ctx.now()
  local deadline = now + conf.timeout
  local attempt = 0
  while true do
    attempt = attempt + 1
    if attempt > 1 then now = ctx.now() end
    req.timeout = max(deadline - now, 0.001)
    if debug then debug(format("cometkey: -> %s (attempt %d)", target(built), attempt)) end
    local res, message, info = ctx.request(req)
    local value
    if res then
      value, message, info = core.response(op, res, method, path)
      if debug then
        debug(format("cometkey: <- %s (HTTP %s, %d ms)", target(built), tostring(res.status),
          floor((ctx.now() - now) * 1000 + 0.5)))
      end
      if value ~= nil then return value end
      message = M.redact(conf.secret, message, info)
    else
      if type(info) ~= "table" then info = { kind = "network" } end
      if type(message) ~= "string" then message = errors.message(target(built), "transport failed") end
      message = M.redact(conf.secret, message, info)
      if debug then debug("cometkey: <- " .. message) end
    end
    info.attempts = attempt
    local retry = info.retryable and (endpoints[op].idempotent or info.sent == false)
      and attempt <= conf.retries
    if not retry then return nil, message, info end
    local wait = M.backoff(attempt, info.retry_after)
    if ctx.now() + wait >= deadline then return nil, message, info end
    ctx.sleep(wait)
  end
end

--- sync_context(transport) --> ctx whose calls block (or yield a cosocket)
function M.sync_context(transport)
  return {
    request = function(req) return transport:request(req) end,
    sleep = function(s) return transport:sleep(s) end,
    now = function() return transport:now() end,
  }
end

local function pack(...) return { n = select("#", ...), ... } end

--- run(client, callback, fn) --> fn's results (sync) or nothing (async)
-- fn(ctx) returns value | nil, message, info. With a callback, fn runs in a
-- coroutine; callback(err, value, info) is called exactly once on the host loop.
function M.run(client, callback, fn)
  local transport = client.transport
  if callback == nil then return fn(client.sync_ctx) end

  local ctx = {
    request = function(req) return coroutine.yield("request", req) end,
    sleep = function(s) return coroutine.yield("sleep", s) end,
    now = function() return transport:now() end,
  }
  local co = coroutine.create(fn)
  local step
  local function deliver(r)
    transport:defer(function()
      if not r[1] then
        callback("cometkey: internal error: " .. tostring(r[2]), nil, { kind = "internal" })
      elseif r[2] == nil then
        callback(r[3], nil, r[4])
      else
        callback(nil, r[2], r[3])
      end
    end)
  end
  step = function(...)
    local r = pack(coroutine.resume(co, ...))
    if coroutine.status(co) == "dead" then return deliver(r) end
    local what, arg = r[2], r[3]
    if what == "request" then
      transport:request_async(arg, step)
    else
      transport:sleep_async(arg, step)
    end
  end
  step(ctx)
end

return M
