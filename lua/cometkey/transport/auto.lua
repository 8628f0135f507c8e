--- cometkey.transport.auto: picks and opens the client's transport, and gives
-- every transport the same shape: request(req), request_async(req, cb),
-- sleep(s), sleep_async(s, cb), now(), defer(fn), close(), name, needs_token.
-- Picks pgmoon-style: inside nginx where cosockets work -> resty; inside
-- Neovim -> nvim; otherwise the libcurl transport. A function is a user transport.
local type, pcall, require, tostring, ipairs = type, pcall, require, tostring, ipairs

local M = {}

local warned = {}

--- warn_once(conf, line): one warning per distinct line per process, to conf.warn or the host's log.
function M.warn_once(conf, line)
  if warned[line] then return end
  warned[line] = true
  if conf.warn then return conf.warn(line) end
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and ngx.log then return ngx.log(ngx.WARN, line) end
  local vim = rawget(_G, "vim")
  if type(vim) == "table" and vim.notify then return vim.notify(line, vim.log.levels.WARN) end
  local mt = rawget(_G, "minetest") or rawget(_G, "core")
  if type(mt) == "table" and type(mt.log) == "function" then return mt.log("warning", line) end
  local io = rawget(_G, "io") -- absent in cometkey's Luanti sandbox
  if type(io) == "table" and io.stderr then io.stderr:write(line, "\n") end
end

--- pick(conf) --> transport name ("curl" | "resty" | "nvim" | "function")
function M.pick(conf)
  local t = conf.transport
  if type(t) == "function" then return "function" end
  if t then return t end
  local ngx, vim = rawget(_G, "ngx"), rawget(_G, "vim")
  if type(ngx) == "table" and ngx.get_phase and ngx.get_phase() ~= "init" then return "resty" end
  if type(vim) == "table" and (vim.uv or vim.loop) then return "nvim" end
  if M.luanti() then return "luanti" end
  return "curl"
end

--- luanti() --> true inside a Luanti (Minetest) server's main environment
function M.luanti()
  for _, name in ipairs({ "minetest", "core" }) do
    local h = rawget(_G, name)
    if type(h) == "table" and type(h.register_globalstep) == "function" and type(h.after) == "function" then
      return true
    end
  end
  return false
end

-- Transports that cannot work on a Luanti server's main thread, and why.
local NOT_IN_LUANTI = {
  curl = "it blocks the server's main thread on every request and retry",
  resty = "it needs OpenResty's cosockets",
  nvim = "it needs Neovim's event loop",
}

-- Fills in what a synchronous transport lacks: async calls complete at once.
local function complete(t)
  if not t.request_async then
    function t.request_async(self, req, cb) cb(self:request(req)) end
  end
  if not t.sleep_async then
    function t.sleep_async(self, s, cb) self:sleep(s); cb() end
  end
  if not t.defer then
    function t.defer(_, fn) fn() end
  end
  if not t.now then
    local clock = os.clock
    local ok, socket = pcall(require, "socket")
    if ok and socket.gettime then clock = socket.gettime end
    function t.now() return clock() end
  end
  if not t.close then function t.close() end end
  return t
end

--- open(conf) --> transport object
function M.open(conf)
  local name = M.pick(conf)
  if NOT_IN_LUANTI[name] and M.luanti() then
    error("cometkey.new: transport \"" .. name .. "\" makes no sense in a Luanti server: " .. NOT_IN_LUANTI[name]
      .. "; use transport = \"luanti\" (the default there) and pass callbacks", 4)
  end
  local t
  if name == "function" then
    t = require("cometkey.transport.func").new(conf)
  else
    local ok, mod = pcall(require, "cometkey.transport." .. name)
    if not ok then
      error("cometkey.new: transport \"" .. name .. "\" cannot be loaded: " .. tostring(mod), 4)
    end
    t = mod.new(conf)
  end
  t.name = t.name or name
  return complete(t)
end

return M
