--- cometkey.retry_after: the one strict parser of the Retry-After response header
-- (RFC 9110 section 10.2.3), used by cometkey.call and cometkey.bulk.
--
--   require("cometkey.retry_after").parse(value, now_epoch) --> seconds | nil
--
-- value: the header's value (a string; anything else gives nil). Accepted forms:
--   delta-seconds: 1*DIGIT, at most 9 digits (blanks around it allowed) -> that integer
--   HTTP-date: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", and the obsolete RFC 850
--     "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994" forms
--     recipients must accept -> seconds from now_epoch (a date in the past gives 0)
-- now_epoch: the current Unix time in seconds (default os.time()).
-- Anything else -> nil (ignored): negative or fractional numbers, "inf", "nan", hex,
-- exponents, several values ("5, 5"), an impossible date (Feb 30, 25:00), a weekday that
-- does not match the date, and any wait over MAX seconds (about 31 years).
local type, tonumber, floor = type, tonumber, math.floor
local match, find, lower = string.match, string.find, string.lower

local M = {}

M.MAX = 999999999 -- seconds; a longer wait is not believable and is ignored

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9, oct = 10,
  nov = 11, dec = 12 }
local DAYS = { sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 }
local LONG_DAYS = { sunday = 0, monday = 1, tuesday = 2, wednesday = 3, thursday = 4, friday = 5, saturday = 6 }

local function leap(y) return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 end
local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Unix time of a checked date, or nil. wday: 0..6 (Sunday 0) as written, checked too.
local function epoch(wday, d, mon, y, hh, mm, ss)
  local m = MONTHS[lower(mon)]
  d, y, hh, mm, ss = tonumber(d), tonumber(y), tonumber(hh), tonumber(mm), tonumber(ss)
  if not m or y < 1970 or y > 9999 or hh > 23 or mm > 59 or ss > 60 or d < 1 then return nil end
  local last = MONTH_DAYS[m] + ((m == 2 and leap(y)) and 1 or 0)
  if d > last then return nil end
  local days = days_from_civil(y, m, d)
  if (days + 4) % 7 ~= wday then return nil end -- 1970-01-01 was a Thursday
  return days * 86400 + hh * 3600 + mm * 60 + (ss == 60 and 59 or ss)
end

local function http_date(s)
  -- IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
  local wd, d, mon, y, hh, mm, ss = match(s, "^(%a%a%a), (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if wd then
    wd = DAYS[lower(wd)]
    return wd and epoch(wd, d, mon, y, hh, mm, ss)
  end
  -- RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (a two-digit year within 50 years of now)
  wd, d, mon, y, hh, mm, ss = match(s, "^(%a+), (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if wd then
    wd = LONG_DAYS[lower(wd)]
    if not wd then return nil end
    local year = tonumber(y) + 2000
    if year > tonumber(os.date("!%Y")) + 50 then year = year - 100 end
    return epoch(wd, d, mon, year, hh, mm, ss)
  end
  -- asctime: Sun Nov  6 08:49:37 1994
  wd, mon, d, hh, mm, ss, y = match(s, "^(%a%a%a) (%a%a%a) ([ %d]%d) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  if wd then
    wd = DAYS[lower(wd)]
    d = match(d, "^ ?(%d+)$")
    return wd and d and epoch(wd, d, mon, y, hh, mm, ss)
  end
  return nil
end

--- parse(value [, now_epoch]) --> seconds to wait (an integer >= 0) | nil
function M.parse(value, now_epoch)
  if type(value) ~= "string" or #value > 64 then return nil end
  local digits = match(value, "^[ \t]*(%d+)[ \t]*$")
  if digits then
    if #digits > 9 then return nil end
    return tonumber(digits)
  end
  if find(value, "^[ \t]") or find(value, "[ \t]$") then value = match(value, "^[ \t]*(.-)[ \t]*$") end
  local at = http_date(value)
  if not at then return nil end
  now_epoch = now_epoch or os.time()
  if type(now_epoch) ~= "number" or now_epoch ~= now_epoch or now_epoch == math.huge or now_epoch == -math.huge then
    return nil
  end
  local wait = at - floor(now_epoch)
  if wait < 0 then return 0 end
  if wait > M.MAX then return nil end
  return wait
end

return M
