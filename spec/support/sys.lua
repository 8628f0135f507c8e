--- spec/support/sys.lua: the file, shell and process helpers that the specs, the mock
-- launcher and its nginx side, the Neovim scripts, tools/ and bench/ share. Plain Lua
-- 5.1/5.4/LuaJIT. Loading it needs only io and os; luasocket is required by the clock,
-- sleep, wait and port helpers when first called, so Neovim's and nginx's LuaJIT can load
-- this file for the rest.
--
--   local sys = require "spec.support.sys"                  -- from the repository root
--   local sys = dofile(dir .. "/spec/support/sys.lua")      -- from anywhere else
local M = {}

local socket -- luasocket, once a helper needed it
local function luasocket()
  socket = socket or require "socket"
  return socket
end

-- ------------------------------------------------------------------ files

--- read_file(path) --> the whole file as a string, or nil when it cannot be opened
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- write_file(path, data): replaces the file's contents with data; raises when it cannot
function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

--- file_exists(path) --> true when path can be opened for reading
function M.file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- dir_of(source) --> absolute directory of a chunk, from its debug.getinfo(1, "S").source
function M.dir_of(source)
  local dir = source:match("^@(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then dir = M.capture("pwd") .. "/" .. dir end
  return (dir:gsub("/%./", "/"):gsub("/%.$", ""))
end

-- ------------------------------------------------------------------ shell commands

--- quote(s) --> s as one single-quoted /bin/sh word
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- execute(cmd) --> true when cmd exited 0 (os.execute gives a number on 5.1, true|nil on 5.2+)
function M.execute(cmd)
  local a, _, code = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (code == nil or code == 0)
end

--- capture(cmd) --> cmd's standard output less trailing white space, and true when it
-- exited 0 (always true on 5.1, whose popen cannot tell)
function M.capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a") or ""
  local a, _, code = p:close()
  return (out:gsub("%s+$", "")), a == true and (code == nil or code == 0)
end

--- is_root() --> true when this process runs as root
function M.is_root()
  return M.capture("id -u") == "0"
end

--- temp_dir(name) --> path of a new directory /tmp/<name>.XXXXXXXX only this user can read
-- (name: letters, digits, dashes); raises when mktemp fails
function M.temp_dir(name)
  local dir = M.capture("mktemp -d /tmp/" .. name .. ".XXXXXXXX")
  if not dir:match("^/tmp/" .. (name:gsub("%p", "%%%0")) .. "%.%w+$") then
    error("cannot create a temporary directory /tmp/" .. name .. ".XXXXXXXX", 2)
  end
  return dir
end

--- remove_dir(dir): deletes a directory of the shape temp_dir makes, contents and all
-- (any other path is left alone)
function M.remove_dir(dir)
  if type(dir) == "string" and dir:match("^/tmp/[%w%-]+%.%w+$") then
    M.execute("rm -rf " .. M.quote(dir))
  end
end

--- dir_exists(dir) --> true when dir is a directory
function M.dir_exists(dir)
  return M.execute("test -d " .. M.quote(dir))
end

-- ------------------------------------------------------------------ processes

--- own_pid() --> the id of this process
function M.own_pid()
  return tonumber((M.read_file("/proc/self/stat") or ""):match("^(%d+)"))
end

--- process_alive(pid) --> true while process pid (number or digits; nil: false) exists and is no zombie
function M.process_alive(pid)
  pid = tonumber(pid)
  local stat = pid and M.read_file(string.format("/proc/%d/stat", pid))
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- stop_process(pid [, seconds]): SIGTERM, waits up to seconds (default 5) for the exit, then SIGKILL
function M.stop_process(pid, seconds)
  if not M.process_alive(pid) then return end
  local id = string.format("%d", pid)
  M.execute("kill -TERM " .. id .. " 2>/dev/null")
  if not M.wait_for(function() return not M.process_alive(id) end, seconds or 5) then
    M.execute("kill -KILL " .. id .. " 2>/dev/null")
  end
end

-- ------------------------------------------------------------------ clock and ports (luasocket)

--- now() --> wall-clock seconds, with sub-millisecond precision
function M.now() return luasocket().gettime() end

--- sleep(seconds): blocks this process for that long
function M.sleep(seconds) luasocket().sleep(seconds) end

--- wait_for(predicate, seconds [, interval]) --> true once predicate() is true (polled every
-- interval seconds, default 0.01), false when seconds passed without it
function M.wait_for(predicate, seconds, interval)
  local s = luasocket()
  local deadline = s.gettime() + seconds
  repeat
    if predicate() then return true end
    s.sleep(interval or 0.01)
  until s.gettime() > deadline
  return predicate() and true or false
end

--- free_port() --> a TCP port on 127.0.0.1 that nothing listens on right now
function M.free_port()
  local server = assert(luasocket().bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  server:close()
  return tonumber(port)
end

--- port_answers(port) --> true when something accepts connections on 127.0.0.1:port
function M.port_answers(port)
  local c = luasocket().tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

return M
