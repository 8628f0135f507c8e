--- spec/support/raw_server.lua: a tiny loopback HTTP/1.x server for hostile-response
-- specs (header floods, an HTTP proxy that records who connected). Runs as its own
-- process, so blocking transports can talk to it:
--
--   lua spec/support/raw_server.lua PORT RESPONSE_FILE LOG_FILE [LIFETIME_SECONDS [HOST [DELAY]]]
--
-- For every connection: reads the request head (and a Content-Length body), appends
-- one line "<request line>\t<host header>\t<1 if an Authorization header came>" to
-- LOG_FILE, writes RESPONSE_FILE's bytes verbatim and closes. Exits after
-- LIFETIME_SECONDS (default 60). Plain Lua 5.1/5.4/LuaJIT with luasocket.
-- Use start(response_bytes) from Lua specs: it picks a free port and waits for it.
local socket = require "socket"

local M = {}

local function serve(port, response_file, log_file, lifetime, host, delay)
  local f = assert(io.open(response_file, "rb"))
  local response = f:read("*a")
  f:close()
  local server = assert(socket.bind(host or "127.0.0.1", port))
  server:settimeout(0.2)
  local stop = socket.gettime() + lifetime
  while socket.gettime() < stop do
    local c = server:accept()
    if c then
      c:settimeout(5)
      local first, host_header, auth, length = c:receive("*l"), "", 0, 0
      while first do
        local line = c:receive("*l")
        if not line or line == "" then break end
        local name, value = line:match("^([^:]+):%s*(.-)%s*$")
        name = name and name:lower()
        if name == "host" then host_header = value end
        if name == "authorization" then auth = 1 end
        if name == "content-length" then length = tonumber(value) or 0 end
      end
      if length > 0 then c:receive(length) end
      local log = first and io.open(log_file, "ab")
      if log then
        log:write(tostring(first), "\t", host_header, "\t", auth, "\n")
        log:close()
      end
      if first and delay and delay > 0 then socket.sleep(delay) end -- (DELAY: seconds before answering)
      if first then c:send(response) end
      c:close()
    end
  end
  server:close()
end

--- start(response [, lifetime [, host [, delay]]]) --> server { port, url, log() --> lines, stop() }
-- host: a loopback address to listen on (default 127.0.0.1); delay: seconds before each answer
function M.start(response, lifetime, host, delay)
  host = host or "127.0.0.1"
  assert(host:match("^127%.%d+%.%d+%.%d+$"), "raw server: loopback addresses only")
  local sys = require "spec.support.sys"
  local dir = sys.temp_dir("cometkey-raw")
  sys.write_file(dir .. "/response", response)
  sys.write_file(dir .. "/log", "")
  local port = sys.free_port()
  local lua = arg and arg[-1] or "lua"
  local src = debug.getinfo(1, "S").source:match("^@(.*)$")
  local pid = sys.capture(sys.quote(lua) .. " " .. sys.quote(src) .. " " .. port .. " " .. sys.quote(dir .. "/response")
    .. " " .. sys.quote(dir .. "/log") .. " " .. (lifetime or 60) .. " " .. host .. " " .. (delay or 0)
    .. " >/dev/null 2>&1 & echo $!")
  local function answers()
    local c = require("socket").tcp()
    c:settimeout(0.2)
    local ok = c:connect(host, port)
    c:close()
    return ok
  end
  assert(sys.wait_for(answers, 5, 0.02), "raw server did not start")
  local s = { port = port, url = "http://" .. host .. ":" .. port, pid = tonumber(pid), dir = dir }
  function s.log()
    local out = {}
    for line in (sys.read_file(dir .. "/log") or ""):gmatch("[^\n]+") do out[#out + 1] = line end
    return out
  end
  function s.stop()
    if s.pid then sys.stop_process(s.pid, 5) end
    s.pid = nil
    sys.remove_dir(dir)
  end
  return s
end

if arg and arg[0] and arg[0]:match("raw_server%.lua$") and arg[1] then
  serve(tonumber(arg[1]), arg[2], arg[3], tonumber(arg[4]) or 60, arg[5], tonumber(arg[6]))
else
  return M
end
