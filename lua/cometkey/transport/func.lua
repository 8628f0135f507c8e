--- cometkey.transport.func: adapts a user-supplied transport function to the
-- internal transport shape. Contract (README "Transports"):
--   transport(req[, callback]) with req = { method, url, headers, body, timeout }
--   returns res | nil, err  (res = { status, headers, body }), or, when given a
--   callback, calls callback(err, res) once, later.
-- Header names in res.headers are matched case-insensitively.
local type, pairs, tostring, pcall = type, pairs, tostring, pcall
local lower = string.lower

local M = {}

local function normalize(fn_res, err)
  if type(fn_res) ~= "table" or type(fn_res.status) ~= "number" then
    return nil, "cometkey: transport failed: " .. tostring(err or "no response"),
      { kind = "network", retryable = true }
  end
  local headers = {}
  if type(fn_res.headers) == "table" then
    for k, v in pairs(fn_res.headers) do headers[lower(tostring(k))] = tostring(v) end
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
    return normalize(res, err)
  end
  -- A function that ignores the callback and returns its result is accepted too.
  function t.request_async(_, req, cb)
    local done = false
    local res, err = fn(req, function(err, res)
      if done then return end
      done = true
      cb(normalize(res, err))
    end)
    if not done and (res ~= nil or err ~= nil) then
      done = true
      cb(normalize(res, err))
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
