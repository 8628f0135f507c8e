--- cometkey: manage CometAPI API keys from Lua without tripping the server's
-- full-replace update. This file is the public entry point: module constants,
-- `validate`, `allowlist` and `new`; the client's methods are in cometkey/client.lua.
local core = require "cometkey.core"
local options = require "cometkey.options"
local Client = require "cometkey.client"
local errors = require "cometkey.errors"

local type, ipairs = type, ipairs

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

local function raise_or(value, message)
  if value == nil then errors.raise("allowlist", message, 3) end
  return value
end

--- allowlist.parse(value) --> array of normalized entries (raises on an invalid entry)
function allowlist.parse(value) return raise_or(core.allowlist_parse(value)) end

--- allowlist.format(value) --> the server's newline-joined string ("" for none)
function allowlist.format(value) return raise_or(core.allowlist_format(value)) end

--- allowlist.compile(value) --> matcher; matcher:contains(ip [, "text"|"binary"]) --> boolean
function allowlist.compile(value) return raise_or(core.allowlist_compile(value)) end

--- new(opts) --> client; raises on a bad option (the token never appears in the message).
function M.new(opts)
  local conf = options.parse(opts, 2)
  local client = Client.new(conf) -- not a tail call: errors keep pointing at the caller
  return client
end

return M
