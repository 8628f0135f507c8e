--- cometkey.transport.func: adapts a user-supplied transport function to the
-- internal transport shape. Contract (README "Transports"):
--   transport(req[, callback]) with req = { method, url, headers, body, timeout }
--   returns res | nil, err  (res = { status, headers, body }), or, when given a
--   callback, calls callback(err, res) once, later.
-- Header names in res.headers are matched case-insensitively.
local type, pairs, tostring, pcall = type, pairs, tostring, pcall
local lower, format = string.lower, string.format

local M = {}

M.MAX_HEADER_BYTES = 256 * 1024 -- the caps of the other transports
M.MAX_HEADER_FIELDS = 500

local function normalize(fn_res, err, req)
  if type(fn_res) ~= "table" or type(fn_res.status) ~= "number" then
    return nil, "cometkey: transport failed: " .. tostring(err or "no response"),
      { kind = "network", retryable = true }
  end
  local headers = {}
  if type(fn_res.headers) == "table" then
    local fields, bytes = 0, 0
    for k, v in pairs(fn_res.headers) do
      k, v = lower(tostring(k)), tostring(v)
      fields, bytes = fields + 1, bytes + #k + #v + 4
      if fields > M.MAX_HEADER_FIELDS or bytes > M.MAX_HEADER_BYTES then
        local path = req and type(req.url) == "string" and req.url:match("^%a[%w+.-]*://[^/?#]*([^?#]*)") or ""
        return require("cometkey.errors").failure(tostring(req and req.method) .. " " .. (path ~= "" and path or "/"),
          { kind = "too_large", retryable = false, sent = true,
            text = format("headers exceed %d bytes or %d fields", M.MAX_HEADER_BYTES, M.MAX_HEADER_FIELDS) })
      end
      headers[k] = v
    end
  end
  local body = fn_res.body
  if type(body) ~= "string" then body = "" end
  return { status = fn_res.status, headers = headers, body = body }
end

function M.new(conf)
  local fn = conf.transport
  local t = { name = "function", needs_token = true }
  local clock = os.clock
  local ok, socket = pcall(require, "socket")
  if ok and socket.gettime then clock = socket.gettime end

  function t.request(_, req)
    local res, err = fn(req)
    return normalize(res, err, req)
  end
  -- A function that ignores the callback and returns its result is accepted too.
  function t.request_async(_, req, cb)
    local done = false
    local res, err = fn(req, function(err, res)
      if done then return end
      done = true
      cb(normalize(res, err, req))
    end)
    if not done and (res ~= nil or err ~= nil) then
      done = true
      cb(normalize(res, err, req))
    end
  end
  function t.sleep(_, s)
    if ok and socket.sleep then return socket.sleep(s) end
    local deadline = clock() + s
    repeat until clock() >= deadline
  end
  function t.now() return clock() end
  return t
end

return M
