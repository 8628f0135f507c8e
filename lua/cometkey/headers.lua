--- cometkey.headers: how the transports that read response headers themselves
-- (resty, nvim) gather fields: a repeated field's values are collected in a list
-- and joined with ", " once at the end, so a flood of repeats costs linear time.
-- Names are lower-cased and values trimmed by the caller.
local pairs = pairs
local concat = table.concat

local M = {}

--- add(headers, repeated, name, value) --> repeated (nil until a name repeats)
function M.add(headers, repeated, name, value)
  local old = headers[name]
  if old == nil then
    headers[name] = value
    return repeated
  end
  repeated = repeated or {}
  local list = repeated[name]
  if not list then
    list = { old }
    repeated[name] = list
  end
  list[#list + 1] = value
  return repeated
end

--- join(headers, repeated) --> headers, every repeated field joined with ", "
function M.join(headers, repeated)
  if repeated then
    for name, list in pairs(repeated) do headers[name] = concat(list, ", ") end
  end
  return headers
end

return M
