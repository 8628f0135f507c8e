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

-- One API request of operation op with args, through the retry loop.
function Client:_send(ctx, op, args)
  return call.perform(self, ctx, op, core.request(op, args, self.request_conf))
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

--- search{ keyword = ..., token = ..., page, page_size } [, callback] --> array of keys | nil, message, info
function Client:search(args, callback)
  self:_open("search", 2)
  if type(args) == "string" then args = { keyword = args } end
  if type(args) ~= "table" then raise("search", "arguments must be a table or a keyword string", 2) end
  for k, v in pairs(args) do
    if k == "keyword" or k == "token" then
      if type(v) ~= "string" then raise("search", k .. " must be a string", 2) end
    elseif k ~= "page" and k ~= "page_size" then
      raise("search", "unknown argument '" .. tostring(k) .. "'", 2)
    end
  end
  if args.keyword == nil and args.token == nil then raise("search", "give a keyword or a token to search for", 2) end
  local page, size = paging("search", args, 2)
  check_callback("search", callback, 2)
  return call.run(self, callback, function(ctx)
    local result, message, info = self:_send(ctx, "search",
      { keyword = args.keyword, token = args.token, page = page, page_size = size })
    if not result then return nil, message, info end
    return result.items
  end)
end

--- each([filter]) --> iterator over every key, newest first (raises on failure)
-- filter: nil, a function(key) -> boolean, or a table of field = value to match.
function Client:each(filter)
  self:_open("each", 2)
  if filter ~= nil and type(filter) ~= "function" and type(filter) ~= "table" then
    raise("each", "filter must be a function or a table of field = value", 2)
  end
  local match = filter
  if type(filter) == "table" then
    local want = checked("each", filter, "expect", 2)
    match = function(key) return plan.mismatch(key, want) == nil end
  end
  local page, items, i, seen, done = 0, {}, 0, {}, false
  return function()
    while true do
      i = i + 1
      local key = items[i]
      if key == nil then
        if done then return nil end
        page = page + 1
        local result, message = self:list { page = page, page_size = 100 }
        if not result then error(message, 2) end
        items, i = result.items, 0
        done = #items < 100 or page * 100 >= (result.total or 0)
        if #items == 0 then return nil end
      elseif not seen[key.id] then -- keys created meanwhile shift pages: skip repeats
        seen[key.id] = true
        if match == nil or match(key) then return key end
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
  if normalized.status == nil and not plan.names_editable(normalized) and not expect and not opts.dry_run then
    raise("update", "nothing to update: give status or at least one of the nine editable fields", level)
  end
  local need_read = plan.needs_read(normalized, opts)
  local replace = { replace = opts.replace }

  -- check -> read if needed -> expect -> plan -> dry-run or apply
  return function(ctx, stored)
    local message, info
    local want = normalized
    if self._quota_units then -- remain_quota_usd -> units (the server's quota_per_unit)
      want, message, info = self:_quota_units(ctx, normalized)
      if not want then return nil, message, info end
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

--- close() -- closes connections and wipes the token; idempotent.
function Client:close()
  if self.closed then return end
  self.closed = true
  self.transport:close()
  self.conf.secret:wipe()
end

Client.__close = Client.close
Client.__gc = Client.close

return Client
