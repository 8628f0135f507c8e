--- cometkey.plan: how an update becomes requests, without any I/O. Merges the
-- named fields over the stored record (the server's PUT is a full replace),
-- checks that the result can be written back, orders status changes around the
-- field PUT, and describes the change as a field-by-field diff.
local core = require "cometkey.core"

local null = core.null
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format = string.format
local floor = math.floor

local M = {}

--- The nine fields a full PUT writes (everything else is ignored or status_only),
-- in wire order; the key schema is defined once, in C (src/ck_schema.c).
M.EDITABLE = core.fields

M.MAX_QUOTA = core.limits.quota_max

-- What an update echoes for a field the stored record lacks: the server's zero
-- values (not the create defaults: see ck_field_def in src/ck_schema.h).
local ZERO = core.echo_defaults

--- names_editable(fields) --> true when any of the nine editable fields is named
function M.names_editable(fields)
  for _, f in ipairs(M.EDITABLE) do
    if fields[f] ~= nil then return true end
  end
  return false
end

-- The value to echo for a field the caller did not name: exactly what is stored.
local function echo(stored, f)
  local v = stored[f]
  if f == "allow_ips" then
    if v == nil then return null end -- stored NULL stays NULL
    return v
  end
  if v == nil then return ZERO[f] end
  return v
end

local function conflict(message, field)
  return nil, "cometkey: PUT /api/token/: " .. message, { kind = "conflict", field = field, retryable = false }
end

-- The JSON type each editable field must have in a stored record for it to be
-- echoed: world data of another type (a float quota, group = true) is refused as
-- a decode problem instead of reaching the request builder.
-- JSON types from the key schema (core.field_types): quota and expiry are integers.
local KIND = {}
for f, t in pairs(core.field_types) do KIND[f] = (t == "quota" or t == "expiry") and "integer" or t end

local function is_integer(v)
  return type(v) == "number" and v == v and v > -2 ^ 63 and v < 2 ^ 63 and floor(v) == v
end

local function decode_problem(field, v, want)
  return nil, format("cometkey: GET /api/token/: the stored record's %s is %s (%s), not %s; "
    .. "nothing was written", field, type(v), tostring(v), want == "integer" and "an integer" or "a " .. want),
    { kind = "decode", field = field, retryable = false }
end

--- stored_problem(stored, id) --> nil | nil, message, info (kind decode) for a record that cannot be echoed
function M.stored_problem(stored, id)
  if type(stored) ~= "table" then return decode_problem("record", stored, "table") end
  if not is_integer(stored.id) or (id ~= nil and stored.id ~= id) then
    return decode_problem("id", stored.id, "integer")
  end
  return nil
end

--- merge(stored, fields) --> body | nil, message, info
-- body holds id and all nine editable fields; status is set by the caller.
function M.merge(stored, fields)
  local body = { id = stored.id }
  for _, f in ipairs(M.EDITABLE) do
    if fields[f] ~= nil then
      body[f] = fields[f]
    else
      local v = echo(stored, f)
      local want = KIND[f]
      if not (v == null and f == "allow_ips") then
        if (want == "integer" and not is_integer(v)) or (want ~= "integer" and type(v) ~= want) then
          return decode_problem(f, v, want)
        end
      end
      body[f] = v
    end
  end
  -- What the server would refuse, or what would silently break the key, when echoed.
  if body.unlimited_quota ~= true then
    local q = body.remain_quota
    if type(q) ~= "number" or q < 0 then
      return conflict(format("remain_quota: the stored remaining quota is %s on a limited key and the server "
        .. "refuses to write it back; set remain_quota (0..%d) or unlimited_quota = true in this update",
        tostring(q), M.MAX_QUOTA), "remain_quota")
    end
    if q > M.MAX_QUOTA then
      return conflict(format("remain_quota: the stored remaining quota %s is above the server's maximum %d; "
        .. "set remain_quota or unlimited_quota = true in this update", tostring(q), M.MAX_QUOTA), "remain_quota")
    end
  end
  if body.model_limits_enabled == true and (body.model_limits == "" or body.model_limits == null) then
    local named = fields.model_limits ~= nil and "model_limits" or "model_limits_enabled"
    return conflict("model_limits: model_limits_enabled would be true with no models, which blocks every "
      .. "model; set model_limits to the allowed models or model_limits_enabled = false", named)
  end
  if type(body.name) == "string" and #body.name > 50 then
    return conflict("name: the stored name is longer than 50 bytes and the server refuses to write it back; "
      .. "set name in this update", "name")
  end
  return body
end

local function same(a, b)
  if a == b then return true end
  if (a == nil or a == null or a == "") and (b == nil or b == null or b == "") then return true end
  return false
end

--- diff(stored, fields) --> { field = { from = old, to = new }, ... } for the fields that change
function M.diff(stored, fields)
  local d = {}
  for _, f in ipairs(M.EDITABLE) do
    local to = fields[f]
    if to ~= nil and not same(stored[f], to) then
      d[f] = { from = stored[f] == nil and null or stored[f], to = to }
    end
  end
  if fields.status ~= nil and fields.status ~= stored.status then
    d.status = { from = stored.status, to = fields.status }
  end
  return d
end

--- mismatch(stored, expect) --> field, expected, actual for the first expectation that fails
function M.mismatch(stored, expect)
  local names = {}
  for f in pairs(expect) do names[#names + 1] = f end
  table.sort(names)
  for _, f in ipairs(names) do
    local have = stored[f]
    if (f == "allow_ips" or f == "model_limits") and type(have) == "string" then
      -- Compare normalised forms: "10.1.2.3/8" and "10.0.0.0/8" are the same list.
      local normalized = core.check({ [f] = have }, "expect")
      if normalized then have = normalized[f] end
    end
    if not same(have, expect[f]) then return f, expect[f], stored[f] end
  end
end

--- steps(stored_status, target_status) --> "before" | "after" | nil
-- Disabling (or marking expired/exhausted) goes before the field PUT, so access
-- is cut first; enabling goes after it, so a new expiry or quota lands first and
-- the server's enable guard sees it.
function M.status_step(stored_status, target)
  if target == nil or target == stored_status then return nil end
  if target == 1 then return "after" end
  return "before"
end

local function status_req(id, status)
  return { op = "status", body = { id = id, status = status } }
end

--- update(stored, fields [, opts]) --> requests | nil, message, info
-- The exact requests an update sends, in order: { { op = "status"|"update", body = {...} }, ... }.
-- stored: the current record, or nil when the update needs no read (status only, replace);
-- fields: normalised fields (id required); opts: { replace = bool }. No I/O.
-- A stored record that cannot be written back unchanged: nil, message, info (kind conflict,
-- or decode for a field of an unexpected type).
function M.update(stored, fields, opts)
  local replace = opts and opts.replace
  local id, target = fields.id, fields.status
  if stored ~= nil then
    local _, message, info = M.stored_problem(stored, id)
    if message then return nil, message, info end
  end
  local reqs = {}
  if replace or M.names_editable(fields) then
    local body
    if replace then
      body = { id = id }
      for _, f in ipairs(M.EDITABLE) do body[f] = fields[f] end
    else
      if stored == nil then error("cometkey.plan.update: a field update needs the stored record", 2) end
      local message, info
      body, message, info = M.merge(stored, fields)
      if not body then return nil, message, info end
    end
    local current = stored and stored.status
    local when
    if target ~= nil then
      if stored then when = M.status_step(current, target) else when = target == 1 and "after" or "before" end
    end
    if when == "before" then
      reqs[#reqs + 1] = status_req(id, target)
      current = target
    end
    -- The full PUT echoes the stored status (never 1 for a stored 3/4, which
    -- would trip the server's enable guard); without a read, no status is sent.
    -- A stored status outside 1..4 (status_only accepts any integer) is left
    -- out too: the server never writes a full PUT's status.
    if type(current) == "number" and current >= 1 and current <= 4 and floor(current) == current then
      body.status = current
    end
    reqs[#reqs + 1] = { op = "update", body = body }
    if when == "after" then reqs[#reqs + 1] = status_req(id, target) end
  elseif target ~= nil then
    reqs[#reqs + 1] = status_req(id, target)
  end
  return reqs
end

--- needs_read(fields, opts) --> true when planning this update needs the stored record
function M.needs_read(fields, opts)
  opts = opts or {}
  return (opts.dry_run or opts.expect or (not opts.replace and M.names_editable(fields))) and true or false
end

return M
