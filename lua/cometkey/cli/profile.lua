--- cometkey.cli.profile: named profiles of the command-line tool, read from
-- $XDG_CONFIG_HOME/cometkey/config (default ~/.config/cometkey/config):
--
--   [default]
--   base_url = https://api.cometapi.com
--   user_id = 42
--   token_file = ~/.config/cometkey/token
--   rate_limit = 180/180        # requests / seconds
--
-- The access token itself is never read from this file: a `token` key is refused.
local base = require "cometkey.cli.base"

local io, tonumber, pcall, format = io, tonumber, pcall, string.format
local usage_error = base.usage_error

local M = {}

M.KEYS = { base_url = true, user_id = true, token_file = true, rate_limit = true }

--- path(getenv) --> the config file's path | nil (no HOME and no XDG_CONFIG_HOME)
function M.path(getenv)
  local xdg = getenv("XDG_CONFIG_HOME")
  if xdg and xdg ~= "" then return xdg .. "/cometkey/config" end
  local home = getenv("HOME")
  if home and home ~= "" then return home .. "/.config/cometkey/config" end
end

--- parse(text, where) --> { [profile name] = { key = value } }, names in file order
-- Raises an exit-2 failure naming the file and line on a malformed line or a refused key.
function M.parse(text, where)
  local profiles, order, current = {}, {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    if line == "" or line:match("^[#;]") then -- luacheck: ignore 542
    elseif line:match("^%[.*%]$") then
      local name = line:match("^%[%s*([%w_.-]+)%s*%]$")
      if not name then usage_error("%s:%d: a profile name is letters, digits, '_', '.' or '-'", where, n) end
      if profiles[name] then usage_error("%s:%d: profile [%s] defined twice", where, n, name) end
      current = {}
      profiles[name], order[#order + 1] = current, name
    else
      local key, value = line:match("^([%w_]+)%s*=%s*(.-)$")
      if not key then usage_error("%s:%d: expected key = value", where, n) end
      value = value:gsub("%s+#.*$", "")
      if key == "token" or key == "access_token" then
        usage_error("%s:%d: the access token is never read from the config file (anyone who can read it, "
          .. "backups included, gets the account); use token_file = PATH (mode 600) instead", where, n)
      end
      if not M.KEYS[key] then
        local s = base.suggest(key, { "base_url", "user_id", "token_file", "rate_limit" })
        usage_error("%s:%d: unknown key %q (one of base_url, user_id, token_file, rate_limit)%s", where, n, key,
          s and ("; did you mean " .. s .. "?") or "")
      end
      if not current then usage_error("%s:%d: %s outside a [profile] section", where, n, key) end
      current[key] = value
    end
  end
  return profiles, order
end

--- rate_limit(text) --> { requests = N, seconds = W } from "N/W" or "N/Ws" | nil, message
function M.rate_limit(text)
  local r, s = text:match("^(%d+)%s*/%s*(%d+)s?$")
  r, s = tonumber(r), tonumber(s)
  if not r or r < 1 or s < 1 then
    return nil, format("rate_limit must be REQUESTS/SECONDS, e.g. 180/180 (got %q)", text)
  end
  return { requests = r, seconds = s }
end

--- load(getenv, name) --> profile table (empty when no file and no name), its name | exit 2
-- name: --profile's value, else $COMETKEY_PROFILE, else "default" when the file has it.
function M.load(getenv, name)
  name = name or getenv("COMETKEY_PROFILE")
  if name == "" then name = nil end
  local path = M.path(getenv)
  local f = path and io.open(path, "rb")
  if not f then
    if name then usage_error("profile %q: no config file (%s)", name, path or "set HOME or XDG_CONFIG_HOME") end
    return {}, nil
  end
  local text = f:read("*a") or ""
  f:close()
  local profiles, order = M.parse(text, path)
  if not name then
    if not profiles.default then return {}, nil end
    name = "default"
  end
  local p = profiles[name]
  if not p then
    local s = base.suggest(name, order)
    usage_error("no profile [%s] in %s (profiles: %s)%s", name, path, #order > 0 and table.concat(order, ", ")
      or "none", s and ("; did you mean " .. s .. "?") or "")
  end
  local home = getenv("HOME")
  if p.token_file and home and p.token_file:sub(1, 2) == "~/" then p.token_file = home .. p.token_file:sub(2) end
  return p, name
end

--- names(getenv) --> the profile names of the config file (for shell completion)
function M.names(getenv)
  local path = M.path(getenv)
  local f = path and io.open(path, "rb")
  if not f then return {} end
  local text = f:read("*a") or ""
  f:close()
  local ok, _, order = pcall(M.parse, text, path)
  return ok and order or {}
end

return M
