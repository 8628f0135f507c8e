--- bench/symbols.lua: which C function stands for each figure of the callgrind
-- section (bench/run.lua reads callgrind_annotate's inclusive counts by function).
--   lua5.4 bench/symbols.lua        prints "figure symbol" lines
-- * Lua-callable functions are found by address, so renaming one changes nothing
--   here: tostring() of a light C function is its address on Lua 5.4, and that
--   address minus the load address of its .so (/proc/self/maps) is the
--   symbol's value in `nm`.
-- * INTERNAL: C functions no Lua value points at, by name; `make lint`
--   (tools/check-bench-symbols.sh) fails when one is no longer defined in src/,
--   so a rename cannot blank a figure silently.
-- * LIBRARY: the public API names of libcurl and jansson.
local M = {}

M.INTERNAL = {
  json_decode = "ck_json_decode",          -- src/ck_json.c, declared in ck_json.h
  json_encode = "ck_json_encode",          -- src/ck_json.c, declared in ck_json.h
  contains_text = "ck_matcher_contains_text", -- src/ck_cidr.c, declared in ck_cidr.h
  outcome = "push_outcome",                -- src/ck_curl.c: the response table of a transfer
}

M.LIBRARY = {
  json_loadb = "json_loadb", json_dumps = "json_dumps",
  curl_easy_perform = "curl_easy_perform", curl_multi_perform = "curl_multi_perform",
}

-- figure -> the Lua function whose C function is the figure (loads the modules).
local function callables()
  local core = require "cometkey.core"
  local curl = require "cometkey.curl"
  local handle = curl.new()
  local methods = debug.getmetatable(handle).__index
  local matcher_methods = debug.getmetatable(core.allowlist_compile("10.0.0.0/8")).__index
  local t = {
    check = core.check, request = core.request, response = core.response,
    perform = methods.perform, multi_add = methods.multi_add, multi_wait = methods.multi_wait,
    contains = matcher_methods.contains,
  }
  handle:close()
  return t
end

local function read_maps()
  local maps = {}
  for line in io.lines("/proc/self/maps") do
    local from, to, offset, path = line:match("^(%x+)%-(%x+) %S+ (%x+) %S+ %S+%s+(/%S+%.so)$")
    if from then
      maps[#maps + 1] = { from = tonumber(from, 16), to = tonumber(to, 16), offset = tonumber(offset, 16), path = path }
    end
  end
  return maps
end

local nm_cache = {}
local function symbols_of(path)
  if not nm_cache[path] then
    local t = {}
    local p = assert(io.popen("nm --defined-only " .. ("%q"):format(path) .. " 2>/dev/null"))
    for line in p:lines() do
      local value, name = line:match("^(%x+) [tTwW] ([%w_]+)$")
      if value then t[tonumber(value, 16)] = name end
    end
    p:close()
    nm_cache[path] = t
  end
  return nm_cache[path]
end

--- resolve() --> { figure = symbol } for every figure (Lua 5.4 on Linux)
function M.resolve()
  local out = {}
  for k, v in pairs(M.INTERNAL) do out[k] = v end
  for k, v in pairs(M.LIBRARY) do out[k] = v end
  local fns = callables() -- loads the modules before their mappings are read
  local maps = read_maps()
  for figure, fn in pairs(fns) do
    local addr = tonumber((tostring(fn):match("0x(%x+)")), 16)
    assert(addr, "bench/symbols.lua: no address for " .. figure .. " (" .. tostring(fn) .. ")")
    local path
    for _, m in ipairs(maps) do
      if addr >= m.from and addr < m.to then path = m.path end
    end
    assert(path, "bench/symbols.lua: " .. figure .. " is in no mapped .so")
    local base
    for _, m in ipairs(maps) do
      if m.path == path and m.offset == 0 and (base == nil or m.from < base) then base = m.from end
    end
    local name = symbols_of(path)[addr - base]
    assert(name, "bench/symbols.lua: no symbol at " .. path .. "+" .. (addr - base) .. " for " .. figure)
    out[figure] = name
  end
  return out
end

if arg and arg[0] and arg[0]:match("symbols%.lua$") then
  dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "paths.lua")
  local names = M.resolve()
  local figures = {}
  for figure in pairs(names) do figures[#figures + 1] = figure end
  table.sort(figures)
  for _, figure in ipairs(figures) do print(figure .. " " .. names[figure]) end
end

return M
