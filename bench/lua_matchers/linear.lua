--- bench/lua_matchers/linear.lua: the linear range scan (the algorithm of
-- lua-resty-iputils, written from scratch for this benchmark and extended to
-- IPv6): compile turns every entry into a { lower, upper } pair, and a lookup
-- parses the address and walks the pairs of its family until one contains it.
-- IPv4 bounds are integers; IPv6 bounds are 16-byte strings compared bytewise.
--   local m = require("lua_matchers.linear").compile{ "10.0.0.0/8", "2001:db8::/32" }
--   m:contains("10.1.2.3") --> true
local ip = require "lua_matchers.ip"

local find = string.find
local floor = math.floor

local M = {}

local Matcher = {}
Matcher.__index = Matcher

--- compile(list) --> matcher; raises on an entry it cannot read
function M.compile(list)
  local v4, v6 = {}, {}
  for i = 1, #list do
    local family, addr, prefix = ip.entry(list[i])
    if not family then error("linear: bad entry " .. tostring(list[i]), 2) end
    if family == 4 then
      local size = floor(2 ^ (32 - prefix))
      local lower = addr - addr % size
      v4[#v4 + 1] = { lower, lower + size - 1 }
    else
      v6[#v6 + 1] = { ip.v6_mask(addr, prefix, 0), ip.v6_mask(addr, prefix, 1) }
    end
  end
  return setmetatable({ v4 = v4, v6 = v6 }, Matcher)
end

function Matcher:contains(text)
  if find(text, ":", 1, true) then
    local addr = ip.v6(text)
    if not addr then return false end
    local ranges = self.v6
    for i = 1, #ranges do
      local r = ranges[i]
      if addr >= r[1] and addr <= r[2] then return true end
    end
    return false
  end
  local addr = ip.v4(text)
  if not addr then return false end
  local ranges = self.v4
  for i = 1, #ranges do
    local r = ranges[i]
    if addr >= r[1] and addr <= r[2] then return true end
  end
  return false
end

function Matcher:count() return #self.v4 + #self.v6 end

return M
