--- cometkey.client: the client object. Each method validates its arguments
-- (raising on programmer errors before anything is sent), then runs through
-- cometkey.call, synchronously or with a trailing callback.
local core = require "cometkey.core"
local call = require "cometkey.call"
local errors = require "cometkey.errors"
local plan = require "cometkey.plan"
local transports = require "cometkey.transport.auto"

local error, type, pairs, ipairs, tostring, setmetatable = error, type, pairs, ipairs, tostring, setmetatable
local floor = math.floor
local format = string.format

local Client = {}
Client.__index = Client

-- Raises "cometkey.<method>: <message>" at level (see cometkey.errors.raise; extra:
-- data kept with the error, such as the validation problems).
local function raise(method, message, level, extra)
  errors.raise(method, message, (level or 1) + 1, extra)
end

-- Validates fields in mode, raising at the caller's level with every problem;
-- what names the argument in messages ("fields" unless given).
local function checked(method, fields, mode, level, what)
  if type(fields) ~= "table" then
    raise(method, (what or "fields") .. " must be a table, got " .. type(fields), level + 1)
  end
  local normalized, problems = core.check(fields, mode)
  if not normalized then
    raise(method, (what and (what .. ": ") or "") .. errors.problem_text(problems), level + 1,
      { problems = problems, argument = what or "fields" })
  end
  return normalized
end

-- A value shown on one line in a message: strings quoted, control characters escaped.
local ESCAPES = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ['"'] = '\\"', ["\\"] = "\\\\" }
local function shown(v)
  if v == nil or v == core.null then return "null" end
  if type(v) ~= "string" then return tostring(v) end
  return '"' .. (v:gsub('[%c"\\]', function(ch) return ESCAPES[ch] or format("\\%03d", ch:byte()) end)) .. '"'
end

local function check_id(method, id, level)
  if type(id) ~= "number" or id <= 0 or floor(id) ~= id then
    raise(method, "id must be a positive integer, got " .. tostring(id), level + 1)
  end
end

local function check_callback(method, callback, level)
  if callback ~= nil and type(callback) ~= "function" then
    raise(method, "callback must be a function", level + 1)
  end
end

function Client.new(conf)
  local self = setmetatable({ conf = conf, closed = false }, Client)
  self.transport = transports.open(conf)
  self.sync_ctx = call.context(self.transport, "sync")
  self.pace = require("cometkey.pace").new(conf.rate_limit) -- one budget for every call
  self.pace.timeout = conf.timeout
  self.request_conf = { user_agent = conf.user_agent, user_id = conf.user_id }
  if not conf.verify then
    transports.warn_once(conf, "cometkey: TLS verification is disabled (verify = false): "
      .. "anyone on the path can read the access token")
  end
  return self
end

function Client:__tostring()
  return "cometkey.client (" .. self.conf.base_url .. ", " .. self.transport.name
    .. (self.closed and ", closed)" or ")")
end

function Client:_open(method, level)
  if self.closed then raise(method, "client is closed", level + 1) end
end

-- The server's 401 for a missing, malformed or foreign New-Api-User, and what to do.
local USER_ID_HINT = " (set user_id, your numeric user id, in cometkey.new: it is sent as New-Api-User;"
  .. " command line: --user-id or COMETAPI_USER_ID)"

-- One API request of operation op with args, through the retry loop.
function Client:_send(ctx, op, args)
  local value, message, info = call.perform(self, ctx, op, core.request(op, args, self.request_conf))
  if value == nil and type(info) == "table" and info.kind == "auth" and type(info.message) == "string"
    and info.message:find("New-Api-User", 1, true) then
    message = message .. USER_ID_HINT
  end
  return value, message, info
end

--- get(id [, callback]) --> key | nil, message, info
function Client:get(id, callback)
  self:_open("get", 2)
  check_id("get", id, 2)
  check_callback("get", callback, 2)
  return call.run(self, callback, function(ctx) return self:_send(ctx, "get", { id = id }) end)
end

local function paging(method, args, level)
  local page, size = args.page or 1, args.page_size or 100
  if type(page) ~= "number" or page < 1 or floor(page) ~= page then
    raise(method, "page must be an integer >= 1", level + 1)
  end
  if type(size) ~= "number" or size < 1 or size > 100 or floor(size) ~= size then
    raise(method, "page_size must be an integer from 1 to 100 (the server caps pages at 100)", level + 1)
  end
  return page, size
end

--- list{ page = 1, page_size = 100 } [, callback] --> { items, total, page, page_size } | nil, message, info
function Client:list(args, callback)
  self:_open("list", 2)
  if type(args) == "function" then args, callback = nil, args end
  args = args or {}
  if type(args) ~= "table" then raise("list", "arguments must be a table", 2) end
  for k in pairs(args) do
    if k ~= "page" and k ~= "page_size" then raise("list", "unknown argument '" .. tostring(k) .. "'", 2) end
  end
  local page, size = paging("list", args, 2)
  check_callback("list", callback, 2)
  return call.run(self, callback, function(ctx)
    return self:_send(ctx, "list", { page = page, page_size = size })
  end)
end

-- The search arguments of args checked (keyword and/or token, page, page_size); other
-- keys are refused unless rest is a table, which then receives them.
local function search_args(method, args, level, rest)
  for k, v in pairs(args) do
    if k == "keyword" or k == "token" then
      if type(v) ~= "string" then raise(method, k .. " must be a string", level + 1) end
    elseif k ~= "page" and k ~= "page_size" then
      if not rest then raise(method, "unknown argument '" .. tostring(k) .. "'", level + 1) end
      rest[k] = v
    end
  end
end

--- search{ keyword = ..., token = ..., page, page_size } [, callback]
-- --> { items, total, page, page_size } | nil, message, info
-- (0.1 returned the items array; old servers' bare arrays come back as one page)
function Client:search(args, callback)
  self:_open("search", 2)
  if type(args) == "string" then args = { keyword = args } end
  if type(args) ~= "table" then raise("search", "arguments must be a table or a keyword string", 2) end
  search_args("search", args, 2)
  if args.keyword == nil and args.token == nil then raise("search", "give a keyword or a token to search for", 2) end
  local page, size = paging("search", args, 2)
  check_callback("search", callback, 2)
  return call.run(self, callback, function(ctx)
    return self:_send(ctx, "search", { keyword = args.keyword, token = args.token, page = page, page_size = size })
  end)
end

--- each([filter] [, callback]) --> iterator over every key, newest first (raises on failure)
-- filter: nil, a function(key) -> boolean, a table of field = value to match, or
-- { keyword = ..., token = ... } (with or without field = value): pages through
-- search results instead of the whole list. With a callback (async hosts):
-- callback(nil, key) per key, then callback(nil, nil) once at the end, or
-- callback(err, nil, info) once if a page cannot be read; returns nothing.
function Client:each(filter, callback)
  self:_open("each", 2)
  if filter ~= nil and type(filter) ~= "function" and type(filter) ~= "table" then
    raise("each", "filter must be a function, a table of field = value, or { keyword =, token = }", 2)
  end
  check_callback("each", callback, 2)
  if self.transport.async_only and callback == nil then
    raise("each", "the \"" .. self.transport.name .. "\" transport is callback-only (it never blocks its "
      .. "host): pass a callback as the last argument; nothing was sent", 2)
  end
  local match, op, query = filter, "list", {}
  if type(filter) == "table" then
    local fields = {}
    search_args("each", filter, 2, fields)
    if filter.page ~= nil or filter.page_size ~= nil then raise("each", "page and page_size are not filters", 2) end
    if filter.keyword ~= nil or filter.token ~= nil then
      op, query = "search", { keyword = filter.keyword, token = filter.token }
    end
    match = nil
    if next(fields) ~= nil then
      local want = checked("each", fields, "expect", 2)
      match = function(key) return plan.mismatch(key, want) == nil end
    end
  end
  -- One page of the listing: items and whether it was the last one.
  local function read(ctx, page)
    local args = { keyword = query.keyword, token = query.token, page = page, page_size = 100 }
    local result, message, info = self:_send(ctx, op, args)
    if not result then return nil, message, info end
    local items = result.items
    -- old servers' bare search arrays are one page of any size (page_size = #items)
    return items, #items < 100 or page * 100 >= (result.total or 0) or result.page_size ~= 100
  end
  local seen = {} -- keys created meanwhile shift pages: skip repeats
  local function wanted(key)
    if seen[key.id] then return false end
    seen[key.id] = true
    return match == nil or match(key)
  end
  if callback then
    call.run(self, function(err, _, info)
      if err then callback(err, nil, info) else callback(nil, nil) end
    end, function(ctx)
      local page, done = 0, false
      while not done do
        page = page + 1
        local items, last, info = read(ctx, page)
        if not items then return nil, last, info end
        for _, key in ipairs(items) do
          if wanted(key) then callback(nil, key) end
        end
        done = last or #items == 0
      end
      return true
    end)
    return
  end
  local page, items, i, done = 0, {}, 0, false
  return function()
    while true do
      i = i + 1
      local key = items[i]
      if key == nil then
        if done then return nil end
        page = page + 1
        local last, message
        items, message = read(self.sync_ctx, page)
        if not items then error(message, 2) end
        last = message
        i, done = 0, last
        if #items == 0 then return nil end
      elseif wanted(key) then
        return key
      end
    end
  end
end

--- delete(id [, callback]) --> true | nil, message, info
function Client:delete(id, callback)
  self:_open("delete", 2)
  check_id("delete", id, 2)
  check_callback("delete", callback, 2)
  return call.run(self, callback, function(ctx) return self:_send(ctx, "delete", { id = id }) end)
end

-- After a create, find the new record: the newest key (highest id) whose name
-- and settings are what was sent.
local function find_created(self, ctx, fields)
  local page, message, info = self:_send(ctx, "list", { page = 1, page_size = 100 })
  if not page then
    -- Say so: a caller who retries the create would make a second key.
    info.created = true
    return nil, message .. " (the key was created; reading it back failed)", info
  end
  local best
  for _, key in ipairs(page.items) do
    if key.name == fields.name and plan.mismatch(key, fields) == nil then
      if best == nil or key.id > best.id then best = key end
    end
  end
  if not best then
    return nil, "cometkey: POST /api/token/: the key was created but could not be found in the newest 100 keys",
      { kind = "not_found", retryable = false, created = true }
  end
  return best
end

--- create(fields [, callback]) --> key (the created record) | nil, message, info
function Client:create(fields, callback)
  self:_open("create", 2)
  local normalized = checked("create", fields, "create", 2)
  if normalized.model_limits_enabled == true and (normalized.model_limits or "") == "" then
    raise("create", "model_limits: model_limits_enabled = true with no models would block every model", 2)
  end
  check_callback("create", callback, 2)
  return call.run(self, callback, function(ctx)
    local converted, why, why_info = self:_quota_units(ctx, normalized) -- remain_quota_usd
    if not converted then return nil, why, why_info end
    local status = normalized.status
    local sent = {}
    for k, v in pairs(normalized) do if k ~= "status" then sent[k] = v end end
    local ok, message, info = self:_send(ctx, "create", { fields = sent })
    if not ok then return nil, message, info end
    local expected = {}
    for k, v in pairs(sent) do expected[k] = v end
    if expected.expired_time == nil then expected.expired_time = -1 end
    local key
    key, message, info = find_created(self, ctx, expected)
    if not key then return nil, message, info end
    if status ~= nil and status ~= key.status then
      local result
      result, message, info = self:_send(ctx, "status", { id = key.id, status = status })
      if not result then
        info.created, info.id = true, key.id
        return nil, message .. " (the key was created as id " .. tostring(key.id) .. " with status "
          .. tostring(key.status) .. ")", info
      end
      return result
    end
    return key
  end)
end

local UPDATE_OPTS = { replace = true, dry_run = true, expect = true }
local NO_OPTS = {} -- update without opts (only ever read)

-- Runs planned requests in order; returns the last result.
local function apply(self, ctx, reqs)
  local result, message, info
  for n, req in ipairs(reqs) do
    result, message, info = self:_send(ctx, req.op, req.op == "update" and { fields = req.body } or req.body)
    if not result then
      if n > 1 then
        info.applied = n - 1
        message = message .. " (after " .. (n - 1) .. " of " .. #reqs .. " requests had been applied)"
      end
      return nil, message, info
    end
  end
  return result
end

local function describe(self, reqs)
  local out = {}
  for i, req in ipairs(reqs) do
    local built = core.request(req.op, req.op == "update" and { fields = req.body } or req.body, self.request_conf)
    out[i] = { method = built.method, path = built.path, query = built.query, body = built.body }
  end
  return out
end

-- Checks one update (raising at `level` with every problem). Returns the
-- function that performs it given a ctx (and, optionally, the stored record
-- already read, e.g. from a list page), and whether it needs the stored record;
-- shared by update, update_many and update_where.
function Client:_update_fn(fields, opts, level)
  level = level + 1
  opts = opts or NO_OPTS
  if type(opts) ~= "table" then raise("update", "opts must be a table", level) end
  for k in pairs(opts) do
    if not UPDATE_OPTS[k] then raise("update", "unknown option '" .. tostring(k) .. "'", level) end
  end
  local normalized = checked("update", fields, opts.replace and "replace" or "update", level)
  local expect
  if opts.expect ~= nil then expect = checked("update", opts.expect, "expect", level, "opts.expect") end
  if opts.replace and normalized.model_limits_enabled == true and normalized.model_limits == "" then
    raise("update", "model_limits: model_limits_enabled = true with no models would block every model", level)
  end
  local id = normalized.id
  if normalized.status == nil and not plan.names_editable(normalized) and normalized.remain_quota_usd == nil
    and not expect and not opts.dry_run then
    raise("update", "nothing to update: give status or at least one of the nine editable fields", level)
  end
  local need_read = plan.needs_read(normalized, opts)
    or (normalized.remain_quota_usd ~= nil and not opts.replace)
  local replace = { replace = opts.replace }

  -- check -> read if needed -> expect -> plan -> dry-run or apply
  return function(ctx, stored)
    local message, info
    local want, conversion = normalized, nil
    if normalized.remain_quota_usd ~= nil or normalized.remain_quota ~= nil then
      -- remain_quota_usd -> units (the server's quota_per_unit), maximum checked first
      local converted
      converted, message, info = self:_quota_units(ctx, normalized)
      if not converted then return nil, message, info end
      if converted ~= true then conversion = converted end
    end
    if need_read and stored == nil then
      stored, message, info = self:_send(ctx, "get", { id = id })
      if not stored then return nil, message, info end
    end
    if not need_read then stored = nil end
    if expect then
      local bad
      bad, message, info = plan.stored_problem(stored, id)
      if message then return bad, message, info end
      local field, value, have = plan.mismatch(stored, expect)
      if field then
        return nil, "cometkey: PUT /api/token/: expectation failed: " .. field .. " is " .. shown(have)
          .. ", expected " .. shown(value) .. " (the key changed since it was read)",
          { kind = "conflict", field = field, expected = value, actual = have, retryable = false }
      end
    end
    -- cross_group_retry = true on a key whose stored group is not "auto": 2026-08+ servers
    -- would store false (validation refuses it when group is named).
    if stored and normalized.cross_group_retry == true and normalized.group == nil and stored.group ~= "auto" then
      return nil, "cometkey: PUT /api/token/: cross_group_retry: true needs group \"auto\", and the key's group is "
        .. shown(stored.group) .. " (servers from 2026-08 store false); set group = \"auto\" in this update",
        { kind = "conflict", field = "cross_group_retry", retryable = false }
    end
    local reqs
    reqs, message, info = plan.update(stored, want, replace)
    if not reqs then return nil, message, info end
    if opts.dry_run then
      return {
        dry_run = true,
        id = id,
        requests = describe(self, reqs),
        diff = stored and plan.diff(stored, want) or {},
        current = stored,
        remain_quota_usd = conversion, -- { usd, units, quota_per_unit, rounded_down }
      }
    end
    if #reqs == 0 then return stored end
    return apply(self, ctx, reqs)
  end, need_read, id
end

--- update(fields [, opts] [, callback]) --> key | nil, message, info
-- opts: replace (one PUT of all nine fields), dry_run (return the plan), expect (stored values).
function Client:update(fields, opts, callback)
  self:_open("update", 2)
  if type(opts) == "function" and callback == nil then opts, callback = nil, opts end
  local fn = self:_update_fn(fields, opts, 2)
  check_callback("update", callback, 2)
  return call.run(self, callback, fn)
end

--- update_many(list [, opts] [, callback]) --> results; see cometkey/bulk.lua
-- opts: concurrency, on_progress(done, total, eta_seconds), on_result(i, result),
-- keep_results (false: return { ok = n, failed = n }), replace, dry_run.
function Client:update_many(list, opts, callback)
  self:_open("update_many", 2)
  if self.transport.async_only and callback == nil and type(opts) ~= "function" then
    raise("update_many", "the \"" .. self.transport.name .. "\" transport is callback-only (it never blocks its "
      .. "host): pass a callback as the last argument; nothing was sent", 2)
  end
  -- Not a tail call: bulk raises at a level counted through this frame.
  local results = require("cometkey.bulk").update_many(self, list, opts, callback, 2)
  return results
end

--- update_where(filter, fields [, opts] [, callback]) --> results as update_many
-- One pass over the list (or, with keyword/token, search) pages, then one PUT per
-- matching key: no per-key GET.
function Client:update_where(filter, fields, opts, callback)
  self:_open("update_where", 2)
  local results, message, info = require("cometkey.bulk").update_where(self, filter, fields, opts, callback, 2)
  return results, message, info
end

-- ------------------------------------------------------------------ 2026 servers
-- Revealing keys (list/get/search/update answers carry key[:4] .. "**********" .. key[-4:]
-- on servers from 2026-03), batch delete, the server's settings and USD quotas.

local IDS_MAX = 10000 -- ids in one call: more is almost surely a mistake (and minutes of requests)
local BATCH = 100     -- the server's batch limit (reveal_many, delete_many)

-- Checks an id list: an array of 1..IDS_MAX positive integers. Duplicates are merged
-- silently (the first occurrence keeps its place). Returns the merged array.
local function id_list(method, ids, level)
  if type(ids) ~= "table" then raise(method, "ids must be an array of key ids, got " .. type(ids), level + 1) end
  local n, count = #ids, 0
  for _ in pairs(ids) do count = count + 1 end
  if count ~= n then raise(method, "ids must be an array (keys 1..n), got a table with other keys", level + 1) end
  if n == 0 then raise(method, "ids must not be empty", level + 1) end
  if n > IDS_MAX then
    raise(method, format("ids: at most %d ids in one call, got %d (split the work)", IDS_MAX, n), level + 1)
  end
  local out, seen = {}, {}
  for i = 1, n do
    local id = ids[i]
    if type(id) ~= "number" or id <= 0 or floor(id) ~= id or id >= 2 ^ 63 then
      raise(method, format("ids[%d] must be a positive integer key id, got %s", i, shown(id)), level + 1)
    end
    if not seen[id] then
      seen[id] = true
      out[#out + 1] = id
    end
  end
  return out
end

-- ids[from .. from + BATCH - 1]
local function chunk(ids, from)
  local out = {}
  for i = from, math.min(from + BATCH - 1, #ids) do out[#out + 1] = ids[i] end
  return out
end

-- A reveal that the server does not route: builds before 2026-03 (batch: before 2026-04).
local function missing_endpoint(info)
  -- a bare 404 (no such route) has kind "http"; "not_found" is kept for builds that answer JSON
  return type(info) == "table" and info.status == 404 and (info.kind == "http" or info.kind == "not_found")
end

local NO_REVEAL = " (this server has no reveal endpoint: builds before 2026-03 send the full key"
  .. " in every list/get answer)"

--- reveal(id [, callback]) --> the full key | nil, message, info
-- POST /api/token/{id}/key. The key is a secret: it never appears in a message.
function Client:reveal(id, callback)
  self:_open("reveal", 2)
  check_id("reveal", id, 2)
  check_callback("reveal", callback, 2)
  return call.run(self, callback, function(ctx)
    local key, message, info = self:_send(ctx, "reveal", { id = id })
    if key == nil and missing_endpoint(info) then message = message .. NO_REVEAL end
    return key, message, info
  end)
end

--- reveal_many(ids [, callback]) --> { [id] = key, ... } | nil, message, info
-- POST /api/token/batch/keys, 100 ids a request. Ids the caller does not own (or that do
-- not exist) are absent from the result, as the server omits them. On a 2026-03 build
-- without the batch endpoint it falls back to one reveal per id.
function Client:reveal_many(ids, callback)
  self:_open("reveal_many", 2)
  ids = id_list("reveal_many", ids, 2)
  check_callback("reveal_many", callback, 2)
  return call.run(self, callback, function(ctx)
    local keys = {}
    for from = 1, #ids, BATCH do
      local got, message, info = self:_send(ctx, "reveal_many", { ids = chunk(ids, from) })
      if got == nil and from == 1 and missing_endpoint(info) then
        for _, id in ipairs(ids) do
          local key
          key, message, info = self:_send(ctx, "reveal", { id = id })
          if key then
            keys[id] = key
          elseif missing_endpoint(info) then
            return nil, message .. NO_REVEAL, info
          elseif info.kind ~= "not_found" then
            return nil, message, info
          end
        end
        return keys
      end
      if got == nil then
        if from > 1 then
          info.revealed = from - 1
          message = message .. format(" (after %d of %d ids had been revealed)", from - 1, #ids)
        end
        return nil, message, info
      end
      for id, key in pairs(got) do keys[id] = key end
    end
    return keys
  end)
end

--- delete_many(ids [, callback]) --> number deleted | nil, message, info
-- One POST /api/token/batch {"ids":[...]} per 100 ids (never one DELETE per id). The count
-- is what the server deleted: ids of other users or already deleted ones are skipped by
-- the server. Not retried (a resend would count 0). On a failure after some batches,
-- info.deleted holds the count so far.
function Client:delete_many(ids, callback)
  self:_open("delete_many", 2)
  ids = id_list("delete_many", ids, 2)
  check_callback("delete_many", callback, 2)
  return call.run(self, callback, function(ctx)
    local deleted, batches = 0, math.ceil(#ids / BATCH)
    for n = 1, batches do
      local count, message, info = self:_send(ctx, "delete_many", { ids = chunk(ids, (n - 1) * BATCH + 1) })
      if count == nil then
        info.deleted = deleted
        if n > 1 then
          info.applied = n - 1
          message = message .. format(" (after %d of %d batch requests had deleted %d keys)", n - 1, batches,
            deleted)
        end
        return nil, message, info
      end
      deleted = deleted + count
    end
    return deleted
  end)
end

-- The settings (read once per client), or nil, message, info.
function Client:_settings(ctx)
  if self.settings_cache then return self.settings_cache end
  local settings, message, info = self:_send(ctx, "settings", {})
  if settings == nil then return nil, message, info end
  self.settings_cache = settings
  return settings
end

--- server_settings([callback]) --> { quota_per_unit = 500000, display_in_currency = ..., ... }
-- GET /api/status (public), read once per client and cached.
function Client:server_settings(callback)
  self:_open("server_settings", 2)
  check_callback("server_settings", callback, 2)
  return call.run(self, callback, function(ctx) return self:_settings(ctx) end)
end

local MAX_EXACT = 2 ^ 53

--- _quota_units(ctx, normalized) --> conversion | true | nil, message, info
-- The hook update, create, update_many and update_where call before sending: converts
-- normalized.remain_quota_usd (validated: finite, 0..1e9) into normalized.remain_quota
-- units with the server's quota_per_unit (read on first use), checks the server's maximum
-- 1e9 x quota_per_unit before anything else is sent, and returns
-- { usd, units, quota_per_unit, rounded_down } (an amount that is not a whole number of
-- units is rounded down). true when there is nothing to convert.
function Client:_quota_units(ctx, normalized)
  local usd = normalized.remain_quota_usd
  if usd == nil then
    -- remain_quota in units: checked against a known quota_per_unit (no request for it)
    local q, cached = normalized.remain_quota, self.settings_cache
    local per = cached and cached.quota_per_unit
    if type(q) == "number" and normalized.unlimited_quota ~= true and type(per) == "number" and per > 0
      and q > floor(1e9 * per) then
      error(format("cometkey: remain_quota: %.0f is above this server's maximum %.0f (1e9 x quota_per_unit %s);"
        .. " nothing was written", q, floor(1e9 * per), tostring(per)), 2)
    end
    return true
  end
  local settings, message, info = self:_settings(ctx)
  if not settings then
    return nil, message .. " (needed to convert remain_quota_usd)", info
  end
  local per = settings.quota_per_unit
  if type(per) ~= "number" or per ~= per or per <= 0 or per == math.huge then
    return nil, "cometkey: GET /api/status: quota_per_unit is " .. shown(per) .. ", not a positive number: "
      .. "remain_quota_usd cannot be converted (give remain_quota in quota units)",
      { kind = "decode", retryable = false }
  end
  local exact = usd * per
  local whole = floor(exact + 0.5)
  local units, rounded = whole, false
  if math.abs(exact - whole) > 1e-9 * math.max(1, exact) then
    units, rounded = floor(exact), true
  end
  local max = floor(1e9 * per)
  if (normalized.unlimited_quota ~= true and units > max) or units >= MAX_EXACT then
    error(format("cometkey: remain_quota_usd: %s USD is %.0f quota units, above the server's maximum %.0f "
      .. "(1e9 x quota_per_unit %s); nothing was written", tostring(usd), units, max, tostring(per)), 2)
  end
  units = math.tointeger and math.tointeger(units) or units
  normalized.remain_quota, normalized.remain_quota_usd = units, nil
  return { usd = usd, units = units, quota_per_unit = per, rounded_down = rounded }
end

--- close() -- closes connections and wipes the token; idempotent.
--- close() -- closes connections and wipes the token; idempotent. A call still
-- running (async, or a yielded synchronous one) keeps the token for redaction
-- until it ends; cometkey.call wipes it then, and sends nothing more.
function Client:close()
  if self.closed then return end
  self.closed = true
  self.transport:close()
  if (self.busy or 0) <= 0 then self.conf.secret:wipe() end
end

Client.__close = Client.close
Client.__gc = Client.close

return Client
