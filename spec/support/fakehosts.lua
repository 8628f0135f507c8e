--- spec/support/fakehosts.lua: loads the resty and nvim transports under plain Lua with
-- just enough of a fake `ngx` / `vim` to reach their response parsers (for
-- hostile_spec and the Lua fuzz loops in fuzz/). The globals are removed again
-- and the modules are not left in package.loaded.
local M = {}

--- resty() --> the cometkey.transport.resty module, loaded against a fake ngx.
-- ngx.socket.tcp() returns M.next_socket() (set it to a function returning a
-- fake cosocket, e.g. M.cosocket(bytes)).
function M.next_socket() error("fake ngx: no sockets") end

function M.resty()
  local saved = rawget(_G, "ngx")
  local clock = 0
  _G.ngx = {
    socket = { tcp = function() return M.next_socket() end },
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

--- cosocket(bytes) --> a fake nginx cosocket that connects, accepts what is sent and
-- answers with `bytes` (receive("*l"), receive(n), receiveany(n)), then "closed"
function M.cosocket(bytes)
  local pos = 1
  local s = { closed = false, kept = false }
  function s.settimeouts() end
  function s.connect() return 1 end
  function s.getreusedtimes() return 0 end
  function s.sslhandshake() return true end
  function s.send(_, data)
    s.sent = type(data) == "table" and table.concat(data) or data
    return #s.sent
  end
  function s.receive(_, pattern)
    if pos > #bytes then return nil, "closed", "" end
    if pattern == "*l" then
      local lf = bytes:find("\n", pos, true)
      if not lf then
        local partial = bytes:sub(pos)
        pos = #bytes + 1
        return nil, "closed", partial
      end
      local line = bytes:sub(pos, lf - 1)
      pos = lf + 1
      return (line:gsub("\r", ""))
    end
    assert(type(pattern) == "number" and pattern >= 0, "fake cosocket: receive(" .. tostring(pattern) .. ")")
    if pos + pattern - 1 > #bytes then
      local partial = bytes:sub(pos)
      pos = #bytes + 1
      return nil, "closed", partial
    end
    local data = bytes:sub(pos, pos + pattern - 1)
    pos = pos + pattern
    return data
  end
  function s.receiveany(_, n)
    if pos > #bytes then return nil, "closed" end
    local data = bytes:sub(pos, pos + n - 1)
    pos = pos + #data
    return data
  end
  -- receiveuntil("\n"): iterator(size) gives the line in pieces of at most size bytes,
  -- then nil, nil once the LF is passed (nginx's semantics with a size argument).
  function s.receiveuntil(_, pattern)
    assert(pattern == "\n", "fake cosocket: receiveuntil(\"\\n\") only")
    local done = false
    return function(size)
      if done then
        done = false
        return nil, nil
      end
      if pos > #bytes then return nil, "closed", "" end
      local lf = bytes:find("\n", pos, true)
      local stop = lf and lf - 1 or #bytes
      if size and stop - pos + 1 > size then
        local data = bytes:sub(pos, pos + size - 1)
        pos = pos + size
        return data
      end
      if not lf then
        local partial = bytes:sub(pos)
        pos = #bytes + 1
        return nil, "closed", partial
      end
      local data = bytes:sub(pos, lf - 1)
      pos = lf + 1
      done = true
      return data
    end
  end
  function s.consumed() return pos - 1 end
  function s.setkeepalive() s.kept = true; return 1 end
  function s.close() s.closed = true; return 1 end
  return s
end

M.socket = M.cosocket -- (the header reader's tests use the same fake)

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
