--- bench/util.lua: small helpers the benchmark scripts share: the file, shell, process
-- and port helpers of spec/support/sys.lua (same names), wall and CPU clocks, memory
-- figures of this process, medians and the `key=value` lines every measurement prints.
-- Plain Lua 5.1/5.4/LuaJIT.
local socket = require "socket"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local M = {}
for name, fn in pairs(dofile(here .. "../spec/support/sys.lua")) do M[name] = fn end

M.gettime = socket.gettime -- wall clock, seconds (float)
M.cpu = os.clock           -- this process's CPU time (user + sys), seconds

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
