--- cometkey.luanti: loads cometkey into a Luanti (Minetest) server mod that runs
-- under mod security, without giving cometkey (or anyone who reaches it) the
-- insecure environment. docs/luanti.md has the whole recipe; in short, in the
-- init.lua of a mod listed in secure.trusted_mods:
--
--   local ie = minetest.request_insecure_environment()
--     or error("mymod: add mymod to secure.trusted_mods")
--   local cometkey = ie.require("cometkey.luanti").load(ie)
--   ie = nil -- keep it nowhere
--
-- load(ie) reads cometkey's Lua files with the insecure io and compiles each one
-- into an environment of its own that holds only what cometkey needs: the pure
-- standard library (string, table, math, coroutine, bit copies; os.clock, time,
-- date, difftime; debug.getinfo and debug.traceback, as every mod has; no io, no
-- os.execute/exit/remove/getenv, no package, no other debug function, no
-- load/loadstring/dofile/loadfile, no getfenv/setfenv), the engine's
-- `minetest`/`core` table (which every mod has) and a `require` of its own that
-- resolves cometkey modules only. The C modules (cometkey.core, cometkey.curl)
-- come from package.loadlib, with an empty table as the environment of their
-- functions. Every cometkey module that can ever be required is loaded before
-- load() returns; then `require` is sealed (it only returns loaded modules, and
-- holds no insecure function any more), so nothing in cometkey calls an
-- insecure function after init.lua. Debug hooks are switched off while load()
-- runs, so another mod's hook cannot catch the insecure functions it calls.
local type, error, assert, pairs, ipairs, pcall, tostring, rawget = type, error, assert, pairs, ipairs, pcall,
  tostring, rawget
local find, gsub, gmatch, match = string.find, string.gsub, string.gmatch, string.match
local concat = table.concat

local M = {}

M.C_MODULES = { ["cometkey.core"] = true, ["cometkey.curl"] = true }

-- Modules required by a computed name (transport/auto.lua): loaded up front.
M.PRELOAD = { "cometkey", "cometkey.transport.luanti", "cometkey.transport.func" }

-- What each module's environment gets from the standard library.
local BASE = {
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawset",
  "select", "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION",
}
local LIBS = { "string", "table", "math", "coroutine", "bit" }
local OS = { "clock", "time", "date", "difftime" }
local DEBUG = { "getinfo", "traceback" } -- what every mod's debug table has too (errors.lua reads positions)

local OPTIONS = { path = true, cpath = true, core = true }

local function fail(message, level)
  error("cometkey.luanti.load: " .. message, level + 1)
end

-- The first file of a package.path-style template list that opens.
local function search(io_open, name, templates)
  local file_name = gsub(name, "%.", "/")
  local tried = {}
  for template in gmatch(templates, "[^;]+") do
    local file = gsub(template, "%?", file_name)
    local f = io_open(file, "rb")
    if f then
      f:close()
      return file
    end
    tried[#tried + 1] = "\n\tno file '" .. file .. "'"
  end
  return nil, "module '" .. name .. "' not found:" .. concat(tried)
end

--- load(ie [, opts]) --> the cometkey module
-- ie: minetest.request_insecure_environment()'s table (used only while load runs).
-- opts.path / opts.cpath: package.path / package.cpath-style lists where cometkey's
-- Lua files and C modules are (default: ie.package.path / ie.package.cpath, where
-- `make install LUA_VERSION=5.1` puts them); opts.core: the engine table (default:
-- the caller's `minetest`, else `core`).
function M.load(ie, opts)
  if type(ie) ~= "table" or type(ie.io) ~= "table" or type(ie.io.open) ~= "function"
    or type(ie.package) ~= "table" or type(ie.package.loadlib) ~= "function" or type(ie.loadstring) ~= "function" then
    fail("pass the insecure environment: minetest.request_insecure_environment() "
      .. "(only in a mod listed in secure.trusted_mods, and only while its init.lua runs)", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then fail("opts must be a table", 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then fail("unknown option '" .. tostring(k) .. "' (path, cpath, core)", 2) end
  end
  for _, k in ipairs({ "path", "cpath" }) do
    if opts[k] ~= nil and (type(opts[k]) ~= "string" or not find(opts[k], "?", 1, true)) then
      fail(k .. " must be a search path string with '?' (like package." .. k .. ")", 2)
    end
  end
  local host = opts.core
  if host == nil then host = rawget(_G, "minetest") or rawget(_G, "core") end
  if type(host) ~= "table" then fail("core must be the engine's table (minetest)", 2) end

  local io_open, loadstring, loadlib = ie.io.open, ie.loadstring, ie.package.loadlib
  local setfenv, getfenv = ie.setfenv, ie.getfenv
  local dbg = ie.debug
  local path, cpath = opts.path or ie.package.path, opts.cpath or ie.package.cpath
  local originals = {}
  for _, k in ipairs(BASE) do originals[k] = ie[k] end
  local os_subset, debug_subset = {}, {}
  for _, k in ipairs(OS) do os_subset[k] = ie.os and ie.os[k] end
  for _, k in ipairs(DEBUG) do debug_subset[k] = dbg and dbg[k] end

  local cache = {}       -- name -> module value
  local sources = {}     -- names of Lua modules loaded, in order, with their source
  local loading = {}     -- cycle guard
  local sealed = false
  local load_module      -- the loader proper; nil once sealed

  -- The `require` every cometkey module sees. Its environment is an empty table,
  -- and once sealed it reaches nothing but the cache.
  local function sandbox_require(name)
    local value = cache[name]
    if value ~= nil then return value end
    if type(name) ~= "string" or not match(name, "^cometkey[%w_.]*$") then
      error("module '" .. tostring(name) .. "' not found: cometkey's Luanti sandbox has only cometkey modules", 2)
    end
    if sealed then
      error("module '" .. name .. "' not found: it was not loaded by cometkey.luanti.load", 2)
    end
    return load_module(name)
  end
  setfenv(sandbox_require, {})

  -- LuaJIT writes a few library functions in Lua (table.remove, table.getn, ...): their
  -- environment is the insecure table, and before luanti #16985 (2026) any mod could
  -- getfenv() them. cometkey's copies of the libraries hold wrappers instead, so
  -- nothing reached through cometkey leads there.
  local wrapped = {}
  local function safe(v)
    if type(v) ~= "function" or not (dbg and dbg.getinfo) or dbg.getinfo(v, "S").what == "C" then return v end
    if not wrapped[v] then
      local f = v
      local w = function(...) return f(...) end
      setfenv(w, {})
      wrapped[v] = w
    end
    return wrapped[v]
  end
  local function safe_copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = safe(v) end
    return c
  end

  local function new_env()
    local env = safe_copy(originals)
    for _, lib in ipairs(LIBS) do
      if type(ie[lib]) == "table" then env[lib] = safe_copy(ie[lib]) end
    end
    env.os = safe_copy(os_subset)
    env.debug = safe_copy(debug_subset)
    env._G = env
    env.require = sandbox_require
    env.minetest, env.core = host, host
    return env
  end

  load_module = function(name)
    if loading[name] then error("cometkey.luanti: module '" .. name .. "' requires itself while loading", 0) end
    loading[name] = true
    local value
    if M.C_MODULES[name] then
      local file = assert(search(io_open, name, cpath))
      local open, why = loadlib(file, "luaopen_" .. gsub(name, "%.", "_"))
      if not open then error("cometkey.luanti: cannot load " .. file .. ": " .. tostring(why), 0) end
      -- C functions made while luaopen runs take its environment: an empty table, not ie.
      if dbg and dbg.setfenv then dbg.setfenv(open, {}) end
      -- A luaopen that looks up the global `require` (cometkey.curl does, for
      -- cometkey.errors) finds the thread's globals: for this call only, they are a
      -- table holding the sandbox's require, and nothing else.
      local thread_env = getfenv(0)
      setfenv(0, { require = sandbox_require })
      local opened, result = pcall(open, name)
      setfenv(0, thread_env)
      if not opened then error(result, 0) end
      value = result
    else
      local file = assert(search(io_open, name, path))
      local f = assert(io_open(file, "rb"))
      local source = f:read("*a")
      f:close()
      local chunk, why = loadstring(source, "@" .. file)
      if not chunk then error("cometkey.luanti: " .. tostring(why), 0) end
      setfenv(chunk, new_env())
      value = chunk(name)
      sources[#sources + 1] = source
    end
    if value == nil then value = true end
    cache[name] = value
    loading[name] = nil
    return value
  end

  local function load_all()
    for _, name in ipairs(M.PRELOAD) do sandbox_require(name) end
    -- Modules required inside functions (loaded on first use elsewhere): load them now.
    local i = 1
    while i <= #sources do
      for name in gmatch(sources[i], "require%s*%(?%s*[\"'](cometkey[%w_.]*)[\"']") do
        if cache[name] == nil and not match(name, "^cometkey%.cli") then sandbox_require(name) end
      end
      i = i + 1
    end
  end

  -- No debug hook may watch the insecure functions being called.
  local hook, mask, count
  if dbg and dbg.gethook and dbg.sethook then
    hook, mask, count = dbg.gethook()
    dbg.sethook()
  end
  local ok, err = pcall(load_all)
  sealed = true
  load_module, sources, wrapped = nil, nil, nil
  if type(hook) == "function" then dbg.sethook(hook, mask, count) end
  if not ok then
    cache = {}
    error("cometkey.luanti.load: " .. tostring(err), 2)
  end
  return cache.cometkey
end

return M
