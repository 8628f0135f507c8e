--- bench/lua_matchers/ip.lua: the text parsing the two pure-Lua comparator
-- matchers share (written for this benchmark; Lua 5.1/5.4/LuaJIT, no bit ops).
--   v4(text)    --> the address as an integer 0 .. 2^32-1, or nil
--   v6(text)    --> the address as a 16-byte string, or nil (a trailing dotted
--                   quad is read: "::ffff:1.2.3.4" is the IPv6 address it spells)
--   entry(text) --> family (4|6), address (as above), prefix length, or nil
-- IPv4-mapped addresses stay IPv6 here (as in inet_pton and lua-resty-ipmatcher):
-- unlike Go, "::ffff:1.2.3.4" is not matched against IPv4 entries.
local tonumber, find, match, sub, char, byte = tonumber, string.find, string.match, string.sub, string.char, string.byte
local floor = math.floor
local concat = table.concat

local M = {}

local function octet(s)
  if #s > 1 and byte(s, 1) == 48 then return nil end -- "01": leading zeros are refused
  local n = tonumber(s)
  if n == nil or n > 255 then return nil end
  return n
end

function M.v4(s)
  local a, b, c, d = match(s, "^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  if not a then return nil end
  a, b, c, d = octet(a), octet(b), octet(c), octet(d)
  if not (a and b and c and d) then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Appends the 16-bit groups of a colon-separated piece to out; false if one is bad.
local function groups(piece, out)
  if piece == "" then return true end
  local pos = 1
  while true do
    local colon = find(piece, ":", pos, true)
    local g = sub(piece, pos, colon and colon - 1 or #piece)
    if not match(g, "^%x%x?%x?%x?$") then return false end
    out[#out + 1] = tonumber(g, 16)
    if not colon then return true end
    pos = colon + 1
  end
end

function M.v6(s)
  if not find(s, ":", 1, true) then return nil end
  local head, quad = match(s, "^(.*:)(%d+%.%d+%.%d+%.%d+)$")
  if head then -- a trailing IPv4 part is two groups
    local n = M.v4(quad)
    if not n then return nil end
    s = head .. string.format("%x:%x", floor(n / 65536), n % 65536)
  end
  local words = {}
  local gap = find(s, "::", 1, true)
  if gap then
    local left, right = {}, {}
    if find(s, "::", gap + 1, true) then return nil end
    if not groups(sub(s, 1, gap - 1), left) or not groups(sub(s, gap + 2), right) then return nil end
    if #left + #right > 7 then return nil end
    for i = 1, #left do words[i] = left[i] end
    for _ = 1, 8 - #left - #right do words[#words + 1] = 0 end
    for i = 1, #right do words[#words + 1] = right[i] end
  else
    if not groups(s, words) or #words ~= 8 then return nil end
  end
  local bytes = {}
  for i = 1, 8 do
    local w = words[i]
    bytes[i] = char(floor(w / 256), w % 256)
  end
  return concat(bytes)
end

--- entry(text) --> family, address, prefix | nil
function M.entry(s)
  local addr, bits = match(s, "^([^/]+)/(%d+)$")
  if not addr then addr = s end
  local prefix = bits and tonumber(bits)
  local v4 = M.v4(addr)
  if v4 then
    if prefix and prefix > 32 then return nil end
    return 4, v4, prefix or 32
  end
  local v6 = M.v6(addr)
  if v6 then
    if prefix and prefix > 128 then return nil end
    return 6, v6, prefix or 128
  end
  return nil
end

--- v6_mask(addr, prefix, fill) --> addr with the bits after prefix set to 0 (fill 0) or 1 (fill 1)
function M.v6_mask(addr, prefix, fill)
  local out = {}
  for i = 1, 16 do
    local b = byte(addr, i)
    local keep = prefix - (i - 1) * 8 -- bits of this byte inside the prefix
    if keep <= 0 then
      b = fill == 1 and 255 or 0
    elseif keep < 8 then
      local size = floor(2 ^ (8 - keep))
      b = b - b % size
      if fill == 1 then b = b + size - 1 end
    end
    out[i] = char(b)
  end
  return concat(out)
end

return M
