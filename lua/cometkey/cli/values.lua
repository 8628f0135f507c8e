--- cometkey.cli.values: turns command-line text into the library's field values
-- (ids, quotas, statuses, booleans, expiry times, --expect pairs) for bin/cometkey.
-- Pure Lua 5.1/5.4/LuaJIT, no I/O: each parser returns value | nil, message.
local type, tonumber, pairs, ipairs, tostring = type, tonumber, pairs, ipairs, tostring
local floor = math.floor
local format = string.format
local concat, sort = table.concat, table.sort

local core = require "cometkey.core"

local M = {}

M.STATUS_NAME = core.status_names -- the C schema's names, status 1..n
M.STATUS = {}
for i, name in ipairs(M.STATUS_NAME) do M.STATUS[name] = i end
local STATUS_HINT = format("%s or 1-%d", concat(M.STATUS_NAME, ", "), #M.STATUS_NAME)

--- to_integer(n) --> the integer n (a Lua integer on 5.3+) | nil
M.to_integer = math.tointeger or function(n)
  if type(n) == "number" and n == floor(n) and n > -2 ^ 53 and n < 2 ^ 53 then return n end
end
local to_integer = M.to_integer

--- integer(text) --> exact integer from an optional '-' and at most 18 significant digits | nil
function M.integer(text)
  if type(text) ~= "string" or not text:match("^%-?%d+$") or #text:gsub("^%-?0*", "") > 18 then return nil end
  return to_integer(tonumber(text))
end

--- id(text [, what]) --> positive integer | nil, message
function M.id(text, what)
  local id = M.integer(text)
  if not id or id <= 0 then
    return nil, format("%s must be a positive integer key id (got %q)", what or "ID", tostring(text))
  end
  return id
end

--- status(text, what) --> 1..4 from a name (any case) or a digit | nil, message
function M.status(text, what)
  local n = text:match("^%d$") and to_integer(tonumber(text))
  local s = M.STATUS[text:lower()] or (n and n >= 1 and n <= #M.STATUS_NAME and n)
  if not s then return nil, format("%s must be %s (got %q)", what, STATUS_HINT, text) end
  return s
end

local BOOL = {
  on = true, off = false, ["true"] = true, ["false"] = false, yes = true, no = false, ["1"] = true, ["0"] = false,
}

--- bool(text, what) --> boolean from on/off, true/false, yes/no, 1/0 | nil, message
function M.bool(text, what)
  local b = BOOL[text:lower()]
  if b == nil then return nil, format("%s must be on or off (got %q)", what, text) end
  return b
end

local function leap(y) return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 end
local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

--- days_from_civil(y, m, d) --> days from 1970-01-01 to y-m-d (proleptic Gregorian)
function M.days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (m > 2 and m - 3 or m + 9) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- expires(text, what [, now]) --> expired_time | nil, message
-- never (or -1) -> -1; digits -> Unix seconds; YYYY-MM-DD -> that day's 00:00 UTC;
-- +Nd / +Nh -> now plus N days / hours.
function M.expires(text, what, now)
  if text == "never" or text == "-1" then return -1 end
  if text:match("^%d+$") then
    local t = M.integer(text)
    if t then return t end
  end
  local y, m, d = text:match("^(%d%d%d%d)-(%d%d)-(%d%d)$")
  if y then
    y, m, d = tonumber(y), tonumber(m), tonumber(d)
    local last = (m == 2 and leap(y)) and 29 or MONTH_DAYS[m]
    if y < 1970 or not last or d < 1 or d > last then return nil, format("%s: %q is not a valid date", what, text) end
    return to_integer(M.days_from_civil(y, m, d) * 86400)
  end
  local n, unit = text:match("^%+(%d+)([dh])$")
  if n and #n <= 9 then
    return to_integer((now or os.time()) + tonumber(n) * (unit == "d" and 86400 or 3600))
  end
  return nil, format("%s must be never, a Unix time, YYYY-MM-DD (UTC) or +N followed by d or h (got %q)", what, text)
end

--- quota(text, what) --> integer | nil, message (the library checks the range)
function M.quota(text, what)
  local q = M.integer(text)
  if not q then return nil, format("%s must be an integer number of quota units (got %q)", what, text) end
  return q
end

--- seconds(text, what) --> positive finite number | nil, message
function M.seconds(text, what)
  local n = tonumber(text)
  if not n or n ~= n or n <= 0 or n == math.huge then
    return nil, format("%s must be a positive number of seconds (got %q)", what, text)
  end
  return n
end

-- --expect fields and how their values are read.
-- The nine editable fields and status, from the C schema; each read by its type.
local READER_OF_TYPE = { string = "string", boolean = "bool", expiry = "expires", quota = "quota" }
M.EXPECT_FIELDS = { status = "status" }
for _, f in ipairs(core.fields) do M.EXPECT_FIELDS[f] = READER_OF_TYPE[core.field_types[f]] end
M.EXPECT_ALIASES = {
  expires = "expired_time", quota = "remain_quota", unlimited = "unlimited_quota", models = "model_limits",
  ["cross-group-retry"] = "cross_group_retry", ["allow-ips"] = "allow_ips",
}

local READ = { status = M.status, expires = M.expires, quota = M.quota, bool = M.bool }

--- expect(list) --> { field = value } from "field=value" strings | nil, message
function M.expect(list)
  local expect = {}
  for _, item in ipairs(list) do
    local field, value = item:match("^([%w_-]+)=(.*)$")
    if not field then return nil, format("--expect takes field=value (got %q)", item) end
    field = M.EXPECT_ALIASES[field] or field
    local kind = M.EXPECT_FIELDS[field]
    if not kind then
      local names = {}
      for f in pairs(M.EXPECT_FIELDS) do names[#names + 1] = f end
      sort(names)
      return nil, format("--expect: unknown field %q (one of %s)", field, concat(names, ", "))
    end
    if expect[field] ~= nil then return nil, format("--expect: %s given twice", field) end
    if READ[kind] then
      local message
      value, message = READ[kind](value, "--expect " .. field)
      if value == nil then return nil, message end
    end
    expect[field] = value
  end
  return expect
end

return M
