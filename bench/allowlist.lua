--- bench/allowlist.lua: the allowlist-matcher measurement on the Lua side.
--   lua5.4 bench/allowlist.lua prepare DIR          writes the lists and address files
--   lua5.4 bench/allowlist.lua check DIR            all matchers must agree (exit 3 if not)
--   lua5.4|luajit bench/allowlist.lua time DIR      compile and lookup timings (best of 3)
-- Matchers: cometkey (require("cometkey").allowlist.compile; only where the
-- core module loads), the pure-Lua linear range scan and hash-per-prefix
-- matcher (bench/lua_matchers/), and grepcidr (check only; run.lua times it).
-- `time` prints one `key=value` line per figure (impl, lua, n, what, ...).
local bench_dir = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "paths.lua")
local util = dofile(bench_dir .. "/util.lua")
local gen = require "gen_allowlist"
local ip = require "lua_matchers.ip"

local SIZES = { 10, 1000, 10000, 100000 }
local SEED = 20240601
local SAMPLE = 1024      -- addresses per timing set (half hits)
local CHECK = 2000       -- addresses per correctness check
local MIN_SECONDS = 0.15 -- each timing runs at least this long (CPU time)

local mode, dir = arg[1], arg[2]
assert(mode and dir, "usage: allowlist.lua prepare|check|time DIR")

local lua_name = rawget(_G, "jit") and jit.version or _VERSION

local function lines_of(path)
  local out = {}
  for line in assert(io.open(path)):lines() do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end

local function write_lines(path, list)
  util.write_file(path, table.concat(list, "\n") .. "\n")
end

local ok_ck, cometkey = pcall(require, "cometkey")
if not ok_ck then cometkey = nil end

local matchers = {
  { name = "linear", compile = require("lua_matchers.linear").compile },
  { name = "prefix_hash", compile = require("lua_matchers.prefix_hash").compile },
}
if cometkey then
  table.insert(matchers, 1, { name = "cometkey", compile = cometkey.allowlist.compile })
end

-- ------------------------------------------------------------------ prepare

local function prepare()
  for _, n in ipairs(SIZES) do
    local entries = gen.entries(n, SEED + n)
    write_lines(dir .. "/entries_" .. n .. ".txt", gen.texts(entries))
    write_lines(dir .. "/v4_" .. n .. ".txt", (gen.addresses(entries, SAMPLE, SEED + n + 1, "v4")))
    write_lines(dir .. "/v6_" .. n .. ".txt", (gen.addresses(entries, SAMPLE, SEED + n + 2, "v6")))
    local texts, kinds = gen.addresses(entries, CHECK, SEED + n + 3, "check")
    local check = {}
    for i = 1, #texts do check[i] = texts[i] .. " " .. kinds[i] end
    write_lines(dir .. "/check_" .. n .. ".txt", check)
  end
  -- single-family lists for the memory figure (bytes per IPv4 / IPv6 range)
  local n = SIZES[#SIZES]
  write_lines(dir .. "/entries_v4only.txt", gen.texts(gen.entries(n, SEED + 4, "v4")))
  write_lines(dir .. "/entries_v6only.txt", gen.texts(gen.entries(n, SEED + 6, "v6")))
end

-- ------------------------------------------------------------------ check

local function check()
  assert(cometkey, "check needs the cometkey core module (make build-5.4)")
  local failures, notes = 0, {}
  for _, n in ipairs(SIZES) do
    local entries = lines_of(dir .. "/entries_" .. n .. ".txt")
    local addrs, kinds = {}, {}
    for _, line in ipairs(lines_of(dir .. "/check_" .. n .. ".txt")) do
      local a, k = line:match("^(%S+) (%S+)$")
      addrs[#addrs + 1], kinds[#kinds + 1] = a, k
    end
    local ck = cometkey.allowlist.compile(entries)
    local want, hits, excluded = {}, 0, 0
    for i, a in ipairs(addrs) do
      want[i] = ck:contains(a)
      if want[i] then hits = hits + 1 end
      if kinds[i] == "mapped" then
        excluded = excluded + 1
        -- Go semantics: ::ffff:a.b.c.d is the IPv4 client a.b.c.d
        if want[i] ~= ck:contains(a:sub(8)) then
          failures = failures + 1
          print(("MISMATCH n=%d cometkey %s = %s but %s = %s"):format(n, a, tostring(want[i]), a:sub(8),
            tostring(ck:contains(a:sub(8)))))
        end
      end
    end
    local differ = {}
    for _, m in ipairs(matchers) do
      if m.name ~= "cometkey" then
        local matcher = m.compile(entries)
        local differ_mapped = 0
        for i, a in ipairs(addrs) do
          local got = matcher:contains(a)
          if kinds[i] == "mapped" then
            if got ~= want[i] then differ_mapped = differ_mapped + 1 end
          elseif got ~= want[i] then
            failures = failures + 1
            if failures <= 20 then
              print(("MISMATCH n=%d %s: %s (%s) cometkey=%s %s=%s"):format(n, m.name, a, kinds[i],
                tostring(want[i]), m.name, tostring(got)))
            end
          end
        end
        differ[#differ + 1] = m.name .. " " .. differ_mapped
      end
    end
    notes[#notes + 1] = ("n=%d: of the %d IPv4-mapped addresses left out of the comparator check, the comparators "
      .. "answered differently from Go for %s (they read them as IPv6)"):format(n, excluded,
      table.concat(differ, ", "))
    -- grepcidr: the non-mapped addresses, one per line; -x reads the address at the line start
    local input = {}
    for i, a in ipairs(addrs) do
      if kinds[i] ~= "mapped" then input[#input + 1] = a end
    end
    write_lines(dir .. "/grep_in.txt", input)
    local out, ok = util.capture("grepcidr -x -f " .. util.quote(dir .. "/entries_" .. n .. ".txt") .. " "
      .. util.quote(dir .. "/grep_in.txt"))
    if not ok and out ~= "" then error("grepcidr failed: " .. out) end
    local matched = {}
    for line in out:gmatch("[^\n]+") do matched[line] = true end
    for i, a in ipairs(addrs) do
      if kinds[i] ~= "mapped" and (matched[a] == true) ~= want[i] then
        failures = failures + 1
        if failures <= 20 then
          print(("MISMATCH n=%d grepcidr: %s (%s) cometkey=%s grepcidr=%s"):format(n, a, kinds[i],
            tostring(want[i]), tostring(matched[a] == true)))
        end
      end
    end
    print(("checked n=%d: %d addresses, %d hits (cometkey), %d IPv4-mapped excluded from the comparators")
      :format(n, #addrs, hits, excluded))
  end
  for _, note in ipairs(notes) do print("note: " .. note) end
  if failures > 0 then
    print(("MISMATCH: %d answers differ; the benchmark stops here"):format(failures))
    os.exit(3)
  end
  print("check: cometkey, linear, prefix_hash and grepcidr agree on every address they can express")
end

-- ------------------------------------------------------------------ time

-- Calls run(count) with a growing count (from start) until one call takes
-- MIN_SECONDS, then REPEATS - 1 more times with that count; returns the best
-- seconds per unit of count (other processes only ever add time).
local REPEATS = 3

local function per_unit(run, start)
  local count = start
  while true do
    local t = run(count)
    if t >= MIN_SECONDS then
      local best = t
      for _ = 2, REPEATS do best = math.min(best, run(count)) end
      return best / count
    end
    count = count * (t > 0 and math.min(8, math.max(2, math.ceil(MIN_SECONDS / t))) or 8)
  end
end

local HITS_SAMPLE = 128 -- hits are counted on the first addresses only (the linear scan is slow)

local function lookup_ns(matcher, addrs, form)
  local n = #addrs
  local hits = 0
  for i = 1, HITS_SAMPLE do
    if matcher:contains(addrs[i], form) then hits = hits + 1 end
  end
  local seconds = per_unit(function(count)
    local c0 = util.cpu()
    local done = 0
    while done < count do
      local k = count - done
      if k > n then k = n end
      if form then
        for i = 1, k do matcher:contains(addrs[i], form) end
      else
        for i = 1, k do matcher:contains(addrs[i]) end
      end
      done = done + k
    end
    return util.cpu() - c0
  end, 16)
  return seconds * 1e9, hits
end

-- The floor of any matcher method call from Lua: matcher:count() does the
-- same method lookup, userdata check and push as contains, and no lookup.
local function call_floor_ns(matcher)
  return per_unit(function(count)
    local c0 = util.cpu()
    for _ = 1, count do matcher:count() end
    return util.cpu() - c0
  end, 1024) * 1e9
end

local function binary_forms(addrs)
  local out = {}
  for i, a in ipairs(addrs) do
    local v4 = ip.v4(a)
    if v4 then
      local d = v4 % 256
      local c = (v4 - d) / 256 % 256
      local b = ((v4 - d) / 256 - c) / 256 % 256
      local x = (((v4 - d) / 256 - c) / 256 - b) / 256
      out[i] = string.char(x, b, c, d)
    else
      out[i] = assert(ip.v6(a))
    end
  end
  return out
end

local function time_all()
  local base = { lua = lua_name:gsub("%s", "_") }
  local function emit(t)
    for k, v in pairs(base) do t[k] = v end
    util.emit(t)
  end
  for _, n in ipairs(SIZES) do
    local entries = lines_of(dir .. "/entries_" .. n .. ".txt")
    local v4 = lines_of(dir .. "/v4_" .. n .. ".txt")
    local v6 = lines_of(dir .. "/v6_" .. n .. ".txt")
    for _, m in ipairs(matchers) do
      collectgarbage()
      collectgarbage()
      local kb0 = collectgarbage("count")
      local matcher = m.compile(entries)
      collectgarbage()
      collectgarbage()
      local heap = (collectgarbage("count") - kb0) * 1024
      local compile = per_unit(function(count)
        local c0 = util.cpu()
        for _ = 1, count do m.compile(entries) end
        return util.cpu() - c0
      end, 1)
      emit { impl = m.name, n = n, what = "compile", ns = compile * 1e9 / n,
        lua_heap_bytes_per_entry = m.name ~= "cometkey" and heap / n or nil,
        count = m.name == "cometkey" and matcher:count() or nil }
      local ns, hits = lookup_ns(matcher, v4)
      emit { impl = m.name, n = n, what = "contains", form = "text4", ns = ns, hits = hits }
      ns, hits = lookup_ns(matcher, v6)
      emit { impl = m.name, n = n, what = "contains", form = "text6", ns = ns, hits = hits }
      if m.name == "cometkey" then
        emit { impl = m.name, n = n, what = "call_floor", ns = call_floor_ns(matcher) }
        ns, hits = lookup_ns(matcher, binary_forms(v4), "binary")
        emit { impl = m.name, n = n, what = "contains", form = "bytes4", ns = ns, hits = hits }
        ns, hits = lookup_ns(matcher, binary_forms(v6), "binary")
        emit { impl = m.name, n = n, what = "contains", form = "bytes16", ns = ns, hits = hits }
      end
    end
  end
end

if mode == "prepare" then
  prepare()
elseif mode == "check" then
  check()
elseif mode == "time" then
  time_all()
else
  error("unknown mode " .. mode)
end
