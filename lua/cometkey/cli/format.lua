--- cometkey.cli.format: the readable output of bin/cometkey — the aligned key
-- table, the key/value view of one key, and the texts of times, statuses,
-- quotas and values. Pure Lua 5.1/5.4/LuaJIT, no I/O: every function returns text.
local type, ipairs, pairs, tostring, pcall = type, ipairs, pairs, tostring, pcall
local floor, max, abs = math.floor, math.max, math.abs
local format, rep, byte = string.format, string.rep, string.byte
local concat, sort = table.concat, table.sort

local M = {}

M.NAME_WIDTH = 32 -- widest name in the key table, in characters
M.KEY_COLUMNS = { "ID", "NAME", "STATUS", "QUOTA", "EXPIRES", "IPS" }
local STATUS_NAME = require("cometkey.core").status_names

function M.trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

--- width(s) --> characters (UTF-8 code points; a stray byte counts as one)
function M.width(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

--- truncate(s, width) --> s with control characters as "?", cut to width characters ending in "…"
function M.truncate(s, width)
  s = s:gsub("%c", "?")
  if M.width(s) <= width then return s end
  local count, cut = 0, #s
  for pos in s:gmatch("()[^\128-\191]") do
    count = count + 1
    if count == width then
      cut = pos - 1
      break
    end
  end
  return s:sub(1, cut) .. "…"
end

function M.pad(s, width) return s .. rep(" ", width - M.width(s)) end

--- int(n) --> integers without exponent or ".0" (other values through tostring)
function M.int(n)
  if type(n) == "number" and n == floor(n) and abs(n) < 2 ^ 63 then return format("%d", n) end
  return tostring(n)
end

--- time(t [, seconds]) --> "never" for -1, "-" for none, else the UTC date and time
function M.time(t, seconds)
  if type(t) ~= "number" or t == 0 then return "-" end
  if t == -1 then return "never" end
  local ok, s = pcall(os.date, seconds and "!%Y-%m-%d %H:%M:%S UTC" or "!%Y-%m-%d %H:%M", t)
  return ok and s or M.int(t)
end

function M.status(s) return STATUS_NAME[s] or ("status " .. tostring(s)) end

function M.quota(key)
  if key.unlimited_quota == true then return "unlimited" end
  return M.int(key.remain_quota or 0)
end

--- allowlist_entries(value) --> entries as the server reads allow_ips: blanks removed,
-- split on newlines, each trimmed, commas deleted, empty ones skipped.
function M.allowlist_entries(value)
  local entries = {}
  if type(value) ~= "string" then return entries end
  for line in (value:gsub(" ", "") .. "\n"):gmatch("([^\n]*)\n") do
    local e = M.trim(line):gsub(",", "")
    if e ~= "" then entries[#entries + 1] = e end
  end
  return entries
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

--- quote(s) --> s in double quotes with JSON escapes (one line)
function M.quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ESCAPES[c] or format("\\u%04x", byte(c)) end) .. '"'
end

--- value(v [, null]) --> a field value as text: strings quoted, null/nil as null
function M.value(v, null)
  if v == nil or (null ~= nil and v == null) then return "null" end
  if type(v) == "string" then return M.quote(v) end
  if type(v) == "number" then return M.int(v) end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = M.value(x, null) end
    return "[" .. concat(parts, ", ") .. "]"
  end
  return tostring(v)
end

--- table(rows, columns) --> aligned text: a header line, then one line per row
function M.table(rows, columns)
  local widths = {}
  for c, col in ipairs(columns) do widths[c] = M.width(col) end
  for _, row in ipairs(rows) do
    for c = 1, #columns do widths[c] = max(widths[c], M.width(row[c])) end
  end
  local lines = {}
  local function line(cells)
    local parts = {}
    for c = 1, #columns do parts[c] = c == #columns and cells[c] or M.pad(cells[c], widths[c]) end
    lines[#lines + 1] = concat(parts, "  ")
  end
  line(columns)
  for _, row in ipairs(rows) do line(row) end
  return concat(lines, "\n") .. "\n"
end

--- key_row(key) --> the cells of KEY_COLUMNS for one key
function M.key_row(key)
  return {
    M.int(key.id), M.truncate(type(key.name) == "string" and key.name or "", M.NAME_WIDTH), M.status(key.status),
    M.quota(key), M.time(key.expired_time), tostring(#M.allowlist_entries(key.allow_ips)),
  }
end

function M.keys_table(keys)
  local rows = {}
  for i, key in ipairs(keys) do rows[i] = M.key_row(key) end
  return M.table(rows, M.KEY_COLUMNS)
end

--- mask(secret) --> first 4 + ********** + last 4 (already masked or short values unchanged)
function M.mask(secret)
  if type(secret) ~= "string" or #secret < 12 or secret:find("*", 1, true) then return secret end
  return secret:sub(1, 4) .. "**********" .. secret:sub(-4)
end

local VIEW_ORDER = {
  "id", "name", "status", "key", "expired_time", "remain_quota", "unlimited_quota", "used_quota",
  "model_limits_enabled", "model_limits", "allow_ips", "group", "cross_group_retry",
  "created_time", "accessed_time", "user_id",
}

--- key_view(key [, show_key]) --> "field  value" lines; the key's secret masked unless show_key
function M.key_view(key, show_key)
  local rows = {}
  local function add(name, text) rows[#rows + 1] = { name, text } end
  local order, known = {}, {}
  for i, f in ipairs(VIEW_ORDER) do order[i], known[f] = f, true end
  local extra = {}
  for f in pairs(key) do if not known[f] and type(f) == "string" then extra[#extra + 1] = f end end
  sort(extra)
  for _, f in ipairs(extra) do order[#order + 1] = f end
  for _, f in ipairs(order) do
    local v = key[f]
    if f == "status" then
      add(f, M.status(v) .. " (" .. tostring(v) .. ")")
    elseif f == "key" then
      if v ~= nil then add(f, tostring(show_key and v or M.mask(v))) end
    elseif f == "expired_time" then
      add(f, v == -1 and "never (-1)" or (M.int(v) .. " (" .. M.time(v, true) .. ")"))
    elseif f == "created_time" or f == "accessed_time" then
      if v ~= nil then add(f, M.int(v) .. " (" .. M.time(v, true) .. ")") end
    elseif f == "allow_ips" then
      local entries = M.allowlist_entries(v)
      if #entries == 0 then add(f, "(no restriction)") end
      for i, e in ipairs(entries) do add(i == 1 and f or "", (e:gsub("%c", "?"))) end
    elseif f == "model_limits" then
      add(f, (v == nil or v == "") and "(none)" or (tostring(v):gsub("%c", "?")))
    elseif f == "remain_quota" and key.unlimited_quota == true then
      add(f, M.int(v) .. " (unlimited)")
    elseif type(v) == "string" then
      add(f, (v:gsub("%c", "?")))
    elseif type(v) == "number" or type(v) == "boolean" then
      add(f, M.int(v))
    end
  end
  local width = 0
  for _, r in ipairs(rows) do width = max(width, #r[1]) end
  local lines = {}
  for i, r in ipairs(rows) do lines[i] = M.pad(r[1], width) .. "  " .. r[2] end
  return concat(lines, "\n") .. "\n"
end

return M
