--- cometkey: manage CometAPI API keys from Lua without tripping the server's
-- full-replace update. This file is the public entry point: module constants,
-- `validate`, `allowlist` and `new`; the client's methods are in cometkey/client.lua.
local core = require "cometkey.core"
local options = require "cometkey.options"
local Client = require "cometkey.client"
local errors = require "cometkey.errors"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring

local M = {}

M._VERSION = "cometkey " .. core.version
M.null = core.null
M.status = {} -- { enabled = 1, disabled = 2, expired = 3, exhausted = 4 }, from the C schema
for i, name in ipairs(core.status_names) do M.status[name] = i end

--- validate(fields [, mode]) --> true | nil, problems
-- mode: "update" (default) | "create" | "replace" | "expect". Never raises for bad values.
function M.validate(fields, mode)
  if type(fields) ~= "table" then
    errors.raise("validate", "fields must be a table, got " .. type(fields), 2)
  end
  if mode ~= nil and mode ~= "update" and mode ~= "create" and mode ~= "replace" and mode ~= "expect" then
    errors.raise("validate", "mode must be \"update\", \"create\", \"replace\" or \"expect\"", 2)
  end
  local normalized, problems = core.check(fields, mode or "update")
  if normalized then return true end
  return nil, problems
end

local allowlist = {}
M.allowlist = allowlist

-- Options of parse/compile: nil or { as = "server" | "client" }.
local function check_opts(opts)
  if opts == nil then return end
  if type(opts) ~= "table" then errors.raise("allowlist", "opts must be a table such as { as = \"server\" }", 3) end
  for k, v in pairs(opts) do
    if k ~= "as" then errors.raise("allowlist", "unknown option '" .. tostring(k) .. "' (the only one is as)", 3) end
    if v ~= "server" and v ~= "client" then
      errors.raise("allowlist", "opts.as must be \"server\" (a stored string, read as the server reads it) "
        .. "or \"client\" (the default)", 3)
    end
  end
end

local function raise_or(value, message)
  if value == nil then errors.raise("allowlist", message, 3) end
  return value
end

--- allowlist.parse(value [, opts]) --> array of normalized entries (raises on an invalid entry)
-- opts.as = "server": read a *stored* string the way the server does (spaces removed, split
-- on newlines only, commas deleted, invalid entries ignored); returns entries, ignored (the
-- pieces the server ignores), restricts (false when the server restricts nothing).
function allowlist.parse(value, opts)
  check_opts(opts)
  local entries, ignored, restricts = core.allowlist_parse(value, opts)
  if entries == nil then errors.raise("allowlist", ignored, 2) end
  return entries, ignored, restricts
end

--- allowlist.format(value) --> the server's newline-joined string ("" for none)
function allowlist.format(value) return raise_or(core.allowlist_format(value)) end

--- allowlist.compile(value [, opts]) --> matcher; matcher:contains(ip [, "text"|"binary"]) --> boolean
-- opts.as = "server": the server's reading (see parse); a list whose every entry is invalid
-- matches nothing, as on the server (2025-12-15+ builds).
function allowlist.compile(value, opts)
  check_opts(opts)
  return raise_or(core.allowlist_compile(value, opts))
end

--- new(opts) --> client; raises on a bad option (the token never appears in the message).
function M.new(opts)
  local conf = options.parse(opts, 2)
  local client = Client.new(conf) -- not a tail call: errors keep pointing at the caller
  return client
end

return M
