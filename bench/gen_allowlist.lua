--- bench/gen_allowlist.lua: deterministic allowlists and client addresses for
-- the matcher benchmark. The same seed gives the same lists on Lua 5.1, 5.4 and
-- LuaJIT (a Park-Miller generator in exact double/integer arithmetic).
--
-- Entries (all valid for cometkey, i.e. for Go's net.ParseIP / net.ParseCIDR):
--   IPv4 (70 %): 30 % single addresses, 70 % CIDRs /16../31, host bits cleared
--   IPv6 (30 %): 20 % single addresses in 2000::/3, 80 % CIDRs with a prefix
--                from {24, 32, 40, 48, 56, 64, 72, 80, 96, 112, 120, 124, 127}
--   IPv6 texts are canonical (RFC 5952); no IPv4-mapped entries (the
--   comparators cannot express Go's rule for them).
-- Addresses: half inside a random entry of the family (hits), half uniform.
--
--   local gen = require "gen_allowlist"
--   local entries = gen.entries(10000, 1)            -- array of records (see below)
--   local texts = gen.texts(entries)                 -- array of entry strings
--   local addrs = gen.addresses(entries, 1024, 7, "v4")
-- CLI: lua5.4 bench/gen_allowlist.lua N [SEED] [mixed|v4|v6]   (entries, one per line)
local modname = ...
local floor = math.floor
local format, concat = string.format, table.concat

local M = {}

--- rng(seed) --> r; r(n) is a uniform integer in [0, n) for 1 <= n <= 2^31 - 1,
-- r(n) for larger n (up to 2^32) combines two draws.
function M.rng(seed)
  local x = (seed % 2147483646) + 1
  local function draw()
    x = (x * 48271) % 2147483647
    return x
  end
  return function(n)
    if n <= 65536 then return draw() % n end
    local v = (draw() % 65536) * 65536 + draw() % 65536
    return v % n
  end
end

function M.v4_text(n)
  local d = n % 256
  n = (n - d) / 256
  local c = n % 256
  n = (n - c) / 256
  local b = n % 256
  local a = (n - b) / 256
  return format("%d.%d.%d.%d", a, b, c, d)
end

--- v6_text(words) --> RFC 5952 text of 8 16-bit groups
function M.v6_text(w)
  local best, best_len, i = 0, 1, 1 -- longest run of zero groups, at least 2 long
  while i <= 8 do
    if w[i] == 0 then
      local j = i
      while j < 8 and w[j + 1] == 0 do j = j + 1 end
      if j - i + 1 > best_len then best, best_len = i, j - i + 1 end
      i = j + 1
    else
      i = i + 1
    end
  end
  local function hex(a, b)
    local out = {}
    for k = a, b do out[#out + 1] = format("%x", w[k]) end
    return concat(out, ":")
  end
  if best == 0 then return hex(1, 8) end
  return hex(1, best - 1) .. "::" .. hex(best + best_len, 8)
end

-- words with every bit after prefix cleared (fill = nil) or drawn from r (fill = r)
local function v6_mask(words, prefix, r)
  local out = {}
  for k = 1, 8 do
    local keep = prefix - (k - 1) * 16
    local w = words[k]
    if keep <= 0 then
      w = r and r(65536) or 0
    elseif keep < 16 then
      local size = floor(2 ^ (16 - keep))
      w = w - w % size + (r and r(size) or 0)
    end
    out[k] = w
  end
  return out
end

local V6_PREFIXES = { 24, 32, 40, 48, 56, 64, 72, 80, 96, 112, 120, 124, 127 }

--- entries(n, seed [, family]) --> array of { text, family = 4|6, addr, prefix }
-- addr: integer (IPv4) or array of 8 groups (IPv6); family: "mixed" (default) | "v4" | "v6"
function M.entries(n, seed, family)
  family = family or "mixed"
  local r = M.rng(seed)
  local out = {}
  for i = 1, n do
    local v6
    if family == "mixed" then v6 = r(10) < 3 else v6 = family == "v6" end
    local e
    if not v6 then
      local prefix = r(10) < 3 and 32 or 16 + r(16)
      local size = floor(2 ^ (32 - prefix))
      local addr = r(4294967296)
      addr = addr - addr % size
      e = { family = 4, addr = addr, prefix = prefix }
      e.text = M.v4_text(addr) .. (prefix < 32 and ("/" .. prefix) or "")
    else
      local prefix = r(10) < 2 and 128 or V6_PREFIXES[r(#V6_PREFIXES) + 1]
      local words = { 0x2000 + r(0x2000) }
      for k = 2, 8 do words[k] = r(65536) end
      words = v6_mask(words, prefix)
      e = { family = 6, addr = words, prefix = prefix }
      e.text = M.v6_text(words) .. (prefix < 128 and ("/" .. prefix) or "")
    end
    out[i] = e
  end
  return out
end

function M.texts(entries)
  local out = {}
  for i = 1, #entries do out[i] = entries[i].text end
  return out
end

-- One address of family 4 (integer) or 6 (words): inside a random entry of that
-- family when hit is true and there is one, else uniform.
local function address(r, by_family, fam, hit)
  local pool = by_family[fam]
  if fam == 4 then
    if hit and #pool > 0 then
      local e = pool[r(#pool) + 1]
      return e.addr + r(floor(2 ^ (32 - e.prefix)))
    end
    return r(4294967296)
  end
  if hit and #pool > 0 then
    local e = pool[r(#pool) + 1]
    return v6_mask(e.addr, e.prefix, r)
  end
  local words = { 0x2000 + r(0x2000) }
  for k = 2, 8 do words[k] = r(65536) end
  return words
end

-- Uncompressed, zero-padded IPv6 text ("2001:0db8:0000:...").
local function v6_full(words)
  local out = {}
  for k = 1, 8 do out[k] = format("%04x", words[k]) end
  return concat(out, ":")
end

--- addresses(entries, m, seed, kind) --> array of texts, array of kinds
-- kind: "v4" | "v6" (half hits, half uniform) | "check" (a mix: v4, v6,
-- "mapped" ::ffff:a.b.c.d, "compat" ::a.b.c.d, "v6full" zero-padded, "v6upper")
function M.addresses(entries, m, seed, kind)
  local r = M.rng(seed)
  local by_family = { [4] = {}, [6] = {} }
  for i = 1, #entries do
    local e = entries[i]
    local pool = by_family[e.family]
    pool[#pool + 1] = e
  end
  local texts, kinds = {}, {}
  for i = 1, m do
    local hit = r(2) == 0
    local k = kind
    if kind == "check" then
      local d = r(20)
      k = d < 8 and "v4" or d < 14 and "v6" or d < 17 and "mapped" or d < 18 and "compat"
        or d < 19 and "v6full" or "v6upper"
    end
    local t
    if k == "v4" then
      t = M.v4_text(address(r, by_family, 4, hit))
    elseif k == "mapped" then
      t = "::ffff:" .. M.v4_text(address(r, by_family, 4, hit))
    elseif k == "compat" then
      t = "::" .. M.v4_text(address(r, by_family, 4, hit))
    elseif k == "v6full" then
      t = v6_full(address(r, by_family, 6, hit))
    elseif k == "v6upper" then
      t = M.v6_text(address(r, by_family, 6, hit)):upper()
    else
      t = M.v6_text(address(r, by_family, 6, hit))
    end
    texts[i], kinds[i] = t, k
  end
  return texts, kinds
end

-- CLI: print the entries of an allowlist.
if modname ~= "gen_allowlist" and arg and arg[0] and arg[0]:match("gen_allowlist%.lua$") then
  local n = assert(tonumber(arg[1]), "usage: gen_allowlist.lua N [SEED] [mixed|v4|v6]")
  local list = M.entries(n, tonumber(arg[2]) or 1, arg[3])
  io.write(concat(M.texts(list), "\n"), "\n")
end

return M
