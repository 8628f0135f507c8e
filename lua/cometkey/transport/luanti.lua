--- cometkey.transport.luanti: HTTP(S) for Luanti (Minetest) server mods without
-- blocking the server. Requests go through cometkey's own libcurl multi handle
-- (cometkey.curl, composed from transport/curl.lua), driven from one server
-- globalstep with a zero wait: each step performs whatever the sockets allow and
-- hands finished transfers to their callbacks. The engine's HTTP API is not used:
-- it sends requests with the previous request's method on reused handles
-- (luanti-org/luanti #14394), returns no response headers and rounds timeouts to
-- whole seconds.
--
-- Callback-only (async_only = true): request(req) and sleep(s) raise, so a client
-- method called without a callback fails at its call site before anything is sent
-- (cometkey.call checks async_only). Retry backoff and pacing waits are timers
-- checked by the globalstep (sleep_async), results reach callers through
-- minetest.after(0, ...) (defer): nothing ever waits on the main thread.
-- Connections are reused (one libcurl multi handle per client, keep-alive).
-- Every transport is closed when the server shuts down (register_on_shutdown):
-- requests still running or waiting then complete at once with a "client was
-- closed" failure, so each call still gets exactly one answer.
local curl = require "cometkey.transport.curl"
local ccurl = require "cometkey.curl"
local errors = require "cometkey.errors"

local error, type, pairs, next, pcall, setmetatable, tostring, rawget =
  error, type, pairs, next, pcall, setmetatable, tostring, rawget
local max, match = math.max, string.match

local M = {}

M.MAX_INFLIGHT = 8 -- transfers one client keeps in flight; later requests queue

--- host() --> the engine's API table (minetest / core) when running inside a
-- Luanti server's main environment, else nil.
function M.host()
  local env = _G
  for _, name in pairs({ "minetest", "core" }) do
    local h = rawget(env, name)
    if type(h) == "table" and type(h.register_globalstep) == "function" and type(h.after) == "function"
      and type(h.register_on_shutdown) == "function" then
      return h
    end
  end
  return nil
end

local Transport = {}
Transport.__index = Transport
Transport.name = "luanti"
Transport.needs_token = false -- the C handle sends the token itself
Transport.async_only = true   -- every client call needs a callback (checked by cometkey.call)

local busy = {}                            -- transports with work in flight (strong: kept alive)
local every = setmetatable({}, { __mode = "k" }) -- every open transport, closed on shutdown
local hooked = nil                         -- the host whose globalstep and shutdown hook are set

local function where_of(req)
  local path = match(tostring(req.url or ""), "^%a[%w+.-]*://[^/?#]*([^?#]*)") or ""
  return tostring(req.method) .. " " .. (path ~= "" and path or "/")
end

-- A failure in cometkey's one-line format ("cometkey: METHOD /path: network error: text").
local function failure(where, text, sent)
  return errors.failure(where, { kind = "network", text = text, retryable = false, sent = sent })
end

local function closed_failure(req)
  return failure(where_of(req), "the client was closed", false)
end

-- Is there anything left for the globalstep to do?
local function idle(self)
  return self.inflight == 0 and self.head > self.tail and next(self.sleepers) == nil
end

-- Starts queued requests while fewer than MAX_INFLIGHT are running.
local function dispatch(self)
  while self.inflight < M.MAX_INFLIGHT and self.head <= self.tail do
    local h = self.head
    local req, cb = self.queue_req[h], self.queue_cb[h]
    self.queue_req[h], self.queue_cb[h] = nil, nil
    self.head = h + 1
    self.seq = self.seq + 1
    local tag = self.seq
    local ok, err = pcall(self.curl.multi_add, self.curl, tag, req)
    if ok then
      self.inflight = self.inflight + 1
      self.waiting[tag] = cb
      self.where[tag] = where_of(req)
    else
      -- A request libcurl refuses (never one core.request builds): fail it, never raise here.
      cb(failure(where_of(req), tostring(err), false))
    end
  end
end

--- poll(): one non-blocking round: finished transfers to their callbacks, due
-- sleepers woken, queued requests started. Called by the globalstep.
function Transport:poll()
  if self.inflight > 0 then
    local ok, done = pcall(self.curl.multi_wait, self.curl, 0)
    if not ok then
      -- The handle failed as a whole (out of memory, libcurl error): every transfer fails.
      local message = tostring(done)
      local waiting, where = self.waiting, self.where
      self.waiting, self.where, self.inflight = {}, {}, 0
      for tag, cb in pairs(waiting) do
        cb(failure(where[tag], message, nil))
      end
    else
      for i = 1, #done do
        local c = done[i]
        local cb = self.waiting[c.tag]
        if cb then
          self.waiting[c.tag], self.where[c.tag] = nil, nil
          self.inflight = self.inflight - 1
          cb(c.res, c.err, c.info)
        end
      end
    end
  end
  if next(self.sleepers) ~= nil then
    local t = self:now()
    local due = {}
    for cb, wake in pairs(self.sleepers) do
      if wake <= t then due[#due + 1] = cb end
    end
    for i = 1, #due do
      self.sleepers[due[i]] = nil
      due[i]()
    end
  end
  dispatch(self)
  if idle(self) then busy[self] = nil end
end

local function globalstep()
  if next(busy) == nil then return end
  local list = {}
  for t in pairs(busy) do list[#list + 1] = t end
  for i = 1, #list do
    if not list[i].closed then list[i]:poll() end
  end
end

local function shutdown()
  local list = {}
  for t in pairs(every) do list[#list + 1] = t end
  for i = 1, #list do list[i]:close(true) end
end

local function hook(host)
  if hooked == host then return end
  hooked = host
  host.register_globalstep(globalstep)
  host.register_on_shutdown(shutdown)
end

--- new(conf) --> transport; raises outside a Luanti server or on a bad option
-- conf: the client's parsed options (timeout, connect_timeout, verify, ca_file,
-- max_body, secret), as for transport/curl.lua.
function M.new(conf)
  local host = M.host()
  if not host then
    -- Levels as for error(): 1 here, 2 transport.auto.open, 3 Client.new, 4 cometkey.new, 5 its caller.
    errors.raise("new", "transport \"luanti\" runs only inside a Luanti (Minetest) server mod "
      .. "(minetest.register_globalstep, minetest.after and minetest.register_on_shutdown are needed)", 5)
  end
  local self = setmetatable({
    curl = curl.new(conf),
    host = host,
    secret = conf.secret,
    closed = false,
    seq = 0,
    inflight = 0,
    waiting = {},     -- tag -> callback of a running transfer
    where = {},       -- tag -> "METHOD /path" of a running transfer (for messages)
    queue_req = {}, queue_cb = {}, head = 1, tail = 0, -- requests waiting for a slot
    sleepers = {},    -- callback -> wake time
  }, Transport)
  hook(host)
  every[self] = true
  return self
end

function Transport:__tostring()
  return "cometkey.transport.luanti (" .. (self.closed and "closed" or "open") .. ")"
end

local function callback_only(what)
  error("cometkey: the \"luanti\" transport is callback-only (it never blocks the server): "
    .. what .. "; pass a callback function as the last argument", 3)
end

--- request(req): raises; Luanti mods call the client's methods with a callback
function Transport.request()
  callback_only("a call without a callback cannot be answered")
end

--- sleep(seconds): raises; waits go through sleep_async
function Transport.sleep()
  callback_only("the server's main thread never sleeps")
end

--- request_async(req, cb): queues the request; cb(res | nil, message, info)
-- runs later, from the server's globalstep.
function Transport:request_async(req, cb)
  if self.closed then
    local a, b, c = closed_failure(req)
    return self:defer(function() cb(a, b, c) end)
  end
  self.tail = self.tail + 1
  self.queue_req[self.tail], self.queue_cb[self.tail] = req, cb
  busy[self] = true
  dispatch(self)
end

--- sleep_async(seconds, cb): cb() from the first globalstep at or after the time
function Transport:sleep_async(seconds, cb)
  if self.closed then return self:defer(cb) end
  self.sleepers[cb] = self:now() + max(seconds, 0)
  busy[self] = true
end

--- defer(fn): fn() on a later server step (minetest.after(0, fn)); at once once
-- closed by the shutdown (no later step comes).
function Transport:defer(fn)
  if self.final then return fn() end
  self.host.after(0, fn)
end

--- now() --> monotonic seconds (float)
function Transport.now()
  return ccurl.now()
end

--- stats() --> { requests = n, connects = n } (connections opened: reuse shows here)
function Transport:stats()
  return self.curl:stats()
end

--- pending() --> requests queued, running or waiting for a retry
function Transport:pending()
  local n = self.inflight + (self.tail - self.head + 1)
  for _ in pairs(self.sleepers) do n = n + 1 end
  return n
end

--- close([final]): idempotent. Frees the libcurl handles (connections closed,
-- the C copy of the token wiped); running and queued requests fail with "the
-- client was closed" and waiting retries wake at once, so every call is answered.
-- final = true (server shutdown): the answers are delivered now, and the
-- client's token is wiped too.
function Transport:close(final)
  if final then self.final = true end
  if self.closed then return end
  self.closed = true
  every[self] = nil
  busy[self] = nil
  self.curl:close()
  if final and self.secret then self.secret:wipe() end
  local waiting, where, sleepers = self.waiting, self.where, self.sleepers
  local queue_req, queue_cb = self.queue_req, self.queue_cb
  self.waiting, self.where, self.sleepers, self.inflight = {}, {}, {}, 0
  for tag, cb in pairs(waiting) do
    cb(failure(where[tag], "the client was closed", true))
  end
  for h = self.head, self.tail do
    local a, b, c = closed_failure(queue_req[h])
    queue_cb[h](a, b, c)
  end
  self.head, self.tail = 1, 0
  for cb in pairs(sleepers) do cb() end
end

return M
