--- cometkey.options: checks the options of cometkey.new and turns them into a
-- client configuration. Every problem raises with the option's name; the token's
-- value never appears in a message.
local core = require "cometkey.core"
local errors = require "cometkey.errors"

local type, pairs, tostring, tonumber = type, pairs, tostring, tonumber
local floor = math.floor
local find, match, lower, format = string.find, string.match, string.lower, string.format

local M = {}

M.DEFAULT_BASE_URL = "https://api.cometapi.com"
M.DEFAULT_MAX_BODY = 8 * 1024 * 1024

local KNOWN = {
  token = true, base_url = true, user_id = true, timeout = true, connect_timeout = true,
  retries = true, ca_file = true, verify = true, allow_http = true, transport = true,
  user_agent = true, max_body = true, debug = true, warn = true, rate_limit = true,
}

local TRANSPORTS = { curl = true, resty = true, nvim = true, luanti = true }

local function fail(level, fmt, ...)
  errors.raise("new", format(fmt, ...), level + 1)
end

-- Control characters (CR, LF, NUL, ...) would let a value break out of its header.
local function has_control(s)
  return find(s, "[%z\1-\31\127]") ~= nil
end

-- A decimal octet 0..255 without leading zeros ("010" is octal to some resolvers).
local function octet(s)
  return s ~= nil and #s <= 3 and (s == "0" or not find(s, "^0")) and tonumber(s) <= 255
end

--- is_loopback(host) --> true for localhost, 127.0.0.0/8 (dotted decimal) and ::1.
-- Every transport sends these directly, never through a proxy from the
-- environment (the C handle and the curl CLI config check the same set).
function M.is_loopback(host)
  host = lower(host)
  if host == "localhost" or host == "::1" or host == "[::1]" then return true end
  local a, b, c = match(host, "^127%.(%d+)%.(%d+)%.(%d+)$")
  return octet(a) and octet(b) and octet(c) or false
end

--- parse_url(url) --> { scheme, host, port, prefix } | nil, reason
function M.parse_url(url)
  local scheme, rest = match(url, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "must start with https:// or http://" end
  scheme = lower(scheme)
  if scheme ~= "https" and scheme ~= "http" then return nil, "scheme must be https or http" end
  if find(rest, "[?#]") then return nil, "must not contain a query or fragment" end
  local authority, path = match(rest, "^([^/]*)(.*)$")
  if authority == "" then return nil, "has no host" end
  if find(authority, "@", 1, true) then return nil, "must not contain credentials" end
  local host, port = match(authority, "^(%[[%x:.]+%]):?([^:]*)$")
  if not host then host, port = match(authority, "^([%w.-]+):?([^:]*)$") end
  if not host then return nil, "has an invalid host" end
  if port ~= "" and not (match(port, "^%d+$") and #port <= 5 and tonumber(port) >= 1 and tonumber(port) <= 65535) then
    return nil, "has an invalid port (an integer from 1 to 65535 after the host)"
  end
  path = path:gsub("/+$", "")
  if has_control(path) or find(path, "%s") then return nil, "has an invalid path" end
  return { scheme = scheme, host = host, port = port ~= "" and tonumber(port) or nil, prefix = path }
end

-- Bounds the transports can represent (libcurl takes milliseconds in a 32-bit long;
-- bodies up to 2 GiB); ids above 2^53 are not exact numbers on Lua 5.1/LuaJIT.
M.MAX_SECONDS = 2147483
M.MAX_BODY = 2147483648
M.MAX_USER_ID = 9007199254740991

local function positive_number(opts, name, default, level)
  local v = opts[name]
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v <= 0 or v > M.MAX_SECONDS then
    fail(level + 1, "%s must be a positive number of seconds (at most %d)", name, M.MAX_SECONDS)
  end
  return v
end

--- parse(opts, level) --> conf (raises at `level` on a bad option)
function M.parse(opts, level)
  level = (level or 1) + 1
  if type(opts) ~= "table" then fail(level, "options must be a table, got %s", type(opts)) end
  for k in pairs(opts) do
    if not KNOWN[k] then fail(level, "unknown option '%s'", tostring(k)) end
  end

  local token = opts.token
  if token == nil or token == "" then fail(level, "token is required (the access token)") end
  if type(token) ~= "string" then fail(level, "token must be a string") end
  if has_control(token) or find(token, " ", 1, true) then
    fail(level, "token contains control characters or blanks (pass the raw access token, without 'Bearer ')")
  end

  local conf = {}
  conf.secret = core.secret(token)

  local base_url = opts.base_url
  if base_url == nil then base_url = M.DEFAULT_BASE_URL end
  if type(base_url) ~= "string" then fail(level, "base_url must be a string") end
  if has_control(base_url) then fail(level, "base_url contains control characters") end
  local url, why = M.parse_url(base_url)
  if not url then fail(level, "base_url %s", why) end
  if opts.allow_http ~= nil and type(opts.allow_http) ~= "boolean" then
    fail(level, "allow_http must be a boolean")
  end
  if url.scheme == "http" and not M.is_loopback(url.host) and not opts.allow_http then
    fail(level, "base_url uses http:// to a non-loopback host (%s); the token would travel in clear text. "
      .. "Use https:// or set allow_http = true", url.host)
  end
  conf.url = url
  conf.base_url = url.scheme .. "://" .. url.host .. (url.port and (":" .. url.port) or "") .. url.prefix

  local user_id = opts.user_id
  if user_id ~= nil then
    if type(user_id) == "string" and match(user_id, "^%d+$") then user_id = tonumber(user_id) end
    if type(user_id) ~= "number" or user_id <= 0 or floor(user_id) ~= user_id or user_id > M.MAX_USER_ID then
      fail(level, "user_id must be a positive integer (the numeric id of the token's owner)")
    end
    conf.user_id = floor(user_id)
  end

  conf.timeout = positive_number(opts, "timeout", 30, level)
  conf.connect_timeout = positive_number(opts, "connect_timeout", 10, level)

  local retries = opts.retries
  if retries == nil then retries = 2 end
  if type(retries) ~= "number" or retries < 0 or retries > 10 or floor(retries) ~= retries then
    fail(level, "retries must be an integer from 0 to 10")
  end
  conf.retries = retries

  if opts.ca_file ~= nil and (type(opts.ca_file) ~= "string" or opts.ca_file == "") then
    fail(level, "ca_file must be a path string")
  end
  conf.ca_file = opts.ca_file
  if opts.verify ~= nil and type(opts.verify) ~= "boolean" then fail(level, "verify must be a boolean") end
  conf.verify = opts.verify ~= false

  local ua = opts.user_agent
  if ua ~= nil and (type(ua) ~= "string" or ua == "" or has_control(ua)) then
    fail(level, "user_agent must be a non-empty string without control characters")
  end
  conf.user_agent = ua or ("cometkey/" .. core.version)

  local max_body = opts.max_body
  if max_body ~= nil and (type(max_body) ~= "number" or max_body < 1024 or max_body > M.MAX_BODY
    or floor(max_body) ~= max_body) then
    fail(level, "max_body must be an integer number of bytes from 1024 to 2^31")
  end
  conf.max_body = max_body or M.DEFAULT_MAX_BODY

  local transport = opts.transport
  if transport ~= nil and type(transport) ~= "function" and not TRANSPORTS[transport] then
    fail(level, "transport must be \"curl\", \"resty\", \"nvim\", \"luanti\" or a function")
  end
  conf.transport = transport

  for _, name in pairs({ "debug", "warn" }) do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      fail(level, "%s must be a function(line)", name)
    end
  end
  if opts.rate_limit ~= nil then
    conf.rate_limit = require("cometkey.pace").check(opts.rate_limit, function(message)
      fail(level + 2, "%s", message)
    end)
  end
  conf.debug = opts.debug
  conf.warn = opts.warn
  return conf
end

return M
