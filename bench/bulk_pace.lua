--- bench/bulk_pace.lua: bulk work at the server's pace, and flat memory (issue 13).
--   lua5.4 bench/bulk_pace.lua pace R W N [V01_LUA_DIR]
--       starts the mock with a limiter of R requests per W seconds and N keys, then runs
--       600-style scenarios one after the other (limiter emptied between them): cometkey
--       status changes (update_many), field updates (update_where, update_many), a naive
--       loop (GET + PUT per key, retry on 429 after 1 s), and cometkey 0.1's update_many
--       (from V01_LUA_DIR, a copy of 0.1's lua/ tree). One key=value line per scenario:
--       name, items, seconds, accepted (requests the server processed), refused (429s),
--       failed (items), bound (accepted / R * W), ratio (seconds / bound), per_item.
--   lua5.4 bench/bulk_pace.lua rss URL N C
--       update_many over N status updates streamed from an iterator (keep_results = false,
--       on_result), concurrency C, against URL: requests, seconds, failed, hwm_kb, start_kb.
--   lua5.4 bench/bulk_pace.lua one MODE URL N   (used by `pace` for the 0.1 run)
local bench_dir = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "paths.lua")
local util = dofile(bench_dir .. "/util.lua")

local mode = arg[1]

local function client_of(url, extra)
  local opts = { token = "mock-token-0123456789abcdef", base_url = url, transport = "curl", timeout = 30 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return require("cometkey").new(opts)
end

local function count_failed(results)
  local failed = 0
  for i = 1, #results do if not results[i].ok then failed = failed + 1 end end
  return failed
end

if mode == "rss" then
  local url, n, c = arg[2], tonumber(arg[3]), tonumber(arg[4]) or 16
  local client = client_of(url, { token = "bench-token-0123456789", retries = 0 })
  assert(client:update { id = 1, status = 2 })
  collectgarbage()
  local start_kb = util.status_kb("VmRSS")
  local i, failed = 0, 0
  local item = { id = 1, status = 2 }
  local t0 = util.gettime()
  local counts = client:update_many(function()
    i = i + 1
    if i <= n then return item end
  end, { concurrency = c, keep_results = false, on_result = function(_, r)
    if not r.ok then
      failed = failed + 1
      if failed == 1 then io.stderr:write(tostring(r.error), "\n") end
    end
  end })
  util.emit { requests = n, seconds = util.gettime() - t0, failed = counts.failed, hwm_kb = util.status_kb("VmHWM"),
    start_kb = start_kb }
  return
end

if mode == "one" then -- one scenario in this process (lets the 0.1 tree run in its own interpreter)
  local dir = os.getenv("CK_LUA_DIR")
  if dir and dir ~= "" then package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path end
  local what, url, n = arg[2], arg[3], tonumber(arg[4])
  local client = client_of(url)
  local list = {}
  for id = 1, n do list[id] = what == "status" and { id = id, status = 2 } or { id = id, name = "b-" .. id } end
  local t0 = util.gettime()
  local results = client:update_many(list, { concurrency = 8 })
  util.emit { seconds = util.gettime() - t0, failed = count_failed(results) }
  return
end

assert(mode == "pace", "usage: bulk_pace.lua pace R W N [V01_LUA_DIR] | rss URL N C")
local R, W, N, v01 = tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5]
local root = bench_dir:gsub("/bench$", "")
local mock = dofile(root .. "/spec/support/mock.lua")
local rows = {}
for id = 1, N do rows[id] = { id = id, name = ("k-%04d"):format(id), remain_quota = 1000 + id } end
local m = mock.start { keys = rows, rate_limit = { requests = R, window = W } }

local function tally()
  local accepted, refused = 0, 0
  for _, e in ipairs(m:requests()) do
    if e.status == 429 then refused = refused + 1 else accepted = accepted + 1 end
  end
  return accepted, refused
end

local function scenario(name, fn)
  m:reset() -- seeded keys, an empty limiter, an empty log
  local t0 = util.gettime()
  local failed = fn()
  local seconds = util.gettime() - t0
  local accepted, refused = tally()
  local bound = accepted / R * W
  util.emit { name = name, items = N, seconds = seconds, accepted = accepted, refused = refused, failed = failed,
    bound = bound, ratio = seconds / bound, per_item = accepted / N }
end

local ok, err = pcall(function()
  scenario("status_update_many", function()
    return count_failed(client_of(m.url):update_many((function()
      local l = {}
      for id = 1, N do l[id] = { id = id, status = 2 } end
      return l
    end)(), { concurrency = 8 }))
  end)
  scenario("field_update_where", function()
    local results = assert(client_of(m.url):update_where(function() return true end, { group = "bulk" },
      { concurrency = 8 }))
    return N - #results + count_failed(results)
  end)
  scenario("field_update_many", function()
    local l = {}
    for id = 1, N do l[id] = { id = id, name = "b-" .. id } end
    return count_failed(client_of(m.url):update_many(l, { concurrency = 8 }))
  end)
  scenario("status_declared", function()
    local l = {}
    for id = 1, N do l[id] = { id = id, status = 2 } end
    return count_failed(client_of(m.url, { rate_limit = { requests = R, seconds = W } }):update_many(l,
      { concurrency = 8 }))
  end)
  local function naive(make)
    local c = client_of(m.url, { retries = 0 })
    local failed = 0
    for id = 1, N do
      local tries = 0
      while true do
        local key, _, info = c:update(make(id))
        if key then break end
        tries = tries + 1
        if info.kind ~= "rate_limited" or tries > 600 then failed = failed + 1; break end
        util.sleep(1)
      end
    end
    return failed
  end
  scenario("naive_field_get_put", function() return naive(function(id) return { id = id, name = "n-" .. id } end) end)
  scenario("naive_status", function() return naive(function(id) return { id = id, status = 2 } end) end)
  if v01 then
    for _, what in ipairs { "status", "field" } do
      scenario("v01_" .. what .. "_update_many", function()
        local cmd = "CK_LUA_DIR=" .. util.quote(v01) .. " lua5.4 "
          .. util.quote(bench_dir .. "/bulk_pace.lua") .. " one " .. what .. " " .. util.quote(m.url) .. " " .. N
        local out = util.capture(cmd .. " 2>&1")
        local kv = util.kv(out:match("[^\n]*seconds=[^\n]*") or "")
        return kv.failed or N
      end)
    end
  end
end)
m:stop()
if not ok then error(err, 0) end
