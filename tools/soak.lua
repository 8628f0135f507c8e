--- tools/soak.lua: memory soak of one client. Sends N status updates (default
-- 100 000) through one cometkey client (curl transport) to a minimal nginx that
-- answers `PUT /api/token/` with a fixed record (bench/nginx.conf, rendered in a
-- scratch directory under /tmp), and prints the process RSS (VmRSS) at start,
-- every 20 000 updates and at the end, with a verdict: flat when RSS grows by
-- less than 1 MiB after the warm-up (the first 20 000). Exit status 1 otherwise.
--
--   lua5.4 tools/soak.lua [N]          (CK_BUILD=build/5.4 by default; make soak)
local build = os.getenv("CK_BUILD") or "build/5.4"
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local cometkey = require "cometkey"
local sys = dofile("spec/support/sys.lua")
local bench_server = dofile("bench/server.lua")

local N = tonumber(arg[1] or "") or 100000
local EVERY = 20000
local LIMIT_KIB = 1024

local function rss_kib()
  local status = sys.read_file("/proc/self/status") or ""
  return tonumber(status:match("VmRSS:%s*(%d+)%s*kB")) or 0
end

-- ------------------------------------------------------------------ the soak

-- What the server answers to every update.
local RECORD = '{"success":true,"message":"","data":{"id":1,"user_id":1,"key":"soak0000000000000000000000000000'
  .. '0000000000000000","status":1,"name":"soak","created_time":1766102400,"accessed_time":1766102400,'
  .. '"expired_time":-1,"remain_quota":500000,"unlimited_quota":false,"model_limits_enabled":false,'
  .. '"model_limits":"","allow_ips":"","used_quota":0,"group":"","cross_group_retry":false,"DeletedAt":null}}'

-- The benchmark's nginx (bench/server.lua), in a scratch directory of its own.
local dir = sys.temp_dir("cometkey-soak")
local started, server = pcall(bench_server.start, "bench", RECORD, dir)
if not started then
  sys.remove_dir(dir)
  io.stderr:write("soak: ", tostring(server), "\n")
  os.exit(1)
end

local ok, err = pcall(function()
  collectgarbage("collect")
  local start_rss = rss_kib()
  print(string.format("soak: %d status updates through one client (curl) against %s", N, server.url))
  print(string.format("%8s %10s %10s %8s", "updates", "RSS KiB", "Lua KiB", "req/s"))
  print(string.format("%8d %10d %10.0f %8s", 0, start_rss, collectgarbage("count"), "-"))

  local client = cometkey.new { token = "soak-token-0123456789", base_url = server.url, transport = "curl",
    timeout = 10 }
  local marks, t0, last_t = {}, sys.now(), sys.now()
  for i = 1, N do
    local key, message = client:update { id = 1, status = i % 2 == 0 and 1 or 2 }
    if not key then error("update " .. i .. " failed: " .. tostring(message), 0) end
    if i % EVERY == 0 or i == N then
      collectgarbage("collect")
      local now = sys.now()
      local rss = rss_kib()
      marks[#marks + 1] = { i = i, rss = rss }
      print(string.format("%8d %10d %10.0f %8.0f", i, rss, collectgarbage("count"),
        (i - (marks[#marks - 1] and marks[#marks - 1].i or 0)) / (now - last_t)))
      last_t = now
    end
  end
  local elapsed = sys.now() - t0
  local stats = client.transport:stats()
  client:close()

  local warm = marks[1]
  local final = marks[#marks]
  local growth = final.rss - warm.rss
  print(string.format("soak: %d updates in %.1f s (%.0f/s), %d connection(s) opened", N, elapsed, N / elapsed,
    stats.connects))
  print(string.format("soak: RSS start %d KiB, after warm-up (%d) %d KiB, end %d KiB: growth %d KiB after warm-up",
    start_rss, warm.i, warm.rss, final.rss, growth))
  if #marks < 2 then
    print("soak: verdict: too few updates to judge (need more than " .. EVERY .. ")")
  elseif growth < LIMIT_KIB then
    print("soak: verdict: flat (growth < 1 MiB after warm-up)")
  else
    error(string.format("verdict: GROWING (%d KiB after warm-up)", growth), 0)
  end
end)
server:stop()
sys.remove_dir(dir)
if not ok then
  io.stderr:write("soak: ", tostring(err), "\n")
  os.exit(1)
end
