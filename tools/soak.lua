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
local socket = require "socket"

local N = tonumber(arg[1] or "") or 100000
local EVERY = 20000
local LIMIT_KIB = 1024

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function rss_kib()
  local status = read_file("/proc/self/status") or ""
  return tonumber(status:match("VmRSS:%s*(%d+)%s*kB")) or 0
end

-- ------------------------------------------------------------------ the server

local RECORD = '{"success":true,"message":"","data":{"id":1,"user_id":1,"key":"soak0000000000000000000000000000'
  .. '0000000000000000","status":1,"name":"soak","created_time":1766102400,"accessed_time":1766102400,'
  .. '"expired_time":-1,"remain_quota":500000,"unlimited_quota":false,"model_limits_enabled":false,'
  .. '"model_limits":"","allow_ips":"","used_quota":0,"group":"","cross_group_retry":false,"DeletedAt":null}}'

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function start_server()
  local template = assert(read_file("bench/nginx.conf"), "tools/soak.lua: run from the repository root")
  local dir = capture("mktemp -d /tmp/cometkey-soak.XXXXXXXX")
  assert(dir:match("^/tmp/cometkey%-soak%."), "tools/soak.lua: mktemp failed")
  local port = free_port()
  write_file(dir .. "/nginx.conf", (template:gsub("{{(%u+)}}", {
    USER = capture("id -u") == "0" and "user root root;" or "",
    PREFIX = dir, PORT = tostring(port), RECORD = RECORD,
  })))
  local ok = os.execute("/usr/sbin/nginx -p " .. quote(dir) .. " -c " .. quote(dir .. "/nginx.conf") .. " -e "
    .. quote(dir .. "/error.log") .. " >/dev/null 2>&1")
  assert(ok == true or ok == 0, "tools/soak.lua: nginx failed to start: " .. (read_file(dir .. "/error.log") or ""))
  local deadline = socket.gettime() + 5
  repeat
    local c = socket.tcp()
    c:settimeout(0.2)
    local up = c:connect("127.0.0.1", port)
    c:close()
    if up then break end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  local server = { dir = dir, url = "http://127.0.0.1:" .. port }
  function server.stop()
    local pid = tonumber((read_file(dir .. "/nginx.pid") or ""):match("%d+"))
    if pid then
      os.execute("kill -TERM " .. pid .. " 2>/dev/null")
      local until_t = socket.gettime() + 5
      while read_file("/proc/" .. pid .. "/stat") and socket.gettime() < until_t do socket.sleep(0.02) end
    end
    os.execute("rm -rf " .. quote(dir))
  end
  return server
end

-- ------------------------------------------------------------------ the soak

local server = start_server()
local ok, err = pcall(function()
  collectgarbage("collect")
  local start_rss = rss_kib()
  print(string.format("soak: %d status updates through one client (curl) against %s", N, server.url))
  print(string.format("%8s %10s %10s %8s", "updates", "RSS KiB", "Lua KiB", "req/s"))
  print(string.format("%8d %10d %10.0f %8s", 0, start_rss, collectgarbage("count"), "-"))

  local client = cometkey.new { token = "soak-token-0123456789", base_url = server.url, transport = "curl",
    timeout = 10 }
  local marks, t0, last_t = {}, socket.gettime(), socket.gettime()
  for i = 1, N do
    local key, message = client:update { id = 1, status = i % 2 == 0 and 1 or 2 }
    if not key then error("update " .. i .. " failed: " .. tostring(message), 0) end
    if i % EVERY == 0 or i == N then
      collectgarbage("collect")
      local now = socket.gettime()
      local rss = rss_kib()
      marks[#marks + 1] = { i = i, rss = rss }
      print(string.format("%8d %10d %10.0f %8.0f", i, rss, collectgarbage("count"),
        (i - (marks[#marks - 1] and marks[#marks - 1].i or 0)) / (now - last_t)))
      last_t = now
    end
  end
  local elapsed = socket.gettime() - t0
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
server.stop()
if not ok then
  io.stderr:write("soak: ", tostring(err), "\n")
  os.exit(1)
end
