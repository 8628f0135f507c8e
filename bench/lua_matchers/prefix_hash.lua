--- bench/lua_matchers/prefix_hash.lua: the hash-per-prefix-length matcher (the
-- algorithm of lua-resty-ipmatcher, written from scratch for this benchmark):
-- compile files every entry under its prefix length in a hash keyed by the
-- masked network address; a lookup parses the address, then for each prefix
-- length present (longest first) masks the address and probes that hash.
-- IPv4 keys are integers (address minus address mod 2^(32 - prefix)); IPv6 keys
-- are the first ceil(prefix / 8) bytes with the last one masked.
--   local m = require("lua_matchers.prefix_hash").compile{ "10.0.0.0/8", "2001:db8::/32" }
--   m:contains("10.1.2.3") --> true
local ip = require "lua_matchers.ip"

local find, sub, byte, char = string.find, string.sub, string.byte, string.char
local ceil, floor = math.ceil, math.floor
local sort = table.sort

local M = {}

local Matcher = {}
Matcher.__index = Matcher

-- 2^k as an integer where the interpreter has integers.
local function pow2(k) return floor(2 ^ k) end

-- The lookup key of a 16-byte address under prefix.
local function v6_key(addr, prefix)
  local n = ceil(prefix / 8)
  if n == 0 then return "" end
  local keep = prefix - (n - 1) * 8
  if keep == 8 then return sub(addr, 1, n) end
  local size = pow2(8 - keep)
  local b = byte(addr, n)
  return sub(addr, 1, n - 1) .. char(b - b % size)
end

--- compile(list) --> matcher; raises on an entry it cannot read
function M.compile(list)
  local v4, v6 = {}, {}     -- prefix length -> { key = true }
  local sizes4 = {}         -- prefix length -> 2^(32 - prefix)
  for i = 1, #list do
    local family, addr, prefix = ip.entry(list[i])
    if not family then error("prefix_hash: bad entry " .. tostring(list[i]), 2) end
    if family == 4 then
      local size = pow2(32 - prefix)
      sizes4[prefix] = size
      v4[prefix] = v4[prefix] or {}
      v4[prefix][addr - addr % size] = true
    else
      v6[prefix] = v6[prefix] or {}
      v6[prefix][v6_key(addr, prefix)] = true
    end
  end
  -- Probe order: longest prefix first, as flat arrays of (size, hash) / (prefix, hash).
  local self = { v4_sizes = {}, v4_hashes = {}, v6_prefixes = {}, v6_hashes = {} }
  local lens = {}
  for prefix in pairs(v4) do lens[#lens + 1] = prefix end
  sort(lens, function(a, b) return a > b end)
  for i, prefix in ipairs(lens) do
    self.v4_sizes[i], self.v4_hashes[i] = sizes4[prefix], v4[prefix]
  end
  lens = {}
  for prefix in pairs(v6) do lens[#lens + 1] = prefix end
  sort(lens, function(a, b) return a > b end)
  for i, prefix in ipairs(lens) do
    self.v6_prefixes[i], self.v6_hashes[i] = prefix, v6[prefix]
  end
  return setmetatable(self, Matcher)
end

function Matcher:contains(text)
  if find(text, ":", 1, true) then
    local addr = ip.v6(text)
    if not addr then return false end
    local prefixes, hashes = self.v6_prefixes, self.v6_hashes
    for i = 1, #prefixes do
      if hashes[i][v6_key(addr, prefixes[i])] then return true end
    end
    return false
  end
  local addr = ip.v4(text)
  if not addr then return false end
  local sizes, hashes = self.v4_sizes, self.v4_hashes
  for i = 1, #sizes do
    local size = sizes[i]
    if hashes[i][addr - addr % size] then return true end
  end
  return false
end

return M
