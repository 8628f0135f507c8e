--- spec/support/fakehosts.lua: loads the resty and nvim transports under plain Lua with
-- just enough of a fake `ngx` / `vim` to reach their response parsers (for
-- hostile_spec and the Lua fuzz loops in fuzz/). The globals are removed again
-- and the modules are not left in package.loaded.
local M = {}

--- resty() --> the cometkey.transport.resty module, loaded against a fake ngx
function M.resty()
  local saved = rawget(_G, "ngx")
  local clock = 0
  _G.ngx = {
    socket = { tcp = function() error("fake ngx: no sockets") end },
    sleep = function() end, now = function() return clock end, update_time = function() end,
    get_phase = function() return "timer" end, log = function() end, WARN = 4,
  }
  package.loaded["cometkey.transport.resty"] = nil
  local ok, mod = pcall(require, "cometkey.transport.resty")
  package.loaded["cometkey.transport.resty"] = nil
  _G.ngx = saved
  assert(ok, mod)
  return mod
end

--- socket(chunks) --> a fake cosocket whose receive("*l") hands out lines of the given
-- bytes (LF-terminated, the CR before LF dropped, as nginx does), then "closed"
function M.socket(bytes)
  local pos = 1
  local s = { received = 0 }
  function s.settimeouts() end
  function s.receive(_, pattern)
    if pattern ~= "*l" then error("fake socket: only *l") end
    if pos > #bytes then return nil, "closed" end
    local lf = bytes:find("\n", pos, true)
    if not lf then return nil, "closed", bytes:sub(pos) end
    local line = bytes:sub(pos, lf - 1)
    pos = lf + 1
    s.received = s.received + 1
    if line:sub(-1) == "\r" then line = line:sub(1, -2) end
    return line
  end
  return s
end

--- nvim() --> the cometkey.transport.nvim module, loaded against a fake vim
function M.nvim()
  local saved = rawget(_G, "vim")
  _G.vim = { loop = { os_uname = function() return { sysname = "Linux" } end, pipe = function() end } }
  package.loaded["cometkey.transport.nvim"] = nil
  local ok, mod = pcall(require, "cometkey.transport.nvim")
  package.loaded["cometkey.transport.nvim"] = nil
  _G.vim = saved
  assert(ok, mod)
  return mod
end

return M
