--- bench/client_cometkey.lua: the cometkey side of the HTTP measurements, one
-- process per run, against the bench nginx (curl transport).
--   lua5.4 bench/client_cometkey.lua URL seq N       N x client:update{id = 1, status = 2}
--   lua5.4 bench/client_cometkey.lua URL bulk N C    client:update_many(N status updates, {concurrency = C})
--   lua5.4 bench/client_cometkey.lua URL soak N K    N updates, printing VmRSS every K
-- Prints one `key=value` line: requests, seconds (wall, timed loop only),
-- cpu (user+sys seconds of the timed loop), hwm_kb (VmHWM), failed.
local bench_dir = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "paths.lua")
local util = dofile(bench_dir .. "/util.lua")
local cometkey = require "cometkey"

local url, mode = arg[1], arg[2]
local n = tonumber(arg[3])
assert(url and mode and n, "usage: client_cometkey.lua URL seq|bulk|soak N [C|K]")

local client = cometkey.new { token = "bench-token-0123456789", base_url = url, transport = "curl", retries = 0 }
local update = { id = 1, status = 2 }
local failed = 0

-- One warm-up request opens the connection and loads everything lazily loaded.
assert(client:update(update))

if mode == "seq" then
  local t0, c0 = util.gettime(), util.cpu()
  for _ = 1, n do
    local key, message = client:update(update)
    if not key then
      failed = failed + 1
      if failed == 1 then io.stderr:write(message, "\n") end
    end
  end
  local t1, c1 = util.gettime(), util.cpu()
  util.emit { requests = n, seconds = t1 - t0, cpu = c1 - c0, hwm_kb = util.status_kb("VmHWM"), failed = failed }
elseif mode == "bulk" then
  local concurrency = tonumber(arg[4]) or 16
  local list = {}
  for i = 1, n do list[i] = { id = i, status = 2 } end
  local t0, c0 = util.gettime(), util.cpu()
  local results = client:update_many(list, { concurrency = concurrency })
  local t1, c1 = util.gettime(), util.cpu()
  for i = 1, n do
    if not results[i].ok then
      failed = failed + 1
      if failed == 1 then io.stderr:write(results[i].error, "\n") end
    end
  end
  util.emit { requests = n, seconds = t1 - t0, cpu = c1 - c0, hwm_kb = util.status_kb("VmHWM"), failed = failed }
elseif mode == "soak" then
  local every = tonumber(arg[4]) or 20000
  collectgarbage()
  util.emit { done = 0, rss_kb = util.status_kb("VmRSS"), lua_kb = math.floor(collectgarbage("count")) }
  local t0 = util.gettime()
  for i = 1, n do
    if not client:update(update) then failed = failed + 1 end
    if i % every == 0 or i == n then
      util.emit { done = i, rss_kb = util.status_kb("VmRSS"), lua_kb = math.floor(collectgarbage("count")),
        failed = failed }
    end
  end
  util.emit { requests = n, seconds = util.gettime() - t0, hwm_kb = util.status_kb("VmHWM"), failed = failed }
else
  error("unknown mode " .. tostring(mode))
end
client:close()
