--- admin_update: the content handler of POST /admin/keys/<id> in
-- examples/openresty/nginx.conf. The body is a JSON object of the fields to change,
-- e.g. {"remain_quota": 500000, "expired_time": -1}; only those fields change.
-- Everything the caller can get wrong is answered 400 with every problem found,
-- before anything is sent to the API:
--   * not JSON, or not an object        -> {"error": "..."}
--   * values cometkey refuses           -> {"error": "invalid fields", "problems": [{"field","message"}]}
-- cometkey.validate returns the problems for bad values, but raises for a call it
-- cannot make sense of (e.g. a field table it cannot read), so it runs under pcall:
-- a raise is the caller's mistake too (400), never a 500 with a Lua traceback.
local cometkey = require "cometkey"
local cjson = require "cjson.safe"

local M = {}

local function reply(status, value)
  ngx.status = status -- luacheck: ignore 122
  ngx.header["Content-Type"] = "application/json" -- luacheck: ignore 122
  ngx.say(cjson.encode(value))
  return ngx.exit(status)
end

-- JSON null (cjson.null) becomes cometkey.null: a field sent as null.
local function fields_from(body)
  local fields = {}
  for k, v in pairs(body) do
    if v == cjson.null then v = cometkey.null end
    fields[k] = v
  end
  return fields
end

--- handle(id): reads the body, validates, updates, answers JSON
function M.handle(id)
  if ngx.req.get_method() ~= "POST" and ngx.req.get_method() ~= "PUT" then
    return ngx.exit(ngx.HTTP_NOT_ALLOWED)
  end
  ngx.req.read_body()
  local text = ngx.req.get_body_data()
  if not text then return reply(400, { error = "send the fields as a JSON object in the body" }) end
  local body = cjson.decode(text)
  if type(body) ~= "table" or body[1] ~= nil then
    return reply(400, { error = "the body must be a JSON object of fields, e.g. {\"remain_quota\": 500000}" })
  end
  if body.id ~= nil and body.id ~= id then
    return reply(400, { error = "the id is in the path; leave it out of the body" })
  end
  local fields = fields_from(body)
  fields.id = id

  -- Validation: problems come back as values; a raise (a call it cannot read) is caught too.
  local ok, valid, problems = pcall(cometkey.validate, fields, "update")
  if not ok then
    return reply(400, { error = tostring(valid):gsub("^[^:]*:%d+: ", "") })
  end
  if not valid then
    local list = {} -- never empty here: validate returned problems
    for i, p in ipairs(problems) do list[i] = { field = p.field, message = p.message } end
    return reply(400, { error = "invalid fields", problems = list })
  end

  local client = cometkey.new {
    token = os.getenv("COMETKEY_TOKEN"), base_url = os.getenv("COMETKEY_BASE_URL"),
    user_id = tonumber(os.getenv("COMETKEY_USER_ID") or ""),
  }
  local key, err, info = client:update(fields)
  if not key then
    ngx.log(ngx.ERR, err) -- one line, never the token
    local status = (info.kind == "not_found" and 404) or (info.kind == "invalid" and 400)
      or (info.kind == "conflict" and 409) or 502
    return reply(status, { error = err, kind = info.kind })
  end
  return reply(200, {
    id = key.id, name = key.name, status = key.status, remain_quota = key.remain_quota,
    unlimited_quota = key.unlimited_quota, expired_time = key.expired_time,
  })
end

return M
