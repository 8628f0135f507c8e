--- cometkey.call: runs one API request through the client's transport with
-- the wire rules (exact URL, retries for idempotent operations with jittered
-- exponential backoff and Retry-After, one deadline per request), and drives
-- a whole operation either synchronously or, with a callback, as a coroutine
-- whose I/O the transport completes on the host's loop.
local core = require "cometkey.core"
local errors = require "cometkey.errors"
local retry_after_lib = require "cometkey.retry_after"

local coroutine, type, tostring, select, pairs = coroutine, type, tostring, select, pairs
local min, max, random, floor = math.min, math.max, math.random, math.floor
local format = string.format

local M = {}

M.BACKOFF_BASE = 0.25 -- seconds before the first retry (doubled per attempt, full jitter)
M.BACKOFF_CAP = 8     -- no backoff wait is longer than this (a Retry-After may be, up to the deadline)

-- Operations that may be repeated safely once sent (the server applies them the same
-- way twice, or only reads): the idempotent flag of each row of the endpoint table.
local endpoints = core.endpoints

--- backoff(attempt, retry_after) --> seconds to wait before the next attempt
-- retry_after: seconds from cometkey.retry_after.parse (an integer 0..MAX), honoured
-- in full; perform() does not wait at all when it would end past the deadline.
function M.backoff(attempt, retry_after)
  if type(retry_after) == "number" and retry_after >= 0 and retry_after <= retry_after_lib.MAX then
    return retry_after
  end
  local ceiling = min(M.BACKOFF_BASE * 2 ^ (attempt - 1), M.BACKOFF_CAP)
  return ceiling / 2 + random() * ceiling / 2
end

local function target(built)
  return built.method .. " " .. built.path .. (built.query and ("?" .. built.query) or "")
end

M.MAX_REFUSALS = 1000 -- 429s one bulk request may meet before it fails (learned pacing)
-- ... and for how long, in units of the client's timeout, from its first 429 (default 30 s x 10 =
-- 300 s: longer than the server's 180 s window, yet a server that never accepts cannot stall a run)
M.REFUSAL_TIMEOUTS = 10

--- retry_after(seconds, cap) --> a parsed Retry-After (info.retry_after) capped by
-- `cap` (one call's timeout); nil when absent, negative or not finite.
function M.retry_after(v, cap)
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then return nil end
  return min(v, cap)
end

M.pace_wait = require("cometkey.pace").wait

--- redact(secret, message, info [, where]) --> message
-- A server or proxy may echo the Authorization header back (error pages,
-- debugging proxies): the token is cut out of a failure's message and of every
-- string in its info table, in C (secret:redact), before anyone sees them.
-- Once the token is wiped (the client was closed and its last request has
-- ended, or a finalizer ran) it can no longer be searched for, so no server
-- text is delivered at all: the message says what failed and that the rest
-- was withheld, and info keeps only its non-string facts and its kind.
function M.redact(secret, message, info, where)
  if secret:wiped() then
    if type(info) == "table" then
      for k, v in pairs(info) do
        if type(v) == "string" and k ~= "kind" then info[k] = nil end
      end
    end
    return errors.message(where or "request", tostring(type(info) == "table" and info.kind or "failed")
      .. " (details withheld: the client was closed)")
  end
  if type(info) == "table" then
    for k, v in pairs(info) do
      if type(v) == "string" then info[k] = secret:redact(v) end
    end
  end
  return secret:redact(message)
end

-- In-flight accounting: close() wipes the token only when no call of the client
-- is running, and the last call to end wipes it for a closed client, so every
-- failure that arrives after close() is still redacted.
local function hold(client)
  client.busy = (client.busy or 0) + 1
end

local function release(client)
  local n = (client.busy or 1) - 1
  client.busy = n
  if n <= 0 and client.closed then client.conf.secret:wipe() end
end
M.hold, M.release = hold, release

--- perform(client, ctx, op, built) --> value | nil, message, info
-- built: core.request's table. ctx: { request(req), sleep(s), now() }.
function M.perform(client, ctx, op, built)
  local conf = client.conf
  local method, path, query = built.method, built.path, built.query
  local url = query and (conf.base_url .. path .. "?" .. query) or (conf.base_url .. path)
  local headers = built.headers
  local idempotent = endpoints[op].idempotent
  local req = { method = method, url = url, headers = headers, body = built.body, timeout = 0,
    idempotent = idempotent }
  local debug = conf.debug
  local now = ctx.now()
  local deadline = now + conf.timeout
  local attempt = 0
  local pace, refusals, refused_since = client.pace, 0, nil
  while true do
    attempt = attempt + 1
    if client.closed then -- closed meanwhile (a multi-request call, a retry): nothing more is sent
      return nil, errors.message(target(built), "network error: the client was closed"),
        { kind = "network", retryable = false, sent = attempt > 1, attempts = attempt - 1 }
    end
    if attempt == 1 and client.transport.needs_token then
      headers.Authorization = conf.secret:reveal()
    end
    if attempt > 1 then now = ctx.now() end
    -- Pacing (cometkey.pace): wait for the client's budget. A bulk item has no
    -- overall deadline: its request's own timeout starts once it has a slot.
    local token
    if pace then
      local need
      token, need = M.pace_wait(pace, ctx, not ctx.bulk and deadline or nil)
      if not token then
        return nil, errors.message(target(built), format("rate limited: the client's pace allows the next "
          .. "request in %.1f s, after the timeout", need)), { kind = "rate_limited", retryable = true,
          attempts = attempt - 1, sent = false }
      end
      now = ctx.now()
      if ctx.bulk then deadline = now + conf.timeout end
    end
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
      if value ~= nil then
        if pace then pace:accepted(token, ctx.now()) end
        return value
      end
      message = M.redact(conf.secret, message, info, target(built))
      if (res.status == 429 or res.status == 503) and type(res.headers) == "table" then
        -- One strict parser for every transport: delta-seconds or an HTTP-date; anything else is ignored.
        info.retry_after = retry_after_lib.parse(res.headers["retry-after"], os.time())
      end
    else
      if type(info) ~= "table" then info = { kind = "network" } end
      if type(message) ~= "string" then message = errors.message(target(built), "transport failed") end
      message = M.redact(conf.secret, message, info, target(built))
      if debug then debug("cometkey: <- " .. message) end
    end
    info.attempts = attempt
    local retry_after, again = M.retry_after(info.retry_after, conf.timeout), false
    if pace then
      if res and res.status == 429 then
        pace:refused(token, ctx.now(), retry_after, ctx.bulk)
        -- A bulk item meets the limiter without failing: a refused request is
        -- not processed (safe to repeat), and the budget says when to try again.
        refused_since = refused_since or ctx.now()
        if ctx.bulk and refusals < M.MAX_REFUSALS
          and ctx.now() - refused_since < M.REFUSAL_TIMEOUTS * conf.timeout then
          refusals, attempt, again = refusals + 1, attempt - 1, true
        end
      else
        pace:accepted(token, ctx.now())
      end
    end
    if not again then
      local retry = info.retryable and (idempotent or info.sent == false)
        and attempt <= conf.retries
      if not retry then return nil, message, info end
      local wait = M.backoff(attempt, retry_after)
      local after = ctx.now() + wait
      if after ~= after or (not ctx.bulk and after >= deadline) then return nil, message, info end -- NaN: no wait
      ctx.sleep(wait)
    end
  end
end

--- context(transport, mode) --> ctx { request(req), sleep(s), now(), bulk }
-- The one constructor of the contexts operations run in. mode "sync": calls
-- block (or yield a cosocket); "async" and "bulk": request and sleep yield to
-- the driver (call.run's callback loop, bulk's scheduler), which completes them
-- on the transport. "bulk": no overall deadline (each request keeps its timeout).
local function yield_request(req) return coroutine.yield("request", req) end
local function yield_sleep(s) return coroutine.yield("sleep", s) end

function M.context(transport, mode)
  local now = function() return transport:now() end
  if mode == "sync" then
    return {
      request = function(req) return transport:request(req) end,
      sleep = function(s) return transport:sleep(s) end,
      now = now,
    }
  end
  return { request = yield_request, sleep = yield_sleep, now = now, bulk = mode == "bulk" }
end

--- sync_context(transport) --> context(transport, "sync")
function M.sync_context(transport) return M.context(transport, "sync") end

local function pack(...) return { n = select("#", ...), ... } end

-- The client's methods tail-call run: Lua 5.1 keeps a "(tail call)" level on the stack
-- for them, LuaJIT and 5.4 do not. Level of the method's caller, as seen from run:
local CALLER = 2
do
  local function probe() error("", 2) end
  local function tail() return probe() end
  local _, message = pcall(function() tail() end)
  if message == "" then CALLER = 3 end
end

-- pcall can be yielded across on Lua 5.2+ and LuaJIT.
local PCALL_YIELDS = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

local function finish_sync(client, ok, ...)
  release(client)
  if not ok then error((...), 0) end
  return ...
end

--- run(client, callback, fn) --> fn's results (sync) or nothing (async)
-- fn(ctx) returns value | nil, message, info. With a callback, fn runs in a
-- coroutine; callback(err, value, info) is called exactly once on the host loop.
function M.run(client, callback, fn)
  local transport = client.transport
  if callback == nil then
    if transport.async_only then
      errors.raise(tostring(transport.name), "the \"" .. tostring(transport.name) .. "\" transport is callback-only "
        .. "(it never blocks its host): pass a callback function as the last argument; nothing was sent", CALLER)
    end
    -- A synchronous call may yield inside (cosockets, a coroutine-based user
    -- transport), so another thread may close the client meanwhile: hold it.
    -- Not on PUC Lua 5.1, whose pcall cannot be yielded across.
    if not PCALL_YIELDS then return fn(client.sync_ctx) end
    hold(client)
    return finish_sync(client, pcall(fn, client.sync_ctx))
  end

  local ctx = M.context(transport, "async")
  local co = coroutine.create(fn)
  local step
  local function deliver(r)
    if not r[1] then r[2] = M.redact(client.conf.secret, "cometkey: internal error: " .. tostring(r[2])) end
    release(client)
    transport:defer(function()
      if not r[1] then
        callback(r[2], nil, { kind = "internal" })
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
  hold(client)
  step(ctx)
end

return M
