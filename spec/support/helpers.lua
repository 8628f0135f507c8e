-- Shared helpers of the client's end-to-end specs (client_spec, update_spec, bulk_spec):
-- one mock server per spec file, a client factory that closes its clients after each test,
-- readers of the mock's request log, a diff of two stored rows, seeding and timing.
--
--   local env = helpers.use_mock_env()   -- at the top of the spec file: registers the hooks
--   it("...", function() local c = env.client{ retries = 0 }; ... env.m:key(1) ... end)
local mock = require "spec.support.mock"
local sys = require "spec.support.sys"
local cometkey = require "cometkey"
local cjson = require "cjson.safe"
local busted = require "busted"

local H = {}

H.mock = mock

--- mock_env([start_opts]) --> env: env.start/stop/reset/cleanup are the busted hooks;
-- env.m is the running mock, env.client(extra) a client of it (closed after each test) that
-- sends New-Api-User (extra.user_id = false: none).
function H.mock_env(start_opts)
  local env = { clients = {} }
  function env.start() env.m = mock.start(start_opts or {}) end
  function env.stop() if env.m then env.m:stop() end end
  function env.reset() env.m:reset() end
  function env.cleanup()
    for c in pairs(env.clients) do c:close() end
    env.clients = {}
  end
  function env.client(extra)
    -- user_id: the mock requires New-Api-User by default, as upstream servers do
    local opts = { token = env.m.token, base_url = env.m.url, user_id = env.m.user_id, timeout = 5,
      connect_timeout = 2 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    if opts.user_id == false then opts.user_id = nil end -- user_id = false: send no New-Api-User
    local c = cometkey.new(opts)
    env.clients[c] = true
    return c
  end
  return env
end

--- use_mock_env([start_opts]) --> mock_env(start_opts) with its hooks registered in the
-- enclosing block: the mock starts before its first test and stops after its last; each test
-- starts from the mock's reset state, and the clients it made are closed after it
function H.use_mock_env(start_opts)
  local env = H.mock_env(start_opts)
  busted.lazy_setup(env.start)
  busted.lazy_teardown(env.stop)
  busted.before_each(env.reset)
  busted.after_each(env.cleanup)
  return env
end

--- route(entry) --> "METHOD /path" or "METHOD /path?query" for one request-log entry
function H.route(entry)
  local q = entry.query
  return entry.method .. " " .. entry.uri .. ((q and q ~= "") and ("?" .. q) or "")
end

--- routes(m) --> array of route strings of every API request the mock logged, in order
function H.routes(m)
  local out = {}
  for i, e in ipairs(m:requests()) do out[i] = H.route(e) end
  return out
end

--- body(entry) --> the decoded JSON body of a logged request (nil when it had none)
function H.body(entry)
  if type(entry.body) ~= "string" then return nil end
  return cjson.decode(entry.body)
end

-- Values of a stored row are equal: tables (auto_groups) compare element by element.
local function same_value(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

--- row_diff(before, after [, ignore]) --> { field = { from, to }, ... } for every field that
-- differs between two stored rows (fields named in the set `ignore` are skipped)
function H.row_diff(before, after, ignore)
  local d, seen = {}, {}
  ignore = ignore or {}
  for k, v in pairs(before) do
    seen[k] = true
    if not ignore[k] and not same_value(v, after[k]) then d[k] = { from = v, to = after[k] } end
  end
  for k, v in pairs(after) do
    if not seen[k] and not ignore[k] then d[k] = { from = nil, to = v } end
  end
  return d
end

--- set(...) --> { [name] = true, ... }
function H.set(...)
  local s = {}
  for i = 1, select("#", ...) do s[select(i, ...)] = true end
  return s
end

--- keys_of(t) --> sorted array of the keys of t
function H.keys_of(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--- seed(n [, make]) --> n stored rows with ids 1..n (make(i, row) may change each one)
function H.seed(n, make)
  local rows = {}
  for i = 1, n do
    local row = { id = i, name = ("key-%03d"):format(i), remain_quota = 1000 + i }
    if make then make(i, row) end
    rows[i] = row
  end
  return rows
end

--- now() --> wall-clock seconds with sub-second precision
H.now = sys.now

--- timed(fn, ...) --> elapsed seconds, fn's results (packed)
local function pack(...) return { n = select("#", ...), ... } end

function H.timed(fn, ...)
  local t0 = sys.now()
  local r = pack(fn(...))
  return sys.now() - t0, r
end

--- raises(fn) --> the error message fn raised (fails the test when it returns)
function H.raises(fn)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error, but the call returned")
  return tostring(err)
end

--- closed_port() --> a loopback port nothing listens on (bound then released)
H.closed_port = sys.free_port

--- one_line(s) --> true when s is a non-empty string without line breaks
function H.one_line(s)
  return type(s) == "string" and s ~= "" and not s:find("[\r\n]")
end

return H
