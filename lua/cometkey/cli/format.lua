--- cometkey.cli.format: the readable output of bin/cometkey — the aligned key
-- table, the key/value view of one key, and the texts of times, statuses,
-- quotas and values. Pure Lua 5.1/5.4/LuaJIT, no I/O: every function returns text.
local type, ipairs, pairs, tostring, pcall = type, ipairs, pairs, tostring, pcall
local floor, max, abs = math.floor, math.max, math.abs
local format, rep, byte = string.format, string.rep, string.byte
local concat, sort = table.concat, table.sort

local M = {}

M.NAME_WIDTH = 32 -- widest name in the key table, in characters
M.KEY_COLUMNS = { "ID", "NAME", "STATUS", "QUOTA", "EXPIRES (UTC)", "IPS" }
-- core.status_names, loaded on first use: --help and --version run without the C modules.
local STATUS_NAME = setmetatable({}, { __index = function(t, k)
  for i, name in ipairs(require("cometkey.core").status_names) do rawset(t, i, name) end
  return rawget(t, k)
end })

function M.trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- Code points a terminal acts on or that reorder text: C1 controls and the bidi
-- marks, embeddings, overrides and isolates (U+061C, U+200E-F, U+202A-E, U+2066-9).
local function dangerous(cp)
  return (cp >= 0x80 and cp <= 0x9f) or cp == 0x061c or cp == 0x200e or cp == 0x200f
    or (cp >= 0x202a and cp <= 0x202e) or (cp >= 0x2066 and cp <= 0x2069)
end

--- safe(s) --> s with every control character (C0, DEL, C1), bidi control and invalid
-- UTF-8 byte written as a visible escape (\x1b, \u202e): server text printed for
-- people can neither drive the terminal nor reorder what is shown.
function M.safe(s)
  s = tostring(s)
  if not s:find("[%c\128-\255]") then return s end
  local parts, i, n = {}, 1, #s
  while i <= n do
    local c = byte(s, i)
    local len, cp = 0, nil
    if c < 0x80 then
      len, cp = 1, c
    elseif c >= 0xc2 and c <= 0xdf then
      len, cp = 2, c - 0xc0
    elseif c >= 0xe0 and c <= 0xef then
      len, cp = 3, c - 0xe0
    elseif c >= 0xf0 and c <= 0xf4 then
      len, cp = 4, c - 0xf0
    end
    local ok = len > 0 and i + len - 1 <= n
    for k = 1, len - 1 do
      local b = ok and byte(s, i + k)
      if not b or b < 0x80 or b > 0xbf then
        ok = false
        break
      end
      cp = cp * 64 + (b - 0x80)
    end
    if ok and ((len == 3 and cp < 0x800) or (len == 3 and cp >= 0xd800 and cp <= 0xdfff)
      or (len == 4 and (cp < 0x10000 or cp > 0x10ffff))) then
      ok = false
    end
    if not ok then
      parts[#parts + 1] = format("\\x%02x", c)
      i = i + 1
    else
      if cp < 0x20 or cp == 0x7f then
        parts[#parts + 1] = format("\\x%02x", cp)
      elseif dangerous(cp) then
        parts[#parts + 1] = format("\\u%04x", cp)
      else
        parts[#parts + 1] = s:sub(i, i + len - 1)
      end
      i = i + len
    end
  end
  return concat(parts)
end

-- ANSI colours of the status names (used only on a terminal without NO_COLOR).
local STATUS_COLOUR = { "32", "33", "31", "31" }

--- colour_status(text, status) --> text wrapped in the status's ANSI colour
function M.colour_status(text, status)
  local c = STATUS_COLOUR[status]
  if not c then return text end
  return "\27[" .. c .. "m" .. text .. "\27[0m"
end

--- width(s) --> characters (UTF-8 code points; a stray byte counts as one)
function M.width(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

--- truncate(s, width) --> s made safe (see safe), cut to width characters ending in "…"
function M.truncate(s, width)
  s = M.safe(s)
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

--- time(t [, seconds]) --> "never" for -1, "-" for none, else the UTC date and time, marked "UTC"
function M.time(t, seconds)
  if type(t) ~= "number" or t == 0 then return "-" end
  if t == -1 then return "never" end
  local ok, s = pcall(os.date, seconds and "!%Y-%m-%d %H:%M:%S UTC" or "!%Y-%m-%d %H:%M", t)
  return ok and s or M.int(t)
end

function M.status(s) return STATUS_NAME[s] or ("status " .. M.safe(s)) end

function M.quota(key)
  if key.unlimited_quota == true then return "unlimited" end
  return M.safe(M.int(key.remain_quota or 0))
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
  return M.safe('"' .. s:gsub('[%c"\\]', function(c) return ESCAPES[c] or format("\\u%04x", byte(c)) end) .. '"')
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
    M.safe(M.int(key.id)), M.truncate(type(key.name) == "string" and key.name or "", M.NAME_WIDTH),
    M.status(key.status), M.quota(key), M.safe(M.time(key.expired_time)),
    tostring(#M.allowlist_entries(key.allow_ips)),
  }
end

--- keys_table(keys [, colour]) --> the aligned table; statuses coloured when colour is true
function M.keys_table(keys, colour)
  local rows = {}
  for i, key in ipairs(keys) do rows[i] = M.key_row(key) end
  local text = M.table(rows, M.KEY_COLUMNS)
  if not colour then return text end
  local lines, i = {}, 0
  for line in text:gmatch("([^\n]*)\n") do
    local key = keys[i]
    if key and STATUS_NAME[key.status] then
      local name = STATUS_NAME[key.status]
      local a, b = line:find("  " .. name .. " ", 1, true)
      if a then line = line:sub(1, a + 1) .. M.colour_status(name, key.status) .. line:sub(b) end
    end
    lines[#lines + 1] = line
    i = i + 1
  end
  return concat(lines, "\n") .. "\n"
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
      add(f, M.status(v) .. " (" .. M.safe(v) .. ")")
    elseif f == "key" then
      if v ~= nil then add(f, M.safe(show_key and v or M.mask(v))) end
    elseif f == "expired_time" then
      add(f, v == -1 and "never (-1)" or M.safe(M.int(v) .. " (" .. M.time(v, true) .. ")"))
    elseif f == "created_time" or f == "accessed_time" then
      if v ~= nil then add(f, M.safe(M.int(v) .. " (" .. M.time(v, true) .. ")")) end
    elseif f == "allow_ips" then
      local entries = M.allowlist_entries(v)
      if #entries == 0 then add(f, "(no restriction)") end
      for i, e in ipairs(entries) do add(i == 1 and f or "", M.safe(e)) end
    elseif f == "model_limits" then
      add(f, (v == nil or v == "") and "(none)" or M.safe(v))
    elseif f == "remain_quota" and key.unlimited_quota == true then
      add(f, M.safe(M.int(v)) .. " (unlimited)")
    elseif type(v) == "string" then
      add(f, M.safe(v))
    elseif type(v) == "number" or type(v) == "boolean" then
      add(f, M.safe(M.int(v)))
    end
  end
  local width = 0
  for _, r in ipairs(rows) do width = max(width, M.width(M.safe(r[1]))) end
  local lines = {}
  for i, r in ipairs(rows) do lines[i] = M.pad(M.safe(r[1]), width) .. "  " .. r[2] end
  return concat(lines, "\n") .. "\n"
end

return M
