--- bench/server.lua: starts and stops the benchmark's own nginx (bench/nginx.conf)
-- on a free loopback port, in a scratch directory (bench/out/nginx by default).
--   local server = dofile("bench/server.lua")
--   local s = server.start(bench_dir, record_json [, dir])  -- s.port, s.url, s.pid
--   s:stop()                                                 -- idempotent; waits for nginx to exit
local util = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "util.lua")

local M = {}

local START_TIMEOUT, STOP_TIMEOUT = 5, 5

local Server = {}
Server.__index = Server

local function nginx_binary()
  local env = os.getenv("COMETKEY_NGINX")
  if env and env ~= "" then return env end
  if util.file_exists("/usr/sbin/nginx") then return "/usr/sbin/nginx" end
  return "nginx"
end

local function render(template, values)
  return (template:gsub("{{(%u+)}}", function(name)
    return assert(values[name], "bench/server.lua: unknown template field " .. name)
  end))
end

local function master_pid(dir)
  return tonumber((util.read_file(dir .. "/nginx.pid") or ""):match("%d+"))
end

--- start(bench_dir, record [, dir]) --> server; raises when nginx cannot be started
-- record: the JSON text every token request answers with (no single quotes); dir: the
-- scratch directory, emptied first (default bench_dir/out/nginx).
function M.start(bench_dir, record, dir)
  assert(not record:find("'", 1, true), "bench/server.lua: the record must not contain a single quote")
  local template = assert(util.read_file(bench_dir .. "/nginx.conf"), "bench/nginx.conf is missing")
  dir = dir or bench_dir .. "/out/nginx"
  util.execute("rm -rf " .. util.quote(dir) .. " && mkdir -p " .. util.quote(dir))
  local root = util.is_root()
  local last = ""
  for _ = 1, 5 do -- another process may take the free port first: try another
    local port = util.free_port()
    util.write_file(dir .. "/nginx.conf", render(template, {
      USER = root and "user root root;" or "",
      PREFIX = dir,
      PORT = tostring(port),
      RECORD = record,
    }))
    local cmd = util.quote(nginx_binary()) .. " -p " .. util.quote(dir) .. " -c " .. util.quote(dir .. "/nginx.conf")
      .. " -e " .. util.quote(dir .. "/error.log") .. " >" .. util.quote(dir .. "/startup.log") .. " 2>&1"
    if util.execute(cmd) then
      local deadline = util.gettime() + START_TIMEOUT
      while util.gettime() < deadline do
        local pid = master_pid(dir)
        if pid and util.port_answers(port) then
          return setmetatable({ pid = pid, port = port, dir = dir, url = "http://127.0.0.1:" .. port }, Server)
        end
        util.sleep(0.02)
      end
      local pid = master_pid(dir)
      if pid then util.execute("kill -TERM " .. pid .. " 2>/dev/null") end
    end
    last = (util.read_file(dir .. "/error.log") or "") .. (util.read_file(dir .. "/startup.log") or "")
    if not last:find("Address already in use", 1, true) then break end
  end
  error("bench/server.lua: nginx failed to start:\n" .. last, 2)
end

--- stop(): TERM to the master, wait until it is gone (KILL after a timeout)
function Server:stop()
  local pid = self.pid
  if not pid then return end
  self.pid = nil
  util.stop_process(pid, STOP_TIMEOUT)
end

return M
