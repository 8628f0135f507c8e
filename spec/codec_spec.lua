-- core.request (the request builder) and core.response (the response mapper), the latter on
-- hand-written fixtures in spec/fixtures/ that reproduce what the server sends.
local core = require "cometkey.core"

local has_integers = math.type ~= nil and math.type(1) == "integer"

local fixture_dir = (debug.getinfo(1, "S").source:match("^@(.*)[/\\][^/\\]*$") or "spec") .. "/fixtures/"

local function fixture(name)
  local f = assert(io.open(fixture_dir .. name, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function is_integer(v)
  if has_integers then return math.type(v) == "integer" end
  return type(v) == "number" and v % 1 == 0
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- the body of a request, decoded back
local function body_of(req)
  assert.is_string(req.body)
  local value, err = core.json_decode(req.body)
  assert.is_nil(err)
  return value
end

local function nine(overrides)
  local t = {
    name = "production", expired_time = -1, remain_quota = 100000, unlimited_quota = false,
    model_limits_enabled = false, model_limits = "", allow_ips = "", group = "",
    cross_group_retry = false,
  }
  for k, v in pairs(overrides or {}) do t[k] = v end
  return t
end

-- core.response on a fixture or a literal body
local function respond(op, status, body, headers, request)
  return core.response(op, { status = status, body = body, headers = headers or {}, request = request })
end

local GET_5 = { method = "GET", path = "/api/token/5" }
local PUT = { method = "PUT", path = "/api/token/" }
local LIST = { method = "GET", path = "/api/token/" }

-- a failure must be nil, a one-line string and an info table of the given kind
local function failed(kind, value, message, info)
  assert.is_nil(value)
  assert.is_string(message)
  assert.is_nil(message:find("[\r\n%z]"))
  assert.is_truthy(core.json_encode(message)) -- valid UTF-8
  assert.matches("^cometkey: ", message)
  assert.is_table(info)
  assert.are.equal(kind, info.kind, message)
  assert.is_true(is_integer(info.status))
  assert.is_boolean(info.retryable)
  return message, info
end

describe("core.request", function()
  local standard = {
    Accept = "application/json", ["Accept-Language"] = "en", ["User-Agent"] = "cometkey/" .. core.version,
  }

  it("get: GET /api/token/<id>, no body, no query, no Authorization", function()
    local req = core.request("get", { id = 5 })
    assert.are.equal("GET", req.method)
    assert.are.equal("/api/token/5", req.path)
    assert.is_nil(req.query)
    assert.is_nil(req.body)
    assert.are.same(standard, req.headers)
  end)

  it("get and delete keep a 15-digit id exact in the path", function()
    assert.are.equal("/api/token/123456789012345", core.request("get", { id = 123456789012345 }).path)
  end)

  for _, bad in ipairs({ 0, -1, 1.5, "5", false }) do
    it("get refuses the id " .. tostring(bad), function()
      assert.has_error(function() core.request("get", { id = bad }) end)
    end)
  end

  it("get refuses a missing id, a missing args table and an unknown op", function()
    assert.has_error(function() core.request("get", {}) end)
    assert.has_error(function() core.request("get") end)
    assert.has_error(function() core.request("fetch", { id = 1 }) end)
  end)

  it("list: GET /api/token/ with p and page_size (defaults 1 and 100)", function()
    local req = core.request("list", {})
    assert.are.equal("GET", req.method)
    assert.are.equal("/api/token/", req.path)
    assert.are.equal("p=1&page_size=100", req.query)
    assert.is_nil(req.body)
    assert.are.equal("p=3&page_size=20", core.request("list", { page = 3, page_size = 20 }).query)
    assert.are.equal("p=1&page_size=100", core.request("list").query)
  end)

  for _, bad in ipairs({ { page = 0 }, { page_size = 0 }, { page_size = 101 }, { page = "2" }, { page_size = 1.5 } }) do
    it("list refuses page " .. tostring(bad.page) .. " / page_size " .. tostring(bad.page_size), function()
      assert.has_error(function() core.request("list", bad) end)
    end)
  end

  it("search: GET /api/token/search with encoded filters and paging", function()
    local req = core.request("search", { keyword = "prod %key/é", token = "sk-ab", page = 2, page_size = 10 })
    assert.are.equal("GET", req.method)
    assert.are.equal("/api/token/search", req.path)
    assert.are.equal("keyword=prod%20%25key%2F%C3%A9&token=sk-ab&p=2&page_size=10", req.query)
    assert.are.equal("token=a.b_c~d&p=1&page_size=100", core.request("search", { token = "a.b_c~d" }).query)
    assert.are.equal("keyword=&p=1&page_size=100", core.request("search", { keyword = "" }).query)
    assert.are.equal("p=1&page_size=100", core.request("search", {}).query)
    assert.has_error(function() core.request("search", { keyword = 5 }) end)
  end)

  it("create: POST /api/token/ with all nine editable fields, defaults for absent ones", function()
    local req = core.request("create", { fields = { name = "ci", remain_quota = 500 } })
    assert.are.equal("POST", req.method)
    assert.are.equal("/api/token/", req.path)
    assert.is_nil(req.query)
    assert.are.equal("application/json", req.headers["Content-Type"])
    assert.are.same(nine({ name = "ci", remain_quota = 500 }), body_of(req))
    assert.are.same(nine({ name = "" , remain_quota = 0 }), body_of(core.request("create", { fields = {} })))
  end)

  it("create refuses fields the server would ignore, and wrong types", function()
    assert.has_error(function() core.request("create", { fields = { name = "a", status = 2 } }) end)
    assert.has_error(function() core.request("create", { fields = { name = "a", id = 2 } }) end)
    assert.has_error(function() core.request("create", { fields = { name = "a", stauts = 2 } }) end)
    assert.has_error(function() core.request("create", { fields = { name = 5 } }) end)
    assert.has_error(function() core.request("create", { fields = { unlimited_quota = 1 } }) end)
    assert.has_error(function() core.request("create", { fields = { expired_time = 0 } }) end)
    assert.has_error(function() core.request("create", { fields = { remain_quota = 1.5 } }) end)
    assert.has_error(function() core.request("create", {}) end)
  end)

  it("update: PUT /api/token/ with id, status and all nine fields, 15-digit quota exact", function()
    local fields = nine({ id = 1234, status = 3, remain_quota = 123456789012345 })
    local req = core.request("update", { fields = fields })
    assert.are.equal("PUT", req.method)
    assert.are.equal("/api/token/", req.path)
    assert.is_nil(req.query)
    local body = body_of(req)
    assert.are.same(fields, body)
    assert.are.equal(11, count_keys(body))
    assert.truthy(req.body:find('"remain_quota":123456789012345', 1, true))
    assert.truthy(req.body:find('"allow_ips":""', 1, true))
  end)

  it("update may leave status out: the body then carries none (no enable guard, nothing copied)", function()
    local fields = nine({ id = 1 })
    local body = body_of(core.request("update", { fields = fields }))
    assert.is_nil(body.status)
    assert.are.equal(10, count_keys(body))
  end)

  it("update echoes a stored NULL allowlist as JSON null and a stored expiry of 0", function()
    local fields = nine({ id = 1, status = 2, allow_ips = core.null, expired_time = 0 })
    local req = core.request("update", { fields = fields })
    assert.truthy(req.body:find('"allow_ips":null', 1, true))
    assert.truthy(req.body:find('"expired_time":0', 1, true))
  end)

  for _, missing in ipairs({ "id", "name", "expired_time", "remain_quota", "unlimited_quota",
                             "model_limits_enabled", "model_limits", "allow_ips", "group", "cross_group_retry" }) do
    it("update raises naming the missing " .. missing .. " (the full-replace guard)", function()
      local fields = nine({ id = 1, status = 1 })
      fields[missing] = nil
      local ok, err = pcall(core.request, "update", { fields = fields })
      assert.is_false(ok)
      assert.matches("fields." .. missing .. " is required", err, 1, true)
    end)
  end

  it("update refuses a bad status and unknown fields", function()
    assert.has_error(function() core.request("update", { fields = nine({ id = 1, status = 5 }) }) end)
    assert.has_error(function() core.request("update", { fields = nine({ id = 1, status = "enabled" }) }) end)
    assert.has_error(function() core.request("update", { fields = nine({ id = 1, status = 1, key = "x" }) }) end)
  end)

  it("update refuses text that is not UTF-8 (JSON cannot carry it)", function()
    assert.has_error(function() core.request("update", { fields = nine({ id = 1, status = 1, name = "\255" }) }) end)
  end)

  it("status: PUT /api/token/?status_only=1 with only id and status", function()
    local req = core.request("status", { id = 77, status = 2 })
    assert.are.equal("PUT", req.method)
    assert.are.equal("/api/token/", req.path)
    assert.are.equal("status_only=1", req.query)
    assert.are.same({ id = 77, status = 2 }, body_of(req))
    assert.are.equal('{"id":77,"status":2}', req.body)
    assert.are.equal("application/json", req.headers["Content-Type"])
    assert.has_error(function() core.request("status", { id = 77, status = 0 }) end)
    assert.has_error(function() core.request("status", { id = 77 }) end)
  end)

  it("delete: DELETE /api/token/<id>", function()
    local req = core.request("delete", { id = 9 })
    assert.are.equal("DELETE", req.method)
    assert.are.equal("/api/token/9", req.path)
    assert.is_nil(req.body)
    assert.is_nil(req.headers["Content-Type"])
  end)

  it("reveal: POST /api/token/<id>/key, no body", function()
    local req = core.request("reveal", { id = 123456789012345 })
    assert.are.equal("POST", req.method)
    assert.are.equal("/api/token/123456789012345/key", req.path)
    assert.is_nil(req.query)
    assert.is_nil(req.body)
    assert.has_error(function() core.request("reveal", {}) end)
    assert.has_error(function() core.request("reveal", { id = 0 }) end)
  end)

  it("reveal_many and delete_many: POST a batch of ids as {\"ids\":[...]}", function()
    for op, path in pairs({ reveal_many = "/api/token/batch/keys", delete_many = "/api/token/batch" }) do
      local req = core.request(op, { ids = { 3, 1, 123456789012345 } })
      assert.are.equal("POST", req.method)
      assert.are.equal(path, req.path)
      assert.is_nil(req.query)
      assert.are.equal('{"ids":[3,1,123456789012345]}', req.body)
      assert.are.equal("application/json", req.headers["Content-Type"])
    end
  end)

  it("reveal_many and delete_many refuse an empty batch, more than 100 ids and bad ids", function()
    local hundred, too_many = {}, {}
    for i = 1, 100 do hundred[i] = i end
    for i = 1, 101 do too_many[i] = i end
    assert.are.equal(100, #body_of(core.request("delete_many", { ids = hundred })).ids)
    for _, op in ipairs({ "reveal_many", "delete_many" }) do
      for _, ids in ipairs({ {}, too_many, { 0 }, { -1 }, { 1.5 }, { "5" }, { 1, false } }) do
        assert.has_error(function() core.request(op, { ids = ids }) end)
      end
      assert.has_error(function() core.request(op, {}) end)
      assert.has_error(function() core.request(op, { ids = 5 }) end)
    end
  end)

  it("settings: GET /api/status, no arguments needed", function()
    local req = core.request("settings")
    assert.are.equal("GET", req.method)
    assert.are.equal("/api/status", req.path)
    assert.is_nil(req.query)
    assert.is_nil(req.body)
    assert.are.same(req, core.request("settings", {}))
  end)

  it("conf: user_agent and user_id (New-Api-User)", function()
    local req = core.request("get", { id = 1 }, { user_agent = "ops-tool/2", user_id = 5678 })
    assert.are.equal("ops-tool/2", req.headers["User-Agent"])
    assert.are.equal("5678", req.headers["New-Api-User"])
    assert.is_nil(core.request("get", { id = 1 }, {}).headers["New-Api-User"])
    assert.has_error(function() core.request("get", { id = 1 }, { user_id = "5678" }) end)
    assert.has_error(function() core.request("get", { id = 1 }, { user_id = 0 }) end)
    assert.has_error(function() core.request("get", { id = 1 }, { user_agent = 5 }) end)
  end)

  for _, evil in ipairs({ "x\r\nAuthorization: stolen", "x\nX-Evil: 1", "x\rY", "x\0y" }) do
    it(string.format("refuses header injection in user_agent %q", evil), function()
      local ok, err = pcall(core.request, "get", { id = 1 }, { user_agent = evil })
      assert.is_false(ok)
      assert.matches("CR, LF, NUL", err, 1, true)
    end)
  end

  it("never adds Authorization", function()
    for _, op in ipairs({ "get", "delete" }) do
      assert.is_nil(core.request(op, { id = 1 }, { user_id = 1 }).headers.Authorization)
    end
  end)
end)

describe("core.response", function()
  describe("success", function()
    it("get: the record, with null fields as nil", function()
      local key = respond("get", 200, fixture("record_get.json"), {}, GET_5)
      assert.are.equal(1234, key.id)
      assert.is_true(is_integer(key.id))
      assert.are.equal(5678, key.user_id)
      assert.are.equal("production", key.name)
      assert.are.equal(-1, key.expired_time)
      assert.are.equal(48, #key.key)
      assert.is_false(key.unlimited_quota)
      assert.are.equal("", key.allow_ips)
      assert.is_nil(key.DeletedAt)
    end)

    it("tolerates a masked key", function()
      local key = respond("get", 200, fixture("record_masked_key.json"))
      assert.are.equal("EXAM**********PL00", key.key)
      assert.are.equal("10.0.0.0/8\n2001:db8::1", key.allow_ips)
    end)

    it("maps allow_ips: null and DeletedAt: null to nil", function()
      local key = respond("get", 200, fixture("record_allow_ips_null.json"))
      assert.is_nil(key.allow_ips)
      assert.is_nil(key.DeletedAt)
      assert.are.equal(2, key.status)
      assert.is_true(key.unlimited_quota)
    end)

    it("keeps unknown fields of newer builds (auto_groups, billing_type)", function()
      local key = respond("get", 200, fixture("record_newest_build.json"))
      assert.are.same({ "default", "vip" }, key.auto_groups)
      assert.are.equal("quota", key.billing_type)
      assert.is_true(key.cross_group_retry)
    end)

    it("keeps a 15-digit quota exact", function()
      local key = respond("get", 200, fixture("record_quota_15_digits.json"))
      assert.are.equal(123456789012345, key.remain_quota)
      assert.are.equal("123456789012345", string.format("%d", key.remain_quota))
      assert.are.equal("499999999999999", string.format("%d", key.used_quota))
      assert.is_true(is_integer(key.remain_quota))
    end)

    if has_integers then
      it("keeps 2^53 + 1 exact (Lua integers)", function()
        local key = respond("get", 200, fixture("record_beyond_2p53.json"))
        assert.are.equal(math.tointeger(9007199254740993), key.remain_quota)
        assert.are.equal("9007199254740993", string.format("%d", key.remain_quota))
      end)
    else
      it("refuses 2^53 + 1 on Lua 5.1 / LuaJIT with the JSON module's message", function()
        local message, info = failed("decode", respond("get", 200, fixture("record_beyond_2p53.json"), {}, GET_5))
        assert.matches("9007199254740993", message, 1, true)
        assert.matches("2^53", message, 1, true)
        assert.are.equal(200, info.status)
      end)
    end

    it("update: the record", function()
      assert.are.equal(1234, respond("update", 200, fixture("record_masked_key.json"), {}, PUT).id)
    end)

    it("status: the record when data is one, else true", function()
      assert.are.equal(1234, respond("status", 200, fixture("record_get.json")).id)
      assert.is_true(respond("status", 200, fixture("ok_no_data.json")))
    end)

    it("create and delete: true ({success:true} has no data)", function()
      assert.is_true(respond("create", 200, fixture("ok_no_data.json")))
      assert.is_true(respond("delete", 200, fixture("ok_no_data.json")))
    end)

    it("list: items, total, page, page_size", function()
      local page = respond("list", 200, fixture("list_page.json"), {}, LIST)
      assert.are.equal(2, #page.items)
      assert.are.equal(2, page.total)
      assert.are.equal(1, page.page)
      assert.are.equal(20, page.page_size)
      assert.are.equal(1235, page.items[1].id)
      assert.are.equal(-120, page.items[1].remain_quota)
      assert.is_nil(page.items[1].allow_ips)
      assert.are.equal(4, count_keys(page))
    end)

    it("list: an empty page still has an items table", function()
      local page = respond("list", 200, fixture("list_empty.json"))
      assert.are.same({}, page.items)
      assert.are.equal(3, page.page)
      assert.are.equal(2, page.total)
    end)

    it("search: the page object of newer builds", function()
      local page = respond("search", 200, fixture("search_page.json"))
      assert.are.equal(1, #page.items)
      assert.are.equal(1, page.total)
      assert.are.equal(100, page.page_size)
    end)

    it("search: the bare array of older builds", function()
      local page = respond("search", 200, fixture("search_bare_array.json"))
      assert.are.equal(2, #page.items)
      assert.are.equal(2, page.total)
      assert.are.equal(1, page.page)
      assert.are.equal(2, page.page_size)
      assert.are.equal(1200, page.items[2].id)
      page = respond("search", 200, fixture("search_bare_empty.json"))
      assert.are.same({ items = {}, total = 0, page = 1, page_size = 0 }, page)
    end)

    it("reveal: the full key from data.key", function()
      local key = respond("reveal", 200, fixture("reveal_key.json"))
      assert.are.equal("EXAMPLEkeyDoNotUse0123456789abcdefghijklmnoPL00", key)
    end)

    it("reveal: an answer without a string data.key is decode, and shows no key", function()
      local req = { method = "POST", path = "/api/token/5/key" }
      local message = failed("decode", respond("reveal", 200, fixture("reveal_no_key.json"), {}, req))
      assert.are.equal("cometkey: POST /api/token/5/key: unexpected response: data.key is not a string", message)
      failed("decode", respond("reveal", 200, '{"success":true,"message":"","data":{"key":5}}'))
      failed("decode", respond("reveal", 200, fixture("ok_no_data.json")))
      message = failed("decode", respond("reveal", 200, fixture("reveal_many_keys.json")))
      assert.is_nil(message:find("EXAMPLE", 1, true))
    end)

    it("reveal_many: data.keys as { [id] = key } with integer ids", function()
      local keys = respond("reveal_many", 200, fixture("reveal_many_keys.json"))
      assert.are.same({ [1234] = "EXAMPLEkeyDoNotUse0123456789abcdefghijklmnoPL00",
        [1235] = "EXAMPLEkeyDoNotUse9876543210zyxwvutsrqponmlkPL01" }, keys)
      assert.is_true(is_integer(next(keys)))
      assert.are.same({}, respond("reveal_many", 200, '{"success":true,"message":"","data":{"keys":{}}}'))
    end)

    it("reveal_many: a wrong shape is decode, and shows no key", function()
      for _, body in ipairs({
        fixture("reveal_key.json"), fixture("ok_no_data.json"),
        '{"success":true,"data":{"keys":{"x":"EXAMPLEsecret"}}}',
        '{"success":true,"data":{"keys":{"12":5}}}',
        '{"success":true,"data":{"keys":{"012":"EXAMPLEsecret"}}}',
        '{"success":true,"data":{"keys":["EXAMPLEsecret"]}}',
      }) do
        local message = failed("decode", respond("reveal_many", 200, body))
        assert.is_nil(message:find("EXAMPLE", 1, true), message)
      end
    end)

    it("reveal_many: more than 100 ids is refused by the server (api)", function()
      local message = failed("api", respond("reveal_many", 200, fixture("refused_batch_too_many.json"), {},
        { method = "POST", path = "/api/token/batch/keys" }))
      assert.are.equal("cometkey: POST /api/token/batch/keys: server refused the request: Too many items in "
        .. "batch request, maximum is 100", message)
    end)

    it("delete_many: data is the number deleted", function()
      local n = respond("delete_many", 200, fixture("delete_many_count.json"))
      assert.are.equal(2, n)
      assert.is_true(is_integer(n))
      assert.are.equal(0, respond("delete_many", 200, '{"success":true,"message":"","data":0}'))
      for _, data in ipairs({ "-1", "1.5", '"2"', "null", "{}" }) do
        failed("decode", respond("delete_many", 200, '{"success":true,"message":"","data":' .. data .. "}"))
      end
      failed("decode", respond("delete_many", 200, fixture("ok_no_data.json")))
      failed("api", respond("delete_many", 200, fixture("refused_invalid_parameters.json")))
    end)

    it("settings: the data object of GET /api/status", function()
      local settings = respond("settings", 200, fixture("status_settings.json"))
      assert.are.equal(500000, settings.quota_per_unit)
      assert.is_true(settings.display_in_currency)
      failed("decode", respond("settings", 200, '{"success":true,"message":"","data":[1]}'))
      failed("decode", respond("settings", 200, fixture("ok_no_data.json")))
    end)

    it("list refuses the bare array (only search had that shape)", function()
      failed("decode", respond("list", 200, fixture("search_bare_array.json")))
    end)
  end)

  describe("success:false", function()
    it("is an api error at HTTP 200, in English", function()
      local message, info = failed("api", respond("update", 200, fixture("refused_name_too_long_en.json"),
        { ["x-oneapi-request-id"] = "20251219104512345678901abcdefgh" }, PUT))
      assert.are.equal("cometkey: PUT /api/token/: server refused the request: Token name is too long", message)
      assert.are.equal("Token name is too long", info.message)
      assert.are.equal("20251219104512345678901abcdefgh", info.request_id)
      assert.are.equal(200, info.status)
      assert.is_false(info.retryable)
      assert.is_nil(info.retry_after)
    end)

    it("is an api error in Chinese too", function()
      local message, info = failed("api", respond("create", 200, fixture("refused_name_too_long_zh.json"),
        {}, { method = "POST", path = "/api/token/" }))
      assert.are.equal("cometkey: POST /api/token/: server refused the request: 令牌名称过长", message)
      assert.are.equal("令牌名称过长", info.message)
      failed("api", respond("update", 200, fixture("refused_quota_range_en.json")))
      failed("api", respond("status", 200, fixture("refused_enable_expired_zh.json")))
      failed("api", respond("get", 200, fixture("refused_id_empty_zh.json")))
      failed("api", respond("search", 200, fixture("refused_search_pattern_zh.json")))
    end)

    it("record not found is not_found", function()
      local message, info = failed("not_found",
        respond("get", 200, fixture("refused_record_not_found.json"), {}, GET_5))
      assert.are.equal("cometkey: GET /api/token/5: key not found (record not found)", message)
      assert.are.equal("record not found", info.message)
    end)

    it("the auth middleware's texts are auth, in English and Chinese", function()
      for _, name in ipairs({ "refused_invalid_token_en.json", "refused_invalid_token_zh.json",
                              "refused_banned_zh.json" }) do
        local message, info = failed("auth", respond("list", 200, fixture(name), {}, LIST))
        assert.matches("^cometkey: GET /api/token/: authentication failed: ", message)
        assert.is_string(info.message)
      end
    end)

    it("is an error whatever the HTTP status", function()
      failed("api", respond("get", 500, fixture("refused_name_too_long_en.json")))
      failed("not_found", respond("get", 404, fixture("refused_record_not_found.json")))
    end)

    it("server text is sanitised to one line", function()
      local message, info = failed("api", respond("get", 200, fixture("refused_control_chars.json")))
      assert.are.equal("first line second line end x", info.message)
      assert.are.equal("cometkey: get: server refused the request: first line second line end x", message)
    end)

    it("a message of nothing but blanks counts as no message", function()
      local message, info = failed("api", respond("update", 200, '{"success":false,"message":" \\n\\t "}', {}, PUT))
      assert.are.equal("cometkey: PUT /api/token/: server refused the request (success:false without a message)",
        message)
      assert.is_nil(info.message)
    end)

    it("server text is cut to 200 bytes and made valid UTF-8", function()
      local long = ("令"):rep(100)
      local _, info = failed("api", respond("get", 200, '{"success":false,"message":"' .. long .. '"}'))
      assert.is_true(#info.message <= 200)
      assert.matches("%.%.%.$", info.message)
      assert.is_truthy(core.json_encode(info.message))
      -- invalid UTF-8 cannot come through JSON; a plain-text body can carry it
      local message
      message, info = failed("http", respond("get", 418, "bad \255\254 bytes"))
      assert.is_truthy(core.json_encode(info.message))
      assert.is_truthy(core.json_encode(message))
    end)
  end)

  describe("HTTP errors", function()
    it("401 with the old JSON body is auth", function()
      local message, info = failed("auth", respond("list", 401, fixture("auth_401_no_new_api_user.json"), {}, LIST))
      assert.are.equal("cometkey: GET /api/token/: authentication failed (HTTP 401): "
        .. "Unauthorized, New-Api-User header not provided", message)
      assert.are.equal(401, info.status)
      assert.is_nil(info.code)
      failed("auth", respond("list", 401, fixture("auth_401_new_api_user_format_zh.json")))
    end)

    it("401 and 403 of the newest builds carry a code", function()
      local _, info = failed("auth", respond("get", 401, fixture("auth_401_newest_code.json")))
      assert.are.equal("AUTH_UNAUTHORIZED", info.code)
      _, info = failed("auth", respond("get", 403, fixture("auth_403_newest_code.json")))
      assert.are.equal("AUTH_INSUFFICIENT_PRIVILEGE", info.code)
      assert.are.equal(403, info.status)
    end)

    it("401 with an empty body is still auth", function()
      local message = failed("auth", respond("get", 401, "", {}, GET_5))
      assert.are.equal("cometkey: GET /api/token/5: authentication failed (HTTP 401) with an empty body", message)
    end)

    it("429 with an empty body and Retry-After is rate_limited and retryable", function()
      local message, info = failed("rate_limited", respond("list", 429, "", { ["retry-after"] = "3" }, LIST))
      assert.are.equal("cometkey: GET /api/token/: rate limited (HTTP 429), retry after 3 s", message)
      assert.is_true(info.retryable)
      assert.are.equal(3, info.retry_after)
      assert.is_true(is_integer(info.retry_after))
    end)

    it("429 without Retry-After, or with the date form, has no retry_after", function()
      local message, info = failed("rate_limited", respond("list", 429, "", {}, LIST))
      assert.are.equal("cometkey: GET /api/token/: rate limited (HTTP 429)", message)
      assert.is_nil(info.retry_after)
      assert.is_true(info.retryable)
      info = select(2, failed("rate_limited",
        respond("list", 429, "", { ["retry-after"] = "Wed, 21 Oct 2026 07:28:00 GMT" })))
      assert.is_nil(info.retry_after)
      info = select(2, failed("rate_limited", respond("list", 429, "", { ["retry-after"] = "-1" })))
      assert.is_nil(info.retry_after)
    end)

    it("finds headers whatever their case", function()
      local _, info = failed("rate_limited", respond("list", 429, "", { ["Retry-After"] = " 7 " }))
      assert.are.equal(7, info.retry_after)
      _, info = failed("api", respond("get", 200, fixture("refused_name_too_long_en.json"),
        { ["X-Oneapi-Request-Id"] = "abc" }))
      assert.are.equal("abc", info.request_id)
    end)

    it("502 with an HTML page is http and retryable", function()
      local message, info = failed("http", respond("list", 502, fixture("proxy_502.html"),
        { ["content-type"] = "text/html" }, LIST))
      assert.are.equal("cometkey: GET /api/token/: HTTP 502 with an HTML body (proxy error page)", message)
      assert.is_true(info.retryable)
      assert.is_nil(info.message)
    end)

    it("503 and 504 are retryable", function()
      local message, info = failed("http", respond("get", 503, "", {}, GET_5))
      assert.are.equal("cometkey: GET /api/token/5: HTTP 503 with an empty body", message)
      assert.is_true(info.retryable)
      info = select(2, failed("http", respond("get", 504, fixture("proxy_502.html"))))
      assert.is_true(info.retryable)
    end)

    it("500 with the panic body is http, not retryable, with the panic text", function()
      local message, info = failed("http", respond("update", 500, fixture("panic_500.json"), {}, PUT))
      assert.matches("^cometkey: PUT /api/token/: server error %(HTTP 500%): Panic detected", message)
      assert.matches("^Panic detected", info.message)
      assert.is_false(info.retryable)
    end)

    it("301 with Location is refused with a redirect hint", function()
      local message, info = failed("http", respond("list", 301, fixture("redirect_301.html"),
        { location = "/api/token/" }, { method = "GET", path = "/api/token" }))
      assert.are.equal("cometkey: GET /api/token: redirect (HTTP 301 to /api/token/) refused: cometkey never "
        .. "follows redirects; the exact path is /api/token/ — check base_url", message)
      assert.are.equal(301, info.status)
      assert.is_false(info.retryable)
    end)

    it("307 without Location, and a Location with control characters", function()
      local message = failed("http", respond("update", 307, "", {}, PUT))
      assert.matches("redirect (HTTP 307, no Location) refused", message, 1, true)
      message = failed("http", respond("get", 302, "", { location = "https://evil.example/\r\nSet-Cookie: x" }))
      assert.matches("to https://evil.example/ Set-Cookie: x)", message, 1, true)
    end)

    it("a bare 404 is a wrong route: kind http with the base_url hint (a missing key is success:false)", function()
      local message, info = failed("http", respond("get", 404, "404 page not found", {}, GET_5))
      assert.matches("HTTP 404", message, 1, true)
      assert.matches("check base_url", message, 1, true)
      assert.are.equal("404 page not found", info.message)
    end)

    it("other statuses are http and not retryable", function()
      for _, status in ipairs({ 400, 418, 500, 501, 505, 204, 100 }) do
        local _, info = failed("http", respond("get", status, ""))
        assert.is_false(info.retryable)
        assert.are.equal(status, info.status)
      end
    end)

    it("retryable is true only for 429, 502, 503, 504", function()
      for status = 100, 599 do
        local v, _, info = respond("get", status, "")
        if v == nil then
          local expect = status == 429 or status == 502 or status == 503 or status == 504
          assert.are.equal(expect, info.retryable, "status " .. status)
        end
      end
    end)
  end)

  describe("decode errors at HTTP 200", function()
    it("a body that is not JSON", function()
      local message, info = failed("decode", respond("get", 200, fixture("not_json_200.txt"), {}, GET_5))
      assert.matches("^cometkey: GET /api/token/5: cannot decode the response: JSON", message)
      assert.are.equal(200, info.status)
    end)

    it("an HTML page", function()
      local message = failed("decode", respond("list", 200, fixture("login_page_200.html"),
        { ["content-type"] = "text/html; charset=utf-8" }, LIST))
      assert.matches("HTTP 200 with an HTML body, not JSON", message, 1, true)
    end)

    it("an empty body", function()
      local message = failed("decode", respond("delete", 200, ""))
      assert.matches("empty body", message, 1, true)
    end)

    it("duplicate keys, invalid UTF-8 and excessive depth (the JSON module's text)", function()
      assert.matches("duplicate", (failed("decode", respond("get", 200, fixture("duplicate_keys.json")))))
      assert.matches("invalid UTF%-8", (failed("decode", respond("get", 200, '{"success":true,"message":"\255"}'))))
      local deep = '{"success":true,"data":' .. ("["):rep(40) .. ("]"):rep(40) .. "}"
      assert.matches("deeper", (failed("decode", respond("get", 200, deep))))
    end)

    it("not the envelope", function()
      failed("decode", respond("get", 200, fixture("success_not_boolean.json")))
      failed("decode", respond("get", 200, fixture("top_level_array.json")))
      failed("decode", respond("get", 200, '"just a string"'))
      failed("decode", respond("get", 200, "{}"))
    end)

    it("a wrong data shape", function()
      failed("decode", respond("get", 200, fixture("data_not_object.json")))
      failed("decode", respond("get", 200, fixture("ok_no_data.json")))
      failed("decode", respond("update", 200, '{"success":true,"message":"","data":null}'))
      failed("decode", respond("list", 200, fixture("list_bad_total.json")))
      failed("decode", respond("list", 200, fixture("list_bad_item.json")))
      failed("decode", respond("list", 200, fixture("record_get.json")))
      failed("decode", respond("search", 200, '{"success":true,"data":[1,2]}'))
    end)
  end)

  describe("the res table", function()
    it("uses the op name when res.request is absent", function()
      local message = failed("not_found", respond("delete", 200, fixture("refused_record_not_found.json")))
      assert.are.equal("cometkey: delete: key not found (record not found)", message)
    end)

    it("raises only when res itself is malformed", function()
      assert.has_error(function() core.response("get", nil) end)
      assert.has_error(function() core.response("get", { body = "" }) end)
      assert.has_error(function() core.response("get", { status = "200", body = "" }) end)
      assert.has_error(function() core.response("get", { status = 200.5, body = "" }) end)
      assert.has_error(function() core.response("get", { status = 200, body = 5 }) end)
      assert.has_error(function() core.response("get", { status = 200, body = "", headers = "x" }) end)
      assert.has_error(function() core.response("get", { status = 200, body = "", request = { path = 1 } }) end)
      assert.has_error(function() core.response("nope", { status = 200, body = "" }) end)
      -- absent headers and body are fine
      failed("decode", core.response("get", { status = 200 }))
    end)

    it("never raises for anything the server sent", function()
      local names = {
        "auth_401_new_api_user_format_zh.json", "auth_401_newest_code.json", "auth_401_no_new_api_user.json",
        "auth_403_newest_code.json", "data_not_object.json", "duplicate_keys.json", "list_bad_item.json",
        "list_bad_total.json", "list_empty.json", "list_page.json", "login_page_200.html", "not_json_200.txt",
        "ok_no_data.json", "panic_500.json", "proxy_502.html", "record_allow_ips_null.json",
        "record_beyond_2p53.json", "record_get.json", "record_masked_key.json", "record_newest_build.json",
        "record_quota_15_digits.json", "redirect_301.html", "refused_banned_zh.json",
        "refused_control_chars.json", "refused_enable_expired_zh.json", "refused_id_empty_zh.json",
        "refused_invalid_token_en.json", "refused_invalid_token_zh.json", "refused_name_too_long_en.json",
        "refused_name_too_long_zh.json", "refused_quota_range_en.json", "refused_record_not_found.json",
        "refused_search_pattern_zh.json", "search_bare_array.json", "search_bare_empty.json",
        "search_page.json", "success_not_boolean.json", "top_level_array.json",
        "reveal_key.json", "reveal_no_key.json", "reveal_many_keys.json", "refused_batch_too_many.json",
        "delete_many_count.json", "refused_invalid_parameters.json", "status_settings.json",
      }
      local ops = {}
      for op in pairs(core.endpoints) do ops[#ops + 1] = op end
      table.sort(ops)
      local statuses = { 200, 201, 301, 401, 403, 404, 429, 500, 502 }
      for _, name in ipairs(names) do
        local body = fixture(name)
        for _, op in ipairs(ops) do
          for _, status in ipairs(statuses) do
            local ok, value, message, info = pcall(core.response, op, { status = status, body = body,
              headers = { ["retry-after"] = "x", location = body } })
            assert.is_true(ok, name .. " " .. op .. " " .. status .. ": " .. tostring(value))
            if value == nil then
              assert.is_string(message)
              assert.is_table(info)
            end
          end
        end
      end
    end)
  end)
end)

describe("core.endpoints", function()
  local SHAPES = { record = true, page = true, ["true"] = true, string = true, count = true, map = true,
    settings = true }

  it("has one row per operation, each naming itself, with the agreed fields", function()
    local n = 0
    for op, row in pairs(core.endpoints) do
      n = n + 1
      assert.are.equal(op, row.name)
      assert.matches("^[A-Z]+$", row.method)
      assert.matches("^/api/", row.path)
      for _, flag in ipairs({ "id", "body", "paging", "idempotent" }) do
        assert.is_boolean(row[flag], op .. "." .. flag)
      end
      assert.is_true(SHAPES[row.result], op)
    end
    assert.are.equal(11, n)
  end)

  it("request builds what the row says", function()
    for op, row in pairs(core.endpoints) do
      local args = {}
      if row.id then args.id = 7 end
      if row.ids then args.ids = { 7 } end
      if op == "create" then args.fields = {} end
      if op == "update" then args.fields = nine({ id = 7 }) end
      if op == "status" then args.status = 2 end
      local req = core.request(op, args)
      assert.are.equal(row.method, req.method, op)
      assert.are.equal((row.path:gsub("{id}", "7")), req.path, op)
      assert.are.equal(row.body, req.body ~= nil, op)
      assert.are.equal(row.paging, req.query ~= nil and req.query:find("page_size=", 1, true) ~= nil, op)
    end
  end)

  it("marks create and delete_many not idempotent, and the read-only POSTs idempotent", function()
    assert.is_false(core.endpoints.create.idempotent)
    assert.is_false(core.endpoints.delete_many.idempotent)
    assert.is_true(core.endpoints.reveal.idempotent)
    assert.is_true(core.endpoints.reveal_many.idempotent)
    for _, op in ipairs({ "get", "list", "search", "update", "status", "delete", "settings" }) do
      assert.is_true(core.endpoints[op].idempotent, op)
    end
  end)

  it("the redirect message names the row's exact path", function()
    local message = failed("http", respond("reveal", 301, "", {}, { method = "POST", path = "/api/token/5/key/" }))
    assert.matches("the exact path is /api/token/<id>/key ", message, 1, true)
  end)
end)

describe("the key schema", function()
  it("core.fields: the nine editable fields in wire order", function()
    assert.are.same({ "name", "expired_time", "remain_quota", "unlimited_quota", "model_limits_enabled",
      "model_limits", "allow_ips", "group", "cross_group_retry" }, core.fields)
  end)

  it("core.limits, core.status_names and the defaults", function()
    assert.are.equal(50, core.limits.name_bytes)
    assert.are.equal(500000000000000, core.limits.quota_max)
    assert.are.equal(100, core.limits.batch_max)
    assert.are.same({ "enabled", "disabled", "expired", "exhausted" }, core.status_names)
    assert.are.same(nine({ name = "", remain_quota = 0 }), core.create_defaults)
    assert.are.equal(0, core.echo_defaults.expired_time)
    assert.are.equal(core.null, core.echo_defaults.allow_ips)
    assert.are.same(core.create_defaults, body_of(core.request("create", { fields = {} })))
  end)
end)
