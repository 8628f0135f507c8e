--- cometkey.transport.curl: the blocking libcurl transport. A thin object over
-- a cometkey.curl handle: request(req) --> res | nil, message, info, plus the
-- clock, the sleep used for retry backoff, and the multi interface that
-- update_many drives from Lua. The token stays in C: the handle adds the
-- Authorization header itself (needs_token = false).
local ccurl = require "cometkey.curl"
local errors = require "cometkey.errors"

local error, type, pcall, setmetatable, tostring = error, type, pcall, setmetatable, tostring

local M = {}

local Transport = {}
Transport.__index = Transport

-- Re-raises an error from the C handle at the caller of the method that called
-- raise. The handle is made with plain_errors: a programmer error arrives as
-- { rule = "..." } and is raised as "cometkey.transport.curl.<method>: <rule>".
local function raise(method, err)
  if type(err) == "table" and err.rule then
    errors.raise("transport.curl." .. method, err.rule, 3) -- not a tail call: levels count this frame
  end
  error(err, 3)
end

--- new(opts) --> transport; raises on a bad option value
-- opts: { timeout, connect_timeout (seconds), verify, ca_file, max_body (bytes),
--         secret (a cometkey.secret userdata) }. Only these fields are read, so the
-- client's whole configuration can be passed (cometkey.options checks option names).
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("cometkey.transport.curl.new: opts must be a table, got " .. type(opts), 2)
  end
  local ok, handle = pcall(ccurl.new, {
    timeout = opts.timeout,
    connect_timeout = opts.connect_timeout,
    verify = opts.verify,
    ca_file = opts.ca_file,
    max_body = opts.max_body,
    token = opts.secret,
    plain_errors = true,
  })
  if not ok then raise("new", handle) end
  return setmetatable({ handle = handle }, Transport)
end

Transport.name = "curl"
Transport.needs_token = false -- the C handle sends the token itself

function Transport:__tostring()
  return "cometkey.transport.curl (" .. tostring(self.handle):match("%((%a+)%)$") .. ")"
end

--- request(req) --> res | nil, message, info
-- req: { method, url, headers, body, timeout }; res: { status, headers, body }
function Transport:request(req)
  local ok, res, message, info = pcall(self.handle.perform, self.handle, req)
  if not ok then raise("request", res) end
  return res, message, info
end

--- request_async(req, done): blocking mode completes at once: done(res | nil, message, info)
function Transport:request_async(req, done)
  return done(self:request(req))
end

--- sleep(seconds): blocks the thread (retry backoff)
function Transport.sleep(_, seconds)
  local ok, err = pcall(ccurl.sleep, seconds, true)
  if not ok then raise("sleep", err) end
end

--- sleep_async(seconds, done): sleeps, then done()
function Transport:sleep_async(seconds, done)
  self:sleep(seconds)
  return done()
end

--- defer(fn): blocking mode has no loop, so fn runs now
function Transport.defer(_, fn)
  return fn()
end

--- now() --> monotonic seconds (float)
function Transport.now()
  return ccurl.now()
end

--- stats() --> { requests = n, connects = n }
function Transport:stats()
  return self.handle:stats()
end

--- multi_add(tag, req): queues a request for multi_wait
function Transport:multi_add(tag, req)
  local ok, err = pcall(self.handle.multi_add, self.handle, tag, req)
  if not ok then raise("multi_add", err) end
  return true
end

--- multi_wait(timeout) --> { { tag, res } | { tag, err, info }, ... } (empty on timeout)
function Transport:multi_wait(timeout)
  local ok, done = pcall(self.handle.multi_wait, self.handle, timeout)
  if not ok then raise("multi_wait", done) end
  return done
end

--- multi_pending() --> number of requests added and not yet returned
function Transport:multi_pending()
  return self.handle:multi_pending()
end

--- multi_cancel() --> number of requests dropped (running ones are aborted); never raises
function Transport:multi_cancel()
  return self.handle:multi_cancel()
end

--- close(): idempotent; wipes the token and frees the handles
function Transport:close()
  return self.handle:close()
end

M.version = ccurl.version

return M
