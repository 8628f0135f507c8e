--- bench/util.lua: small helpers the benchmark scripts share: files, shell
-- commands, wall and CPU clocks, memory figures of this process, medians and
-- the `key=value` lines every measurement prints. Plain Lua 5.1/5.4/LuaJIT.
local socket = require "socket"

local M = {}

M.gettime = socket.gettime -- wall clock, seconds (float)
M.cpu = os.clock           -- this process's CPU time (user + sys), seconds

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

function M.file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- os.execute returns a number on 5.1 and true/nil, "exit", code on 5.2+.
function M.execute(cmd)
  local a, _, code = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (code == nil or code == 0)
end

--- capture(cmd) --> stdout of cmd (trailing blanks removed), ok
function M.capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a") or ""
  local a, _, code = p:close()
  local ok = a == true and (code == nil or code == 0)
  if type(a) == "number" then ok = a == 0 end
  return (out:gsub("%s+$", "")), ok
end

--- status_kb(field) --> a field of /proc/self/status in kB ("VmRSS", "VmHWM")
function M.status_kb(field)
  local s = M.read_file("/proc/self/status") or ""
  return tonumber(s:match(field .. ":%s*(%d+)"))
end

--- median(list) --> the median of the numbers in list
function M.median(list)
  local t = {}
  for i = 1, #list do t[i] = list[i] end
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  if n % 2 == 1 then return t[(n + 1) / 2] end
  return (t[n / 2] + t[n / 2 + 1]) / 2
end

--- kv(line) --> table of the key=value pairs in line (numbers converted)
function M.kv(line)
  local t = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do t[k] = tonumber(v) or v end
  return t
end

--- emit(t): prints t as one `key=value ...` line (keys sorted)
function M.emit(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "number" and v ~= math.floor(v) then v = string.format("%.6g", v) end
    parts[i] = k .. "=" .. tostring(v)
  end
  io.write(table.concat(parts, " "), "\n")
  io.flush()
end

--- free_port() --> a TCP port on 127.0.0.1 that nothing listens on right now
function M.free_port()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  server:close()
  return tonumber(port)
end

--- port_answers(port) --> true when something accepts connections on 127.0.0.1:port
function M.port_answers(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

function M.sleep(seconds) socket.sleep(seconds) end

--- process_alive(pid) --> true while pid exists and is not a zombie
function M.process_alive(pid)
  local stat = pid and M.read_file("/proc/" .. string.format("%d", pid) .. "/stat")
  if not stat then return false end
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- dir_of(source) --> absolute directory of a script, from debug.getinfo(1, "S").source
function M.dir_of(source)
  local dir = source:match("^@(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then
    local cwd = M.capture("pwd")
    dir = cwd .. "/" .. dir
  end
  return (dir:gsub("/%./", "/"):gsub("/%.$", ""))
end

--- serialize(value) --> Lua source that evaluates to value (tables, strings, numbers, booleans)
function M.serialize(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "0/0" end
    if math.floor(v) == v and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  local inner = indent .. "  "
  local parts = {}
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. M.serialize(k) .. "]")
    parts[#parts + 1] = inner .. key .. " = " .. M.serialize(v[k], inner)
  end
  if #parts == 0 then return "{}" end
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

return M
