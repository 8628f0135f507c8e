-- Stateful mock of CometAPI's token API (new-api server), run by nginx's Lua module in ONE
-- worker so all state lives in this module. Also: fault injection, an admin API under
-- /__mock/ and a constant benchmark endpoint under /__bench/.
-- See docs/server-behaviour.md for the behaviour reproduced here.
-- luacheck: globals ngx

local cjson = require "cjson.safe"
local json = require "json"
local sys = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "../sys.lua")

local M = {}

local null = json.null
local LOG_LIMIT = 10000
local LOG_BODY_LIMIT = 65536

-- Record fields in the order of new-api's model.Token.
local RECORD_ORDER = {
  "id", "user_id", "key", "status", "name", "created_time", "accessed_time", "expired_time",
  "remain_quota", "unlimited_quota", "model_limits_enabled", "model_limits", "allow_ips",
  "used_quota", "group", "cross_group_retry", "auto_groups", "DeletedAt",
}

-- Body fields decoded like Go's encoding/json into model.Token.
local TOKEN_FIELDS = {
  { name = "id", kind = "int", gotype = "int" },
  { name = "user_id", kind = "int", gotype = "int" },
  { name = "key", kind = "string" },
  { name = "status", kind = "int", gotype = "int" },
  { name = "name", kind = "string" },
  { name = "created_time", kind = "int", gotype = "int64" },
  { name = "accessed_time", kind = "int", gotype = "int64" },
  { name = "expired_time", kind = "int", gotype = "int64" },
  { name = "remain_quota", kind = "int", gotype = "int" },
  { name = "unlimited_quota", kind = "bool" },
  { name = "model_limits_enabled", kind = "bool" },
  { name = "model_limits", kind = "string" },
  { name = "allow_ips", kind = "strptr" },
  { name = "used_quota", kind = "int", gotype = "int" },
  { name = "group", kind = "string" },
  { name = "cross_group_retry", kind = "bool" },
  { name = "auto_groups", kind = "strings" },
}

local TEXTS = {
  en = {
    no_token = "Unauthorized, not logged in and no access token provided",
    bad_token = "Unauthorized, invalid access token",
    no_user = "Unauthorized, New-Api-User header not provided",
    bad_user = "Unauthorized, New-Api-User header format error",
    user_mismatch = "Unauthorized, New-Api-User does not match logged in user",
    name_long = "Token name is too long",
    quota_negative = "Quota value cannot be negative",
    quota_max = "Quota value exceeds valid range, maximum is %s",
    expired_enable = "Token has expired and cannot be enabled. Please modify the expiration time"
      .. " or set it to never expire",
    exhausted_enable = "Token quota is exhausted and cannot be enabled. Please modify the remaining"
      .. " quota or set it to unlimited",
    invalid_params = "Invalid parameters",
    batch_too_many = "Too many items in batch request, maximum is 100",
    role_low = "Unauthorized, insufficient privileges",
    pat_unauthorized = "Unauthorized, invalid or expired personal access token",
    pat_forbidden = "Forbidden, insufficient privilege",
  },
  zh = {
    no_token = "无权进行此操作，未登录且未提供 access token",
    bad_token = "无权进行此操作，access token 无效",
    no_user = "无权进行此操作，未提供 New-Api-User",
    bad_user = "无权进行此操作，New-Api-User 格式错误",
    user_mismatch = "无权进行此操作，New-Api-User 与登录用户不匹配",
    name_long = "令牌名称过长",
    quota_negative = "额度值不能为负数",
    quota_max = "额度值超出有效范围，最大值为 %s",
    expired_enable = "令牌已过期，无法启用，请先修改令牌过期时间，或者设置为永不过期",
    exhausted_enable = "令牌可用额度已用尽，无法启用，请先修改令牌剩余额度，或者设置为无限额度",
    invalid_params = "无效的参数",
    batch_too_many = "批量请求数量过多，最多 100 条",
    role_low = "无权进行此操作，权限不足",
    pat_unauthorized = "未授权，个人访问令牌无效或已过期",
    pat_forbidden = "禁止访问，权限不足",
  },
}

-- Texts that bypass i18n (Chinese in every build).
local MSG_ID_EMPTY = "id 或 userId 为空！"
local MSG_NOT_FOUND = "record not found"
local MSG_TOKEN_CAP = "已达到最大令牌数量限制 (%d)"
local MSG_SEARCH_DOUBLE = "搜索模式中不允许包含连续的 % 通配符"
local MSG_SEARCH_TOO_MANY = "搜索模式中最多允许包含 2 个 % 通配符"
local MSG_SEARCH_SHORT = "使用模糊搜索时，关键词长度至少为 2 个字符"
local MSG_SEARCH_CAPPED = "令牌数量超过上限，仅允许精确搜索，请勿使用 % 通配符"

-- Server builds the mock can be (config.server); the default is the newest upstream
-- behaviour (docs/server-2026.md). Each preset sets the switches below; a switch given
-- next to a preset overrides it.
--   "2025"     the 0.1 mock: full keys in every answer, no New-Api-User check, no limiter,
--              no reveal endpoints, cross_group_retry stored as sent
--   "2026-03"  keys masked, POST /api/token/:id/key, New-Api-User required, limiters
--              (no batch reveal yet, cross_group_retry stored as sent)
--   "2026-08"  (= "2026", the default) + POST /api/token/batch/keys, cross_group_retry
--              forced false for groups other than "auto", auto_groups
--   "pat"      2026-08 with personal-access-token auth: New-Api-User ignored, 401/403 with a code
local GLOBAL_LIMIT = { requests = 180, window = 180 }
local SEARCH_LIMIT = { requests = 10, window = 60 }
local CRITICAL_LIMIT = { requests = 20, window = 1200 }

local PRESET_2026_08 = {
  masked_keys = true, require_user_header = true, rate_limit = GLOBAL_LIMIT,
  search_rate_limit = SEARCH_LIMIT, critical_rate_limit = CRITICAL_LIMIT, reveal = true,
  batch_keys = true, cross_group_rule = true, auth = "access_token",
}
local PRESETS = {
  ["2025"] = {
    masked_keys = false, require_user_header = false, rate_limit = false,
    search_rate_limit = false, critical_rate_limit = false, reveal = false, batch_keys = false,
    cross_group_rule = false, auth = "access_token",
  },
  ["2026-03"] = {
    masked_keys = true, require_user_header = true, rate_limit = GLOBAL_LIMIT,
    search_rate_limit = SEARCH_LIMIT, critical_rate_limit = CRITICAL_LIMIT, reveal = true,
    batch_keys = false, cross_group_rule = false, auth = "access_token",
  },
  ["2026-08"] = PRESET_2026_08,
  ["2026"] = PRESET_2026_08,
  pat = {
    masked_keys = true, require_user_header = false, rate_limit = GLOBAL_LIMIT,
    search_rate_limit = SEARCH_LIMIT, critical_rate_limit = CRITICAL_LIMIT, reveal = true,
    batch_keys = true, cross_group_rule = true, auth = "pat",
  },
}

local CONFIG_DEFAULTS = {
  server = "2026",
  token = "mock-token-0123456789abcdef",
  user_id = 1,
  other_token = "mock-token-other-user",
  other_user_id = 2,
  forbidden_token = "mock-token-low-role",
  language = "en",
  search_style = "paged",
  max_tokens = 1000,
  quota_per_unit = 500000,
  display_in_currency = true,
}
for k, v in pairs(PRESET_2026_08) do
  CONFIG_DEFAULTS[k] = v
end

local FAULT_TYPES = {
  delay = true, reset = true, truncate = true, nonjson = true, html = true, status = true,
  ratelimit = true, slow_headers = true, slow_body = true, redirect = true, big = true,
  bad_utf8 = true, deep = true, dupkeys = true, chunked = true,
}

local JSON_TYPE = "application/json; charset=utf-8"
local ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

-- ------------------------------------------------------------------ state

local start = nil -- settings read at init: { config = {...}, keys = rows or nil, watch_pid }
local config, store, next_id, faults, request_log, stats, limiters
local seq = 0

local function copy(v)
  if type(v) ~= "table" then
    return v
  end
  local t = {}
  for k, x in pairs(v) do
    t[k] = copy(x)
  end
  return t
end

local function now()
  return ngx and ngx.time() or os.time()
end

local function random_string(n)
  local out = {}
  for i = 1, n do
    local r = math.random(1, #ALNUM)
    out[i] = ALNUM:sub(r, r)
  end
  return table.concat(out)
end

-- Deterministic 48-character key for seeded rows, so specs can rely on them.
local function seed_key(id)
  local out, x = {}, id * 7919 + 17
  for i = 1, 48 do
    x = (x * 1103515245 + 12345) % 2147483648
    local r = x % #ALNUM + 1
    out[i] = ALNUM:sub(r, r)
  end
  return table.concat(out)
end

local function default_seed(t)
  local day = 86400
  local rows = {
    { id = 1, name = "production", status = 1, expired_time = -1, remain_quota = 500000,
      used_quota = 12345, created_time = t - 30 * day, allow_ips = "" },
    { id = 2, name = "staging", status = 2, expired_time = -1, remain_quota = 0,
      unlimited_quota = true, created_time = t - 20 * day, allow_ips = null },
    { id = 3, name = "expired-key", status = 3, expired_time = t - day, remain_quota = 250000,
      created_time = t - 15 * day },
    { id = 4, name = "exhausted-key", status = 4, expired_time = -1, remain_quota = 0,
      used_quota = 1000000, created_time = t - 10 * day },
    { id = 5, name = "ci-runner", status = 1, expired_time = t + 30 * day, remain_quota = 1000000,
      model_limits_enabled = true, model_limits = "gpt-4o,claude-3-5-sonnet-20241022",
      allow_ips = "10.0.0.0/8\n192.168.1.10", group = "default", created_time = t - 5 * day },
    { id = 6, name = "big-budget", status = 1, expired_time = -1, remain_quota = 123456789012345,
      created_time = t - 2 * day },
    { id = 7, user_id = "other", name = "other-user-key", status = 1, expired_time = -1,
      remain_quota = 1000, created_time = t - day },
  }
  for _, row in ipairs(rows) do
    row.key = seed_key(row.id)
  end
  return rows
end

local ROW_DEFAULTS = {
  status = 1, name = "", expired_time = -1, remain_quota = 0, unlimited_quota = false,
  model_limits_enabled = false, model_limits = "", allow_ips = "", used_quota = 0, group = "",
  cross_group_retry = false,
}

-- The 1e9 x QuotaPerUnit maximum of a limited key's remain_quota.
local function max_quota()
  return math.floor(1e9 * config.quota_per_unit)
end

local ROW_TYPES = {
  id = "number", user_id = "number", key = "string", status = "number", name = "string",
  created_time = "number", accessed_time = "number", expired_time = "number",
  remain_quota = "number", unlimited_quota = "boolean", model_limits_enabled = "boolean",
  model_limits = "string", allow_ips = "string", used_quota = "number", group = "string",
  cross_group_retry = "boolean", deleted = "boolean", deleted_at = "number", DeletedAt = "number",
  auto_groups = "table",
}

-- Builds a stored row from an admin-supplied table, filling defaults; returns nil, err.
local function make_row(src, auto_id)
  if type(src) ~= "table" then
    return nil, "each row must be an object"
  end
  local row = {}
  for k, v in pairs(src) do
    local want = ROW_TYPES[k]
    if not want then
      return nil, "unknown row field '" .. tostring(k) .. "'"
    end
    if v ~= null and type(v) ~= want and not (k == "user_id" and v == "other") then
      return nil, "row field '" .. k .. "' must be a " .. want
    end
    if want == "number" and v ~= null and type(v) == "number" and v ~= math.floor(v) then
      return nil, "row field '" .. k .. "' must be an integer"
    end
    row[k] = v
  end
  if row.id == nil or row.id == null then
    row.id = auto_id
  end
  if row.user_id == nil or row.user_id == null then
    row.user_id = config.user_id
  elseif row.user_id == "other" then
    row.user_id = config.other_user_id
  end
  if row.key == nil or row.key == null then
    row.key = random_string(48)
  end
  if row.auto_groups == nil or row.auto_groups == null then
    row.auto_groups = {}
  end
  local t = now()
  row.created_time = (row.created_time ~= null and row.created_time) or t
  row.accessed_time = (row.accessed_time ~= null and row.accessed_time) or row.created_time
  for k, v in pairs(ROW_DEFAULTS) do
    if row[k] == nil or (row[k] == null and k ~= "allow_ips") then
      row[k] = v
    end
  end
  local deleted_at = row.deleted_at
  if deleted_at == null then
    deleted_at = nil
  end
  if deleted_at == nil and row.DeletedAt ~= nil and row.DeletedAt ~= null then
    deleted_at = row.DeletedAt
  end
  if deleted_at == nil and row.deleted then
    deleted_at = t
  end
  row.deleted, row.DeletedAt = nil, nil
  row.deleted_at = deleted_at
  return row
end

local function load_rows(rows)
  local new_store, ids = {}, {}
  local auto = 1
  for _, src in ipairs(rows) do
    if type(src) == "table" and type(src.id) == "number" and src.id >= auto then
      auto = src.id + 1
    end
  end
  for i, src in ipairs(rows) do
    local row, err = make_row(src, auto)
    if not row then
      return nil, "row " .. i .. ": " .. err
    end
    if row.id == auto then
      auto = auto + 1
    end
    if ids[row.id] then
      return nil, "row " .. i .. ": duplicate id " .. row.id
    end
    ids[row.id] = true
    new_store[#new_store + 1] = row
  end
  table.sort(new_store, function(a, b)
    return a.id < b.id
  end)
  local max_id = 0
  for _, row in ipairs(new_store) do
    if row.id > max_id then
      max_id = row.id
    end
  end
  return new_store, max_id + 1
end

local function clear_log()
  request_log = {}
  stats = { requests = 0, connections = 0, per_path = {}, per_route = {}, seen = {} }
end

local function reset()
  config = copy(start.config)
  faults = {}
  limiters = { global = {}, search = {}, critical = {} }
  clear_log()
  store, next_id = assert(load_rows(start.keys or default_seed(now())))
end

-- ------------------------------------------------------------------ helpers

local function text(key, ...)
  local lang = config.language
  if lang == "auto" then
    local accept = ngx.var.http_accept_language or ""
    lang = accept:lower():find("^%s*zh") and "zh" or "en"
  end
  local t = (TEXTS[lang] or TEXTS.en)[key]
  if select("#", ...) > 0 then
    return string.format(t, ...)
  end
  return t
end

-- Go's strconv.Quote, close enough for error messages.
local function go_quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' or c == "\\" then
      return "\\" .. c
    elseif c == "\n" then
      return "\\n"
    elseif c == "\t" then
      return "\\t"
    elseif c == "\r" then
      return "\\r"
    end
    return string.format("\\x%02x", c:byte())
  end) .. '"'
end

-- Go's strconv.Atoi: returns a number, or nil plus Go's error text.
local function go_atoi(s)
  if type(s) ~= "string" then
    s = ""
  end
  local sign, digits = s:match("^([+-]?)(%d+)$")
  if not digits then
    return nil, "strconv.Atoi: parsing " .. go_quote(s) .. ": invalid syntax"
  end
  local stripped = digits:gsub("^0+", "")
  local n = tonumber(digits)
  if #stripped > 19 or n >= 2 ^ 63 then
    return nil, "strconv.Atoi: parsing " .. go_quote(s) .. ": value out of range",
      sign == "-" and -2 ^ 63 or 2 ^ 63 - 1
  end
  return sign == "-" and -n or n
end

local function first_value(v)
  if type(v) == "table" then
    v = v[1]
  end
  if v == true or v == nil then
    return ""
  end
  return v
end

local function record(row, masked)
  local key = row.key
  if masked then
    if key == "" then
      key = ""
    elseif #key <= 4 then
      key = string.rep("*", #key)
    elseif #key <= 8 then
      key = key:sub(1, 2) .. "****" .. key:sub(-2)
    else
      key = key:sub(1, 4) .. "**********" .. key:sub(-4)
    end
  end
  return json.ordered({
    id = row.id, user_id = row.user_id, key = key, status = row.status, name = row.name,
    created_time = row.created_time, accessed_time = row.accessed_time,
    expired_time = row.expired_time, remain_quota = row.remain_quota,
    unlimited_quota = row.unlimited_quota, model_limits_enabled = row.model_limits_enabled,
    model_limits = row.model_limits, allow_ips = row.allow_ips, used_quota = row.used_quota,
    group = row.group, cross_group_retry = row.cross_group_retry, DeletedAt = null,
    auto_groups = config.cross_group_rule and json.array(copy(row.auto_groups or {})) or nil,
  }, RECORD_ORDER)
end

local function envelope(success, message, data, with_data)
  local t = { success = success, message = message }
  local order = { "success", "message" }
  if with_data then
    t.data = data == nil and null or data
    order[3] = "data"
  end
  return json.ordered(t, order)
end

local function json_response(status, value)
  return { status = status, headers = { ["Content-Type"] = JSON_TYPE }, body = json.encode(value) }
end

local function ok(data)
  return json_response(200, envelope(true, "", data, true))
end

local function ok_nodata()
  return json_response(200, envelope(true, ""))
end

local function fail(message, status)
  return json_response(status or 200, envelope(false, message))
end

local function find_row(id, user_id)
  for _, row in ipairs(store) do
    if row.id == id and row.user_id == user_id and not row.deleted_at then
      return row
    end
  end
  return nil
end

local function user_rows(user_id)
  local rows = {}
  for _, row in ipairs(store) do
    if row.user_id == user_id and not row.deleted_at then
      rows[#rows + 1] = row
    end
  end
  return rows
end

local function sort_desc(rows)
  table.sort(rows, function(a, b)
    return a.id > b.id
  end)
  return rows
end

-- common.GetPageQuery: p, page_size with ps/size fallbacks, default 10, cap 100.
local function page_query(args)
  local page = go_atoi(first_value(args.p)) or 0
  local size = go_atoi(first_value(args.page_size)) or 0
  if page == 0 then
    page = 1
  end
  if size == 0 then
    size = go_atoi(first_value(args.ps)) or 0
    if size == 0 then
      size = go_atoi(first_value(args.size)) or 0
    end
    if size == 0 then
      size = 10
    end
  end
  if size > 100 then
    size = 100
  end
  return page, size
end

-- GORM Limit/Offset: a negative limit means no LIMIT, a non-positive offset no OFFSET.
local function slice(rows, offset, limit)
  local out = {}
  local first = offset > 0 and offset + 1 or 1
  local last = limit >= 0 and first + limit - 1 or #rows
  for i = first, math.min(last, #rows) do
    out[#out + 1] = rows[i]
  end
  return out
end

local function records(rows)
  local out = json.array()
  for _, row in ipairs(rows) do
    out[#out + 1] = record(row, config.masked_keys)
  end
  return out
end

local function page_object(page, size, total, items)
  return json.ordered({ page = page, page_size = size, total = total, items = items },
    { "page", "page_size", "total", "items" })
end

-- ------------------------------------------------------------------ Go-like body decoding

local function json_kind_of_literal(raw, key, v)
  if type(v) == "string" then
    return "string"
  elseif type(v) == "boolean" then
    return "bool"
  elseif type(v) == "number" then
    return "number"
  end
  -- cjson decodes [] and {} alike: look at the raw text.
  local pos = raw:find('"' .. key .. '"', 1, true)
  local c = pos and raw:match("^%s*:%s*(.)", pos + #key + 2)
  if c == "[" then
    return "array"
  end
  if c == "{" then
    return "object"
  end
  return v[1] ~= nil and "array" or "object"
end

local function number_literal(raw, key, v)
  local pos = raw:find('"' .. key .. '"', 1, true)
  local lit = pos and raw:match("^%s*:%s*(-?[%d%.eE+%-]+)", pos + #key + 2)
  return lit or string.format("%.17g", v)
end

local function go_syntax_error(raw, err)
  local at = tonumber(tostring(err):match("at character (%d+)"))
  if tostring(err):find("T_END") or not at or at > #raw then
    return "unexpected EOF"
  end
  return "invalid character '" .. raw:sub(at, at) .. "' looking for beginning of value"
end

-- Decodes a request body into a model.Token the way Go's encoding/json does; returns the
-- token table (zero values for omitted fields) or nil plus Go's error text.
local function decode_token(raw)
  raw = raw or ""
  if raw:match("^%s*$") then
    return nil, "EOF"
  end
  local v, err = cjson.decode(raw)
  if v == nil then
    return nil, go_syntax_error(raw, err)
  end
  local token = {
    id = 0, user_id = 0, key = "", status = 0, name = "", created_time = 0, accessed_time = 0,
    expired_time = 0, remain_quota = 0, unlimited_quota = false, model_limits_enabled = false,
    model_limits = "", allow_ips = null, used_quota = 0, group = "", cross_group_retry = false,
  }
  if v == null then
    return token
  end
  local first = raw:match("^%s*(.)")
  if type(v) ~= "table" or first == "[" then
    local kind = first == "[" and "array" or json_kind_of_literal(raw, "", v)
    return nil, "json: cannot unmarshal " .. kind .. " into Go value of type model.Token"
  end
  -- Go matches keys case-insensitively (an exact match wins).
  local folded = {}
  for k, x in pairs(v) do
    if type(k) == "string" then
      local lk = k:lower()
      if folded[lk] == nil or k == lk then
        folded[lk] = { key = k, value = x }
      end
    end
  end
  local errors = {}
  for _, f in ipairs(TOKEN_FIELDS) do
    local entry = folded[f.name]
    if entry then
      local x, key = entry.value, entry.key
      local problem
      if x == null then
        if f.kind == "strptr" then
          token[f.name] = null
        end
      elseif f.kind == "int" then
        if type(x) ~= "number" then
          problem = json_kind_of_literal(raw, key, x)
        else
          local lit = number_literal(raw, key, x)
          if lit:find("[.eE]") or x ~= math.floor(x) or x >= 2 ^ 63 or x < -2 ^ 63 then
            problem = "number " .. lit
          else
            token[f.name] = x
          end
        end
      elseif f.kind == "bool" then
        if type(x) ~= "boolean" then
          problem = json_kind_of_literal(raw, key, x)
        else
          token[f.name] = x
        end
      elseif f.kind == "strings" then -- []string
        local kind = json_kind_of_literal(raw, key, x)
        if kind ~= "array" then
          problem = kind
        else
          local list = {}
          for i, item in ipairs(x) do
            if type(item) ~= "string" then
              problem = json_kind_of_literal(raw, "", item)
              break
            end
            list[i] = item
          end
          token[f.name] = list
        end
      else -- string, *string
        if type(x) ~= "string" then
          problem = json_kind_of_literal(raw, key, x)
        else
          token[f.name] = json.fix_utf8(x)
        end
      end
      if problem then
        local gotype = f.gotype or (f.kind == "bool" and "bool")
          or (f.kind == "strings" and "[]string") or "string"
        errors[#errors + 1] = {
          pos = raw:find('"' .. key .. '"', 1, true) or 0,
          text = "json: cannot unmarshal " .. problem .. " into Go struct field Token." .. f.name
            .. " of type " .. gotype,
        }
      end
    end
  end
  if #errors > 0 then
    table.sort(errors, function(a, b)
      return a.pos < b.pos
    end)
    return nil, errors[1].text
  end
  return token
end

-- ------------------------------------------------------------------ LIKE matching

-- Matches `s` against a SQL LIKE pattern (ASCII case-insensitive, like MySQL's default
-- collation). `escape` is the escape character or nil; `underscore` makes _ a wildcard.
local function like(s, pattern, escape, underscore)
  local parts, i, n = { "^" }, 1, #pattern
  while i <= n do
    local c = pattern:sub(i, i)
    local literal = true
    if escape and c == escape and i < n then
      i = i + 1
      c = pattern:sub(i, i)
    elseif c == "%" then
      parts[#parts + 1] = ".-"
      literal = false
    elseif c == "_" and underscore then
      parts[#parts + 1] = "[%z\1-\127\194-\244][\128-\191]*"
      literal = false
    end
    if literal then
      parts[#parts + 1] = c:match("%w") and c:lower() or "%" .. c
    end
    i = i + 1
  end
  parts[#parts + 1] = "$"
  return s:lower():find(table.concat(parts)) ~= nil
end

-- model.sanitizeLikePattern (2026-02+ builds).
local function sanitize_pattern(input)
  input = input:gsub("!", "!!"):gsub("_", "!_")
  if input:find("%%", 1, true) then
    return nil, MSG_SEARCH_DOUBLE
  end
  local _, count = input:gsub("%%", "")
  if count > 2 then
    return nil, MSG_SEARCH_TOO_MANY
  end
  if count > 0 and #input:gsub("%%", "") < 2 then
    return nil, MSG_SEARCH_SHORT
  end
  return input
end

-- ------------------------------------------------------------------ handlers

local handlers = {}

function handlers.list(ctx)
  local page, size = page_query(ctx.args)
  local rows = sort_desc(user_rows(ctx.user_id))
  local items = slice(rows, (page - 1) * size, size)
  return ok(page_object(page, size, #rows, records(items)))
end

function handlers.search(ctx)
  local keyword = first_value(ctx.args.keyword)
  local token = first_value(ctx.args.token)
  if config.search_style == "array" then
    -- Builds before 2026-02-06: bare array, LIKE %kw% on both columns, no order.
    if token ~= "" then
      token = token:gsub("^[sk%-]+", ""):gsub("[sk%-]+$", "")
    end
    local out = {}
    for _, row in ipairs(user_rows(ctx.user_id)) do
      if like(row.name, "%" .. keyword .. "%", nil, true)
        and like(row.key, "%" .. token .. "%", nil, true) then
        out[#out + 1] = row
      end
    end
    return ok(records(out))
  end
  local page, size = page_query(ctx.args)
  local offset, limit = (page - 1) * size, size
  if limit <= 0 or limit > 100 then
    limit = 100
  end
  if offset < 0 then
    offset = 0
  end
  if token ~= "" and token:sub(1, 3) == "sk-" then
    token = token:sub(4)
  end
  local rows = user_rows(ctx.user_id)
  if (keyword:find("%", 1, true) or token:find("%", 1, true)) and #rows > config.max_tokens then
    return fail(MSG_SEARCH_CAPPED)
  end
  local kw_pattern, tk_pattern, err
  if keyword ~= "" then
    kw_pattern, err = sanitize_pattern(keyword)
    if not kw_pattern then
      return fail(err)
    end
  end
  if token ~= "" then
    tk_pattern, err = sanitize_pattern(token)
    if not tk_pattern then
      return fail(err)
    end
  end
  local matched = {}
  for _, row in ipairs(rows) do
    if (not kw_pattern or like(row.name, kw_pattern, "!"))
      and (not tk_pattern or like(row.key, tk_pattern, "!")) then
      matched[#matched + 1] = row
    end
  end
  sort_desc(matched)
  return ok(page_object(page, size, #matched, records(slice(matched, offset, limit))))
end

-- The caller's live row named by the path's :id, or nil and the server's refusal.
local function param_row(ctx)
  local id, err = go_atoi(ctx.param)
  if not id then
    return nil, fail(err)
  end
  if id == 0 then
    return nil, fail(MSG_ID_EMPTY)
  end
  local row = find_row(id, ctx.user_id)
  if not row then
    return nil, fail(MSG_NOT_FOUND)
  end
  return row
end

function handlers.get(ctx)
  local row, refusal = param_row(ctx)
  if not row then
    return refusal
  end
  return ok(record(row, config.masked_keys))
end

function handlers.reveal(ctx)
  local row, refusal = param_row(ctx)
  if not row then
    return refusal
  end
  return ok(json.ordered({ key = row.key }, { "key" }))
end

local function check_name_and_quota(token)
  if #token.name > 50 then
    return text("name_long")
  end
  if not token.unlimited_quota then
    if token.remain_quota < 0 then
      return text("quota_negative")
    end
    if token.remain_quota > max_quota() then
      return text("quota_max", string.format("%d", max_quota()))
    end
  end
  return nil
end

-- The request body as a model.Token that passes the name and quota checks, or nil and the
-- server's refusal.
local function body_token(ctx)
  local token, err = decode_token(ctx.body)
  if not token then
    return nil, fail(err)
  end
  err = check_name_and_quota(token)
  if err then
    return nil, fail(err)
  end
  return token
end

function handlers.create(ctx)
  local token, refusal = body_token(ctx)
  if not token then
    return refusal
  end
  if #user_rows(ctx.user_id) >= config.max_tokens then
    return fail(string.format(MSG_TOKEN_CAP, config.max_tokens))
  end
  local t = now()
  local allow_ips = token.allow_ips
  if allow_ips == null then
    allow_ips = "" -- GORM column default
  end
  store[#store + 1] = {
    id = next_id, user_id = ctx.user_id, key = random_string(48), status = 1, name = token.name,
    created_time = t, accessed_time = t,
    expired_time = token.expired_time == 0 and -1 or token.expired_time,
    remain_quota = token.remain_quota, unlimited_quota = token.unlimited_quota,
    model_limits_enabled = token.model_limits_enabled, model_limits = token.model_limits,
    allow_ips = allow_ips, used_quota = 0, group = token.group,
    cross_group_retry = token.cross_group_retry, auto_groups = token.auto_groups or {},
  }
  local row = store[#store]
  if config.cross_group_rule and row.group ~= "auto" then
    -- PR #6590 (2026-08): only an "auto" key keeps cross_group_retry and auto_groups.
    row.cross_group_retry, row.auto_groups = false, {}
  end
  next_id = next_id + 1
  return ok_nodata()
end

function handlers.update(ctx)
  local status_only = first_value(ctx.args.status_only)
  local token, refusal = body_token(ctx)
  if not token then
    return refusal
  end
  if token.id == 0 then
    return fail(MSG_ID_EMPTY)
  end
  local row = find_row(token.id, ctx.user_id)
  if not row then
    return fail(MSG_NOT_FOUND)
  end
  if token.status == 1 then
    if row.status == 3 and row.expired_time <= now() and row.expired_time ~= -1 then
      return fail(text("expired_enable"))
    end
    if row.status == 4 and row.remain_quota <= 0 and not row.unlimited_quota then
      return fail(text("exhausted_enable"))
    end
  end
  if status_only ~= "" then
    row.status = token.status
  else
    row.name = token.name
    row.expired_time = token.expired_time
    row.remain_quota = token.remain_quota
    row.unlimited_quota = token.unlimited_quota
    row.model_limits_enabled = token.model_limits_enabled
    row.model_limits = token.model_limits
    row.allow_ips = token.allow_ips
    row.group = token.group
    row.cross_group_retry = token.cross_group_retry
    if config.cross_group_rule then
      if row.group ~= "auto" then
        row.cross_group_retry, row.auto_groups = false, {}
      elseif token.auto_groups then -- omitted: the stored value stays
        row.auto_groups = token.auto_groups
      end
    end
  end
  return ok(record(row, config.masked_keys))
end

function handlers.delete(ctx)
  local id = go_atoi(ctx.param)
  if not id then
    local _, _, clamped = go_atoi(ctx.param)
    id = clamped or 0
  end
  if id == 0 then
    return fail(MSG_ID_EMPTY)
  end
  local row = find_row(id, ctx.user_id)
  if not row then
    return fail(MSG_NOT_FOUND)
  end
  row.deleted_at = now()
  return ok_nodata()
end

local function decode_ids(raw)
  local v = cjson.decode(raw or "")
  if type(v) ~= "table" or type(v.ids) ~= "table" or #v.ids == 0 then
    return nil
  end
  for _, id in ipairs(v.ids) do
    if type(id) ~= "number" or id ~= math.floor(id) then
      return nil
    end
  end
  return v.ids
end

function handlers.batch_delete(ctx)
  local ids = decode_ids(ctx.body)
  if not ids then
    return fail(text("invalid_params"))
  end
  local count = 0
  for _, id in ipairs(ids) do
    local row = find_row(id, ctx.user_id)
    if row then
      row.deleted_at = now()
      count = count + 1
    end
  end
  return ok(count)
end

function handlers.batch_keys(ctx)
  local ids = decode_ids(ctx.body)
  if not ids then
    return fail(text("invalid_params"))
  end
  if #ids > 100 then
    return fail(text("batch_too_many"))
  end
  local keys = {}
  for _, id in ipairs(ids) do
    local row = find_row(id, ctx.user_id)
    if row then
      keys[string.format("%d", id)] = row.key
    end
  end
  return ok({ keys = keys })
end

-- GET /api/status (public): the settings a client needs, among new-api's many.
function handlers.status()
  return ok(json.ordered({
    version = "v0.0.0-mock", system_name = "cometkey mock", server = config.server,
    quota_per_unit = config.quota_per_unit, display_in_currency = config.display_in_currency,
    quota_display_type = config.display_in_currency and "USD" or "TOKENS",
  }, { "version", "system_name", "server", "quota_per_unit", "display_in_currency",
    "quota_display_type" }))
end

-- ------------------------------------------------------------------ routing

local function route(method, path)
  if path == "/api/status" and method == "GET" then
    return "status"
  end
  if path == "/api/token/" then
    local names = { GET = "list", POST = "create", PUT = "update" }
    return names[method]
  end
  if path == "/api/token/search" and method == "GET" then
    return "search"
  end
  if path == "/api/token/batch" and method == "POST" then
    return "batch_delete"
  end
  if path == "/api/token/batch/keys" and method == "POST" and config.batch_keys then
    return "batch_keys"
  end
  local id = path:match("^/api/token/([^/]+)$")
  if id then
    if method == "GET" then
      return "get", id
    elseif method == "DELETE" then
      return "delete", id
    end
    return nil
  end
  id = path:match("^/api/token/([^/]+)/key$")
  if id and method == "POST" and config.reveal then
    return "reveal", id
  end
  return nil
end

-- Gin's RedirectTrailingSlash: 301 for GET, 307 for other methods; query kept.
local function trailing_slash_redirect(method, path)
  local target
  if #path > 1 and path:sub(-1) == "/" then
    target = path:sub(1, -2)
  else
    target = path .. "/"
  end
  if not route(method, target) then
    return nil
  end
  local location = target
  if ngx.var.args and ngx.var.args ~= "" then
    location = location .. "?" .. ngx.var.args
  end
  local resp = { status = method == "GET" and 301 or 307, headers = { Location = location }, body = "" }
  if method == "GET" then
    resp.headers["Content-Type"] = "text/html; charset=utf-8"
    resp.body = '<a href="' .. location:gsub("&", "&amp;") .. '">Moved Permanently</a>.\n\n'
  end
  return resp
end

local function not_found(method)
  local err = json.ordered({
    message = "Invalid URL (" .. method .. " " .. ngx.var.request_uri .. ")",
    type = "invalid_request_error", param = "", code = "",
  }, { "message", "type", "param", "code" })
  return json_response(404, { error = err })
end

-- middleware.RateLimit's in-memory sliding window: allow while fewer than N requests were
-- allowed in the last `window` seconds; refused requests are not recorded.
local function limited(queue, limit)
  if not limit then
    return false
  end
  local t = ngx.now()
  if #queue < limit.requests then
    queue[#queue + 1] = t
    return false
  end
  if t - queue[1] >= limit.window then
    table.remove(queue, 1)
    queue[#queue + 1] = t
    return false
  end
  return true
end

local function too_many()
  return { status = 429, headers = {}, body = "" }
end

-- middleware.UserAuth with an access token: returns the user id or a response.
local function authenticate()
  local header = ngx.req.get_headers()["authorization"]
  if type(header) == "table" then
    header = header[1]
  end
  if (header == nil or header == "") and config.auth ~= "pat" then
    return nil, fail(text("no_token"), 401)
  end
  header = header or ""
  if config.auth == "pat" then
    -- Newest main: "<pat>" or "Bearer <pat>" (any case), New-Api-User ignored, failures
    -- 401/403 with a code.
    local pat = header:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(%S+)$") or header:match("^(%S+)$")
    local function refuse(status, code, key)
      local resp = json_response(status, json.ordered({ success = false, message = text(key), code = code },
        { "success", "message", "code" }))
      return nil, resp
    end
    if pat == config.token then
      return config.user_id
    elseif pat == config.other_token then
      return config.other_user_id
    elseif pat == config.forbidden_token then
      return refuse(403, "AUTH_INSUFFICIENT_PRIVILEGE", "pat_forbidden")
    end
    return refuse(401, "AUTH_UNAUTHORIZED", "pat_unauthorized")
  end
  local s, e = header:find("Bearer ", 1, true)
  local token = s and header:sub(1, s - 1) .. header:sub(e + 1) or header
  local user_id
  if token ~= "" and token == config.token then
    user_id = config.user_id
  elseif token ~= "" and token == config.other_token then
    user_id = config.other_user_id
  elseif token ~= "" and token == config.forbidden_token then
    user_id = -1 -- a user whose role is too low: refused after the New-Api-User check
  else
    return nil, fail(text("bad_token"))
  end
  if config.require_user_header then
    local value = ngx.req.get_headers()["new-api-user"]
    if type(value) == "table" then
      value = value[1]
    end
    if value == nil or value == "" then
      return nil, fail(text("no_user"), 401)
    end
    local n = go_atoi(value)
    if not n then
      return nil, fail(text("bad_user"), 401)
    end
    if n ~= user_id and user_id ~= -1 then
      return nil, fail(text("user_mismatch"), 401)
    end
  end
  if user_id == -1 then
    return nil, fail(text("role_low"))
  end
  return user_id
end

-- ------------------------------------------------------------------ faults

local function fault_matches(f, method, path)
  if not f.match or f.match == "" then
    return true
  end
  local m, prefix = f.match:match("^(%S+)%s+(%S+)$")
  if not m then
    if f.match:sub(1, 1) == "/" then
      m, prefix = "*", f.match
    else
      m, prefix = f.match, "/"
    end
  end
  if m ~= "*" and m:upper() ~= method then
    return false
  end
  return path:sub(1, #prefix) == prefix
end

local function take_fault(method, path)
  for i, f in ipairs(faults) do
    if fault_matches(f, method, path) then
      if f.count > 0 then
        f.count = f.count - 1
        if f.count == 0 then
          table.remove(faults, i)
        end
      end
      return f
    end
  end
  return nil
end

local function html_page(status)
  local reasons = { [500] = "Internal Server Error", [502] = "Bad Gateway",
    [503] = "Service Temporarily Unavailable", [504] = "Gateway Time-out" }
  local title = status .. " " .. (reasons[status] or "Error")
  return "<html>\r\n<head><title>" .. title .. "</title></head>\r\n<body>\r\n<center><h1>" .. title
    .. "</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
end

local function big_body(size)
  local head = '{"success":true,"message":"","data":{"page":1,"page_size":100,"total":1,"items":[],'
    .. '"padding":"'
  local tail = '"}}'
  local pad = size - #head - #tail
  if pad < 0 then
    pad = 0
  end
  return head, pad, tail
end

-- Responses produced by a fault instead of the handler; nil means "handle normally".
local function fault_response(f)
  local kind = f.type
  if kind == "nonjson" then
    return { status = f.status or 200, headers = { ["Content-Type"] = "text/plain; charset=utf-8" },
      body = f.body or "upstream says hi" }
  elseif kind == "html" then
    local status = f.status or 502
    return { status = status, headers = { ["Content-Type"] = "text/html" },
      body = f.body or html_page(status) }
  elseif kind == "status" then
    local headers = {}
    if f.body and f.body ~= "" then
      headers["Content-Type"] = f.content_type or JSON_TYPE
    end
    return { status = f.status or 500, headers = headers, body = f.body or "" }
  elseif kind == "ratelimit" then
    local headers = {}
    if f.retry_after ~= nil and f.retry_after ~= null then
      headers["Retry-After"] = tostring(f.retry_after)
    end
    return { status = 429, headers = headers, body = "" }
  elseif kind == "redirect" then
    local location = f.location or "https://attacker.invalid/api/token/"
    return { status = f.status or 301, headers = { Location = location,
      ["Content-Type"] = "text/html; charset=utf-8" },
      body = '<a href="' .. location .. '">Moved Permanently</a>.\n\n' }
  elseif kind == "deep" then
    local depth = f.depth or 10000
    local open, close, inner = "[", "]", ""
    if f.style == "object" then
      open, close, inner = '{"a":', "}", "1" -- the innermost member needs a value
    end
    return { status = 200, headers = { ["Content-Type"] = JSON_TYPE },
      body = '{"success":true,"message":"","data":' .. open:rep(depth) .. inner .. close:rep(depth) .. "}" }
  elseif kind == "big" then
    return { status = 200, headers = { ["Content-Type"] = JSON_TYPE }, big = f.bytes or 20 * 1048576 }
  end
  return nil
end

-- Mutations of a normal answer.
local function mutate(f, resp)
  if f.type == "bad_utf8" then
    local bad = "\255\254 bad \192\175 utf8"
    resp.body = resp.body:gsub('"message":"', '"message":"' .. bad, 1):gsub('"name":"', '"name":"' .. bad, 1)
  elseif f.type == "dupkeys" then
    local value = f.value
    if value == nil then
      value = not resp.body:find('^{"success":true')
    end
    resp.body = resp.body:gsub("}$", ',"success":' .. tostring(value) .. "}")
  end
  return resp
end

-- ------------------------------------------------------------------ writing responses

local function set_headers(resp)
  ngx.status = resp.status
  for k, v in pairs(resp.headers or {}) do
    ngx.header[k] = v
  end
end

local function send_big(resp)
  set_headers(resp)
  local head, pad, tail = big_body(resp.big)
  ngx.header["Content-Length"] = #head + pad + #tail
  ngx.print(head)
  local chunk = string.rep("a", 65536)
  while pad > 0 do
    local n = math.min(pad, #chunk)
    local okp = ngx.print(n == #chunk and chunk or chunk:sub(1, n))
    if not okp or not ngx.flush(true) then
      return ngx.exit(444)
    end
    pad = pad - n
  end
  ngx.print(tail)
end

local function send(resp, f)
  if resp.big then
    return send_big(resp)
  end
  set_headers(resp)
  local body = resp.body or ""
  local kind = f and f.type
  if kind == "chunked" then
    local pieces = f.chunks or 4
    local size = math.max(1, math.ceil(#body / pieces))
    for i = 1, #body, size do
      ngx.print(body:sub(i, i + size - 1))
      ngx.flush(true)
      if f.seconds then
        ngx.sleep(f.seconds)
      end
    end
    return
  end
  ngx.header["Content-Length"] = #body
  if kind == "truncate" then
    local sent = f.bytes or math.floor(#body / 2)
    ngx.print(body:sub(1, sent))
    ngx.flush(true)
    return ngx.exit(444)
  elseif kind == "slow_body" then
    local first = f.bytes or math.floor(#body / 2)
    ngx.print(body:sub(1, first))
    ngx.flush(true)
    ngx.sleep(f.seconds or 1)
    ngx.print(body:sub(first + 1))
    return
  end
  ngx.print(body)
end

-- ------------------------------------------------------------------ request ids, body

local function request_id()
  seq = seq + 1
  return os.date("!%Y%m%d%H%M%S") .. string.format("%06d", seq % 1000000) .. random_string(4)
end

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body == nil then
    local path = ngx.req.get_body_file()
    body = path and sys.read_file(path)
  end
  return body
end

-- ------------------------------------------------------------------ admin API

local function admin_error(message, status)
  return json_response(status or 400, { error = message })
end

local CONFIG_CHECKS = {
  token = "string", other_token = "string", require_user_header = "boolean",
  masked_keys = "boolean", language = "string", search_style = "string",
  rate_limit = "limit", search_rate_limit = "limit", critical_rate_limit = "limit",
  max_tokens = "number", user_id = "number", other_user_id = "number", server = "string",
  forbidden_token = "string", reveal = "boolean", batch_keys = "boolean",
  cross_group_rule = "boolean", auth = "string", quota_per_unit = "number",
  display_in_currency = "boolean",
}

local LIMITS = { rate_limit = true, search_rate_limit = true, critical_rate_limit = true }

local function apply_config(target, changes)
  if type(changes) ~= "table" then
    return nil, "config must be an object"
  end
  if changes.server ~= nil then -- the preset first; switches given with it override it
    local preset = PRESETS[changes.server]
    if not preset then
      return nil, "server must be '2025', '2026-03', '2026-08', '2026' or 'pat'"
    end
    for k, v in pairs(preset) do
      target[k] = v
    end
  end
  for k, v in pairs(changes) do
    local want = CONFIG_CHECKS[k]
    if not want then
      return nil, "unknown config field '" .. tostring(k) .. "'"
    end
    if want == "limit" then
      if v == false or v == null then
        v = false
      elseif type(v) ~= "table" or type(v.requests) ~= "number" or type(v.window) ~= "number"
        or v.requests < 1 or v.window <= 0 then
        return nil, k .. " must be false or { requests = N >= 1, window = seconds > 0 }"
      else
        v = { requests = v.requests, window = v.window }
      end
    elseif type(v) ~= want then
      return nil, "config field '" .. k .. "' must be a " .. want
    end
    if k == "language" and v ~= "en" and v ~= "zh" and v ~= "auto" then
      return nil, "language must be 'en', 'zh' or 'auto'"
    end
    if k == "search_style" and v ~= "paged" and v ~= "array" then
      return nil, "search_style must be 'paged' or 'array'"
    end
    if k == "auth" and v ~= "access_token" and v ~= "pat" then
      return nil, "auth must be 'access_token' or 'pat'"
    end
    if k == "quota_per_unit" and not (v > 0 and v < 1e12) then
      return nil, "quota_per_unit must be a positive number"
    end
    target[k] = v
  end
  return target
end

local function config_view()
  local out = {}
  for k, v in pairs(config) do
    out[k] = v == false and LIMITS[k] and null or v
  end
  return out
end

local function admin_rows()
  local out = json.array()
  for _, row in ipairs(store) do
    local r = record(row, false)
    r.DeletedAt = nil
    r.deleted = row.deleted_at ~= nil
    r.deleted_at = row.deleted_at or null
    out[#out + 1] = r
  end
  return out
end

local function normalise_fault(spec)
  if type(spec) ~= "table" or not FAULT_TYPES[spec.type] then
    return nil, "fault.type must be one of: delay, reset, truncate, nonjson, html, status, "
      .. "ratelimit, slow_headers, slow_body, redirect, big, bad_utf8, deep, dupkeys, chunked"
  end
  local f = {}
  for k, v in pairs(spec) do
    if v ~= null then
      f[k] = v
    end
  end
  f.count = f.count or 1
  if type(f.count) ~= "number" or f.count == 0 or f.count ~= math.floor(f.count) then
    return nil, "fault.count must be a positive integer or -1 (forever)"
  end
  if f.match ~= nil and type(f.match) ~= "string" then
    return nil, "fault.match must be a string like 'PUT /api/token/'"
  end
  for _, k in ipairs({ "seconds", "status", "bytes", "depth", "chunks" }) do
    if f[k] ~= nil and type(f[k]) ~= "number" then
      return nil, "fault." .. k .. " must be a number"
    end
  end
  if f.type == "status" and not f.status then
    return nil, "fault.status is required for type 'status'"
  end
  return f
end

local function faults_view()
  local out = json.array()
  for _, f in ipairs(faults) do
    out[#out + 1] = f
  end
  return out
end

local function admin(method, path, body)
  if path == "/__mock/reset" and method == "POST" then
    reset()
    return json_response(200, { ok = true })
  elseif path == "/__mock/keys" and method == "GET" then
    return json_response(200, admin_rows())
  elseif path == "/__mock/keys" and method == "PUT" then
    local rows = cjson.decode(body or "")
    if type(rows) ~= "table" then
      return admin_error("body must be a JSON array of rows")
    end
    local new_store, nid = load_rows(rows)
    if not new_store then
      return admin_error(nid)
    end
    store, next_id = new_store, nid
    return json_response(200, { ok = true, count = #store })
  elseif path == "/__mock/stats" and method == "GET" then
    return json_response(200, {
      requests = stats.requests, connections = stats.connections,
      per_path = stats.per_path, per_route = stats.per_route,
    })
  elseif path == "/__mock/requests" and method == "GET" then
    local out = json.array()
    for i, e in ipairs(request_log) do
      out[i] = e
    end
    return json_response(200, out)
  elseif path == "/__mock/requests" and method == "DELETE" then
    clear_log()
    return json_response(200, { ok = true })
  elseif path == "/__mock/config" and method == "GET" then
    return json_response(200, config_view())
  elseif path == "/__mock/config" and method == "POST" then
    local changes = cjson.decode(body or "")
    local candidate = copy(config)
    local okc, err = apply_config(candidate, changes)
    if not okc then
      return admin_error(err)
    end
    config = candidate
    limiters = { global = {}, search = {}, critical = {} }
    return json_response(200, config_view())
  elseif path == "/__mock/fault" and method == "POST" then
    local spec = cjson.decode(body or "")
    local list = (type(spec) == "table" and spec[1] ~= nil) and spec or { spec }
    local queued = {}
    for _, s in ipairs(list) do
      local f, err = normalise_fault(s)
      if not f then
        return admin_error(err)
      end
      queued[#queued + 1] = f
    end
    for _, f in ipairs(queued) do
      faults[#faults + 1] = f
    end
    return json_response(200, { ok = true, pending = #faults })
  elseif path == "/__mock/fault" and method == "GET" then
    return json_response(200, faults_view())
  elseif path == "/__mock/fault" and method == "DELETE" then
    faults = {}
    return json_response(200, { ok = true })
  end
  return admin_error("unknown admin endpoint " .. method .. " " .. path, 404)
end

-- ------------------------------------------------------------------ API requests

local function log_request(method, path, body)
  local headers = {}
  local auth_present = false
  for k, v in pairs(ngx.req.get_headers()) do
    if k == "authorization" then
      auth_present = true
      v = "<redacted>"
    end
    headers[k] = v
  end
  local entry = {
    seq = stats.requests + 1, time = ngx.now(), method = method, uri = path,
    query = ngx.var.args or "", args = ngx.req.get_uri_args(), headers = headers,
    auth_present = auth_present, body = body and body:sub(1, LOG_BODY_LIMIT) or null,
    body_length = body and #body or 0, connection = tonumber(ngx.var.connection),
    connection_requests = tonumber(ngx.var.connection_requests),
  }
  if #request_log >= LOG_LIMIT then
    table.remove(request_log, 1)
  end
  request_log[#request_log + 1] = entry
  stats.requests = stats.requests + 1
  stats.per_path[path] = (stats.per_path[path] or 0) + 1
  local key = method .. " " .. path
  stats.per_route[key] = (stats.per_route[key] or 0) + 1
  local conn = ngx.var.connection
  if not stats.seen[conn] then
    stats.seen[conn] = true
    stats.connections = stats.connections + 1
  end
  return entry
end

local function api(method, path, body)
  local entry = log_request(method, path, body)
  ngx.ctx.entry = entry
  local f = take_fault(method, path)
  if f then
    entry.fault = f.type
    if f.type == "reset" and not f.processed then
      return ngx.exit(444)
    end
    if f.type == "delay" or f.type == "slow_headers" then
      ngx.sleep(f.seconds or 1)
    end
    local resp = fault_response(f)
    if resp then
      return send(resp, f)
    end
  end
  local name, param = route(method, path)
  local resp
  if not name then
    resp = trailing_slash_redirect(method, path) or not_found(method)
  elseif limited(limiters.global, config.rate_limit) then
    resp = too_many()
  elseif name == "status" then
    resp = handlers.status()
  else
    local user_id, denied = authenticate()
    if not user_id then
      resp = denied
    elseif name == "search" and limited(limiters.search, config.search_rate_limit) then
      resp = too_many()
    elseif (name == "reveal" or name == "batch_keys")
      and limited(limiters.critical, config.critical_rate_limit) then
      resp = too_many()
    else
      resp = handlers[name]({ user_id = user_id, param = param, body = body,
        args = ngx.req.get_uri_args() })
    end
  end
  if f then
    if f.type == "reset" then
      return ngx.exit(444)
    end
    resp = mutate(f, resp)
  end
  return send(resp, f)
end

-- ------------------------------------------------------------------ nginx entry points

local bench_body

-- init_by_lua: reads the launcher's JSON settings file.
function M.init(path)
  local settings = assert(cjson.decode(assert(sys.read_file(path))), "mock: bad settings file " .. path)
  local cfg = copy(CONFIG_DEFAULTS)
  assert(apply_config(cfg, settings.config or {}))
  start = { config = cfg, keys = settings.keys ~= null and settings.keys or nil,
    watch_pid = settings.watch_pid, prefix = settings.prefix }
  math.randomseed(os.time())
  reset()
  local t = now()
  bench_body = json.encode(envelope(true, "", record({
    id = 1, user_id = 1, key = seed_key(1), status = 1, name = "bench", created_time = t,
    accessed_time = t, expired_time = -1, remain_quota = 500000, unlimited_quota = false,
    model_limits_enabled = false, model_limits = "", allow_ips = "", used_quota = 0, group = "",
    cross_group_retry = false,
  }, false), true))
end

-- init_worker_by_lua: seeds randomness; stops nginx when the launching process is gone.
function M.init_worker()
  math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
  local pid = start.watch_pid
  if type(pid) ~= "number" then
    return
  end
  ngx.timer.every(0.5, function(premature)
    if premature or sys.process_alive(pid) then
      return
    end
    local master = tonumber((sys.read_file(ngx.config.prefix() .. "/nginx.pid") or ""):match("%d+"))
    if start.prefix and start.prefix:match("^/tmp/cometkey%-mock%.") then
      sys.remove_dir(start.prefix)
    end
    if master then
      os.execute("kill -TERM " .. string.format("%d", master))
    end
  end)
end

-- content_by_lua for every location.
function M.handle()
  local method = ngx.req.get_method()
  local path = ngx.var.uri
  ngx.header["X-Oneapi-Request-Id"] = request_id()
  if path == "/__bench/token" and (method == "GET" or method == "PUT") then
    if method == "PUT" then
      ngx.req.discard_body()
    end
    ngx.header["Content-Type"] = JSON_TYPE
    ngx.header["Content-Length"] = #bench_body
    return ngx.print(bench_body)
  end
  local body = read_body()
  if path:sub(1, 8) == "/__mock/" then
    return send(admin(method, path, body))
  end
  return api(method, path, body)
end

-- log_by_lua: records the final status of logged API requests.
function M.log()
  local entry = ngx.ctx.entry
  if entry then
    entry.status = ngx.status
  end
end

-- Exposed for the mock's own specs of pure helpers.
M._like = like
M._decode_token = decode_token

return M
