-- spec/support/nvim/run.lua: the Neovim half of spec/nvim_spec.lua. Runs inside
-- `nvim --headless --clean -u NONE -i NONE -n -c "luafile spec/support/nvim/run.lua"`
-- against the mock server, drives cometkey asynchronously on Neovim's loop and
-- writes what it saw as JSON; the busted side checks it. Inputs come from the
-- JSON file named by $CK_NVIM_INPUT (so the token is never on a command line):
--   { repo, build (dir of cometkey/core.so, default repo/build/luajit), url, token, result,
--     ids = { update, missing, slow, cancel, orphan }, tls_url and ca_file (optional: an HTTPS mock) }
-- A 10 s watchdog writes whatever was gathered, with an error, and quits.
-- luacheck: globals vim
local vim = vim
local uv = vim.loop

local input, sys = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "input.lua")

local result = { steps = {}, pid = uv.os_getpid(), spawned = {} }

-- Every child process started through luv (the transport's curls), so the spec can
-- check that none of them outlived this Neovim.
local spawn = uv.spawn
uv.spawn = function(...)
  local handle, pid = spawn(...)
  if handle then result.spawned[#result.spawned + 1] = pid end
  return handle, pid
end
local ticks, keys = 0, 0 -- see "probes" below

-- ------------------------------------------------------------------ output

-- A small JSON encoder: numbers with 17 digits (vim.json keeps only 14),
-- cometkey.null and vim.NIL as null, everything else as a string.
local function encode(v, out)
  local t = type(v)
  if t == "table" then
    if v[1] ~= nil or next(v) == nil then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      local first = true
      for k, x in pairs(v) do
        if not first then out[#out + 1] = "," end
        first = false
        encode(tostring(k), out)
        out[#out + 1] = ":"
        encode(x, out)
      end
      out[#out + 1] = "}"
    end
  elseif t == "number" then
    out[#out + 1] = (v == math.floor(v) and math.abs(v) < 2 ^ 63) and string.format("%.0f", v)
      or string.format("%.17g", v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  else
    out[#out + 1] = "null"
  end
  return out
end

local finished = false
local function finish(err)
  if finished then return end
  finished = true
  result.ok = err == nil
  result.error = err
  result.curl_module_loaded = package.loaded["cometkey.curl"] ~= nil
  result.ticks_total = ticks
  result.keys_total = keys
  sys.write_file(input.result, table.concat(encode(result, {})))
  vim.cmd("qa!")
end

local watchdog = uv.new_timer()
watchdog:start(10000, 0, vim.schedule_wrap(function() finish("watchdog: the scenarios did not finish within 10 s") end))

-- Runs fn in protected mode; an error ends the run with a traceback.
local function guard(fn, ...)
  local ok, err = xpcall(fn, debug.traceback, ...)
  if not ok then finish(tostring(err)) end
end

-- ------------------------------------------------------------------ probes

-- The main loop is free while ticks grow: each tick goes through vim.schedule.
-- The editor is responsive while keys grow: every 50 ms a key is typed (nvim_input)
-- whose mapping counts it; typed keys are handled only by the editor's own main
-- loop, not while Lua waits (vim.wait, a blocking call), so they prove more.
function _G.__cometkey_spec_key() keys = keys + 1 end
vim.api.nvim_set_keymap("n", "<F20>", "<Cmd>lua __cometkey_spec_key()<CR>", { noremap = true })
local ticker = uv.new_timer()
ticker:start(50, 50, function()
  vim.schedule(function()
    ticks = ticks + 1
    vim.api.nvim_input("<F20>")
  end)
end)

local function now() return uv.hrtime() / 1e9 end

-- Does a value hold vim.NIL anywhere?
local function has_vim_nil(v, depth)
  if v == vim.NIL then return true end
  if type(v) == "table" and (depth or 0) < 10 then
    for k, x in pairs(v) do
      if has_vim_nil(k, (depth or 0) + 1) or has_vim_nil(x, (depth or 0) + 1) then return true end
    end
  end
  return false
end

-- Facts about the callback's context: off the fast path, vim.api usable.
local function context()
  local api_ok = pcall(vim.api.nvim_get_current_buf)
  return { fast = vim.in_fast_event(), api_ok = api_ok }
end

-- Every curl child of this Neovim, and whether the token is on any command line.
local function scan_processes(seen)
  local me = tostring(result.pid)
  local dir = uv.fs_scandir("/proc")
  while dir do
    local name = uv.fs_scandir_next(dir)
    if not name then break end
    if name:match("^%d+$") then
      local cmdline = sys.read_file("/proc/" .. name .. "/cmdline")
      if cmdline and cmdline:find(input.token, 1, true) then
        seen.token_in_cmdline = true
        local shown = cmdline:gsub("%z", " "):gsub(input.token:gsub("%p", "%%%0"), "<TOKEN>")
        seen.token_cmdlines = seen.token_cmdlines or {}
        seen.token_cmdlines[#seen.token_cmdlines + 1] = name .. ": " .. shown
      end
      local stat = sys.read_file("/proc/" .. name .. "/stat")
      local comm, ppid
      if stat then comm, ppid = stat:match("^%d+ %((.-)%) %a (%d+)") end
      if comm == "curl" and ppid == me and cmdline then
        -- its environment (inherited from Neovim) and every file it has open
        local environ = sys.read_file("/proc/" .. name .. "/environ")
        if environ then
          seen.environs = seen.environs + 1
          if environ:find(input.token, 1, true) then seen.token_in_environ = true end
        end
        -- files Neovim itself holds (inherited from whatever started it, e.g. a valgrind
        -- log) are not files the request made: only curl's own count
        local inherited = {}
        local own = uv.fs_scandir("/proc/" .. me .. "/fd")
        while own do
          local fd = uv.fs_scandir_next(own)
          if not fd then break end
          local target = uv.fs_readlink("/proc/" .. me .. "/fd/" .. fd)
          if target then inherited[target] = true end
        end
        local fds = uv.fs_scandir("/proc/" .. name .. "/fd")
        while fds do
          local fd = uv.fs_scandir_next(fds)
          if not fd then break end
          local target = uv.fs_readlink("/proc/" .. name .. "/fd/" .. fd)
          if target and target:sub(1, 1) == "/" and not target:find("^/dev/") and not target:find("^/etc/ssl/")
            and not target:find("^/usr/") and not inherited[target] then
            seen.files[#seen.files + 1] = target
          end
        end
        if not seen.pids[name] then
          seen.pids[name] = true
          seen.curl_children = seen.curl_children + 1
          seen.cmdlines[#seen.cmdlines + 1] = cmdline:gsub("%z", " ")
        end
      end
    end
  end
  seen.scans = seen.scans + 1
end

-- ------------------------------------------------------------------ scenarios

local cometkey, client -- loaded by run() under guard, so a load error ends the run at once

-- Runs one asynchronous call: start(cb) issues it; the step records every
-- callback call and moves on after the first.
local function step(name, start, after)
  local rec = { calls = 0 }
  result.steps[name] = rec
  local t0, tick0, key0 = now(), ticks, keys
  guard(function()
    start(function(err, value, info)
      rec.calls = rec.calls + 1
      if rec.calls > 1 then return end
      rec.before_return = rec.call_seconds == nil -- called back before the method returned?
      guard(function()
        rec.elapsed = now() - t0
        rec.ticks = ticks - tick0
        rec.keys = keys - key0
        rec.context = context()
        rec.err = err
        rec.info = info
        rec.has_vim_nil = has_vim_nil(value) or has_vim_nil(info)
        if after then after(rec, value) end
      end)
    end)
    rec.call_seconds = now() - t0
  end)
  return rec
end

local scenarios = {}

-- 1. The delayed update: ticks keep coming, no token in `ps`.
scenarios[#scenarios + 1] = function(next_one)
  local seen = { curl_children = 0, cmdlines = {}, pids = {}, scans = 0, token_in_cmdline = false,
    environs = 0, token_in_environ = false, files = {} }
  result.processes = seen
  local scanner = uv.new_timer()
  scanner:start(0, 50, vim.schedule_wrap(function() guard(scan_processes, seen) end))
  local returned
  step("update", function(cb)
    returned = { client:update({ id = input.ids.update, name = "from-nvim" }, cb) }
    result.steps.update.returned_count = #returned
  end, function(rec, key)
    scanner:stop()
    scanner:close()
    seen.pids = nil
    rec.key = key
    next_one()
  end)
end

-- 2. A missing id: the error callback.
scenarios[#scenarios + 1] = function(next_one)
  step("not_found", function(cb) client:get(input.ids.missing, cb) end, function(rec, key)
    rec.value = key
    next_one()
  end)
end

-- 3. list: a page of keys.
scenarios[#scenarios + 1] = function(next_one)
  step("list", function(cb) client:list({ page = 1, page_size = 100 }, cb) end, function(rec, page)
    if page then
      rec.total = page.total
      rec.ids = {}
      for i, key in ipairs(page.items) do rec.ids[i] = key.id end
    end
    next_one()
  end)
end

-- 4. A request slower than the client's timeout.
scenarios[#scenarios + 1] = function(next_one)
  local quick = cometkey.new { token = input.token, user_id = input.user_id, base_url = input.url, timeout = 0.5,
    retries = 0 }
  step("timeout", function(cb) quick:get(input.ids.slow, cb) end, function()
    quick:close()
    next_one()
  end)
end

-- 5. close() while a request runs: curl is killed, the callback reports it.
scenarios[#scenarios + 1] = function(next_one)
  local doomed = cometkey.new { token = input.token, user_id = input.user_id, base_url = input.url }
  step("cancel", function(cb)
    doomed:get(input.ids.cancel, cb)
    local timer = uv.new_timer()
    timer:start(300, 0, vim.schedule_wrap(function()
      timer:close()
      guard(function() doomed:close() end)
    end))
  end, function() next_one() end)
end

-- 6. The synchronous fallback (blocks the editor while it waits).
scenarios[#scenarios + 1] = function(next_one)
  local t0 = now()
  local key, err, info = client:get(input.ids.update)
  result.steps.sync = { elapsed = now() - t0, name = key and key.name, err = err, info = info }
  next_one()
end

-- 7, 8. HTTPS (when the spec started a TLS mock): verified with ca_file, refused without it.
if input.tls_url then
  scenarios[#scenarios + 1] = function(next_one)
    local tls = cometkey.new { token = input.token, user_id = input.user_id, base_url = input.tls_url,
      ca_file = input.ca_file }
    step("tls_ok", function(cb) tls:get(input.ids.update, cb) end, function(rec, key)
      rec.name = key and key.name
      tls:close()
      next_one()
    end)
  end
  scenarios[#scenarios + 1] = function(next_one)
    local untrusted = cometkey.new { token = input.token, user_id = input.user_id, base_url = input.tls_url,
      retries = 0 }
    step("tls_untrusted", function(cb) untrusted:get(input.ids.update, cb) end, function()
      untrusted:close()
      next_one()
    end)
  end
end

-- 9. A synchronous call from a luv callback (fast context) raises instead of hanging.
scenarios[#scenarios + 1] = function(next_one)
  local timer = uv.new_timer()
  timer:start(0, 0, function()
    timer:close()
    local ok, err = pcall(client.get, client, input.ids.update)
    vim.schedule(function()
      result.steps.sync_in_fast = { raised = not ok, err = tostring(err) }
      next_one()
    end)
  end)
end

local function run(i)
  if i > #scenarios then
    -- Wait a little so a second call of any callback would be counted.
    local timer = uv.new_timer()
    timer:start(300, 0, vim.schedule_wrap(function()
      timer:close()
      ticker:stop()
      -- Quit with a request still running: its curl must not outlive Neovim.
      if input.ids.orphan then
        client:get(input.ids.orphan, function() end)
        local running = next(client.transport.running or {}) -- the nvim transport's live runs
        result.orphan_pid = running and running.pid
      end
      finish(nil)
    end))
    return
  end
  guard(scenarios[i], function() run(i + 1) end)
end

guard(function()
  cometkey = require "cometkey"
  client = cometkey.new { token = input.token, user_id = input.user_id, base_url = input.url }
  result.transport = client.transport.name
  result.null = { type = type(cometkey.null), is_vim_nil = cometkey.null == vim.NIL }
  run(1)
end)
