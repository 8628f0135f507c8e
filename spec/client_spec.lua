-- spec/client_spec.lua - every client call end to end against the local mock server:
-- cometkey.new's options, get, list, each, search, create, delete, close, every error kind,
-- retries, keep-alive and the callback form. Each test checks the mock's stored state and
-- its request log, not only what the call returned.
local cometkey = require "cometkey"
local core = require "cometkey.core"
local helpers = require "spec.support.helpers"

local env = helpers.use_mock_env()

local routes, body = helpers.routes, helpers.body

-- The fields of a key record as the server sends them (DeletedAt is always null).
local RECORD_FIELDS = {
  "id", "user_id", "key", "status", "name", "created_time", "accessed_time", "expired_time",
  "remain_quota", "unlimited_quota", "model_limits_enabled", "model_limits", "allow_ips",
  "used_quota", "group", "cross_group_retry",
}

-- The record a call returned is the stored row, field by field.
local function assert_is_stored(key)
  local row = env.m:key(key.id)
  assert.is_table(row)
  for _, f in ipairs(RECORD_FIELDS) do
    local stored = row[f]
    if stored == cometkey.null then stored = nil end
    if f == "key" and env.m:config().masked_keys then -- 2026 servers: key[:4] .. "**********" .. key[-4:]
      stored = stored:sub(1, 4) .. "**********" .. stored:sub(-4)
    end
    assert.are.equal(stored, key[f], "field " .. f)
  end
end

local function ids_of(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = k.id end
  return out
end

local function range(from, to, step)
  local out = {}
  for i = from, to, step or 1 do out[#out + 1] = i end
  return out
end

-- A world failure: nil, a one-line "cometkey: ..." message and an info table of `kind`.
local function assert_failure(kind, value, message, info)
  assert.is_nil(value)
  assert.is_true(helpers.one_line(message), "message must be one line: " .. tostring(message))
  assert.matches("^cometkey: ", message)
  assert.is_table(info)
  assert.are.equal(kind, info.kind, message)
  assert.is_nil(message:find(env.m.token, 1, true))
  if info.status then assert.matches("^%d+%w+$", info.request_id) end -- the mock sends one on every answer
  return info
end

describe("cometkey.new", function()
  local SECRET = "tok-SECRET-4711"

  local function new_error(opts)
    local msg = helpers.raises(function() cometkey.new(opts) end)
    assert.is_nil(msg:find("SECRET", 1, true), msg)
    return msg
  end

  it("raises on a missing or empty token, at the caller's line", function()
    for _, token in ipairs({ false, "" }) do
      local msg = new_error({ token = token or nil, base_url = env.m.url })
      assert.matches("client_spec%.lua:%d+: cometkey%.new: token is required", msg)
    end
    assert.matches("token must be a string", new_error({ token = 42, base_url = env.m.url }))
  end)

  it("raises on control characters, CR, LF or blanks in the token, without showing it", function()
    for _, bad in ipairs({ SECRET .. "\r\nX-Evil: 1", SECRET .. "\n", SECRET .. "\0", "Bearer " .. SECRET,
      SECRET .. "\t", SECRET .. "\127" }) do
      local msg = new_error({ token = bad, base_url = env.m.url })
      assert.matches("cometkey%.new: token contains control characters or blanks", msg)
      assert.is_nil(msg:find("SECRET", 1, true), msg)
    end
  end)

  it("raises on an unknown option, a bad URL and http:// to a non-loopback host", function()
    assert.matches("unknown option 'tiemout'", new_error({ token = SECRET, tiemout = 3 }))
    assert.matches("base_url must start with https:// or http://", new_error({ token = SECRET, base_url = "ftp:x" }))
    assert.matches("must not contain credentials",
      new_error({ token = SECRET, base_url = "https://u:p@api.example.com" }))
    local msg = new_error({ token = SECRET, base_url = "http://api.example.com" })
    assert.matches("http:// to a non%-loopback host %(api%.example%.com%)", msg)
    assert.matches("allow_http must be a boolean",
      new_error({ token = SECRET, base_url = "http://api.example.com", allow_http = "yes" }))
    -- allowed: loopback, or an explicit allow_http (no request is made by new)
    local c = cometkey.new { token = SECRET, base_url = "http://api.example.com", allow_http = true }
    c:close()
    c = cometkey.new { token = SECRET, base_url = "http://localhost:1" }
    c:close()
    assert.are.same({}, routes(env.m))
  end)

  it("raises on a bad timeout, connect_timeout, retries or user_id", function()
    local cases = {
      { { timeout = 0 }, "timeout must be a positive number" },
      { { timeout = -1 }, "timeout must be a positive number" },
      { { timeout = "5" }, "timeout must be a positive number" },
      { { timeout = 0 / 0 }, "timeout must be a positive number" },
      { { timeout = math.huge }, "timeout must be a positive number" },
      { { timeout = 1e7 }, "timeout must be a positive number of seconds %(at most 2147483%)" },
      { { connect_timeout = 0 }, "connect_timeout must be a positive number" },
      { { retries = -1 }, "retries must be an integer from 0 to 10" },
      { { retries = 11 }, "retries must be an integer from 0 to 10" },
      { { retries = 1.5 }, "retries must be an integer from 0 to 10" },
      { { user_id = 0 }, "user_id must be a positive integer" },
      { { user_id = 1.5 }, "user_id must be a positive integer" },
      { { user_id = "abc" }, "user_id must be a positive integer" },
      { { user_id = "1\r\nX: y" }, "user_id must be a positive integer" },
      { { user_id = "99999999999999999999" }, "user_id must be a positive integer" },
      { { max_body = 2 ^ 40 }, "max_body must be an integer number of bytes" },
      { { max_body = 100 }, "max_body must be an integer number of bytes" },
      { { verify = "no" }, "verify must be a boolean" },
      { { transport = "carrier-pigeon" }, "transport must be" },
    }
    for _, case in ipairs(cases) do
      local opts = { token = SECRET, base_url = env.m.url }
      for k, v in pairs(case[1]) do opts[k] = v end
      local msg = new_error(opts)
      assert.matches("client_spec%.lua:%d+: cometkey%.new: " .. case[2], msg)
      assert.is_nil(msg:find(SECRET, 1, true), msg)
    end
  end)

  it("hides the token in tostring(client) and in every failure it returns", function()
    local c = env.client { token = SECRET }
    local text = tostring(c)
    assert.matches("^cometkey%.client %(http://127%.0%.0%.1:%d+, curl%)$", text)
    assert.is_nil(text:find("SECRET", 1, true))
    local value, message, info = c:get(1)
    assert_failure("auth", value, message, info)
    assert.is_nil(message:find("SECRET", 1, true))
    for _, v in pairs(info) do assert.is_nil(tostring(v):find("SECRET", 1, true)) end
  end)

  it("sends the wire headers, and New-Api-User only when user_id is set", function()
    env.client({ user_id = false }):get(1) -- refused (401) by the default mock, headers logged
    env.client({ user_id = "1" }):get(1)
    local log = env.m:requests()
    assert.are.equal(2, #log)
    for _, e in ipairs(log) do
      assert.is_true(e.auth_present)
      assert.are.equal("cometkey/" .. core.version, e.headers["user-agent"])
      assert.are.equal("en", e.headers["accept-language"])
    end
    assert.is_nil(log[1].headers["new-api-user"])
    assert.are.equal("1", log[2].headers["new-api-user"])
  end)

  it("passes the require_user_header check only with the right user_id", function()
    env.m:config { require_user_header = true }
    local info = assert_failure("auth", env.client({ user_id = false }):get(1))
    assert.are.equal(401, info.status)
    assert.matches("New%-Api%-User header not provided", info.message)
    local key = assert(env.client({ user_id = env.m.user_id }):get(1))
    assert.are.equal(1, key.id)
    info = assert_failure("auth", env.client({ user_id = env.m.other_user_id }):get(1))
    assert.are.equal(401, info.status)
    assert.matches("does not match", info.message)
    local log = env.m:requests()
    assert.are.same({ "GET /api/token/1", "GET /api/token/1", "GET /api/token/1" }, routes(env.m))
    assert.are.same({ true, "1", "2" },
      { log[1].headers["new-api-user"] == nil, log[2].headers["new-api-user"], log[3].headers["new-api-user"] })
  end)
end)

describe("client:get", function()
  it("returns the stored record with exact integers, in one GET", function()
    local c = env.client()
    for _, id in ipairs({ 1, 2, 5, 6 }) do
      local key = assert(c:get(id))
      assert_is_stored(key)
    end
    local big = assert(c:get(6))
    assert.are.equal(123456789012345, big.remain_quota)
    if math.type then assert.are.equal("integer", math.type(big.remain_quota)) end
    assert.is_nil(assert(c:get(2)).allow_ips) -- JSON null becomes nil
    assert.are.same({ "GET /api/token/1", "GET /api/token/2", "GET /api/token/5", "GET /api/token/6",
      "GET /api/token/6", "GET /api/token/2" }, routes(env.m))
  end)

  it("raises on a bad id and sends nothing", function()
    local c = env.client()
    for _, id in ipairs({ 0, -1, 1.5, "1", false }) do
      assert.matches("client_spec%.lua:%d+: cometkey%.get: id must be a positive integer",
        helpers.raises(function() c:get(id) end))
    end
    assert.matches("callback must be a function", helpers.raises(function() c:get(1, "cb") end))
    assert.are.same({}, routes(env.m))
  end)

  it("does not see another user's key", function()
    assert_failure("not_found", env.client():get(7))
    assert.are.equal(2, env.m:key(7).user_id)
  end)
end)

describe("over 250 keys", function()
  before_each(function()
    env.m:set_keys(helpers.seed(250, function(i, row)
      if i % 7 == 0 then row.status = 2 end
    end))
  end)

  describe("client:list", function()
    it("pages newest first with the exact query", function()
      local c = env.client()
      local p1 = assert(c:list())
      assert.are.equal(250, p1.total)
      assert.are.equal(1, p1.page)
      assert.are.equal(100, p1.page_size)
      assert.are.same(range(250, 151, -1), ids_of(p1.items))
      local p3 = assert(c:list { page = 3, page_size = 100 })
      assert.are.same(range(50, 1, -1), ids_of(p3.items))
      local p = assert(c:list { page = 4, page_size = 7 })
      assert.are.same(range(229, 223, -1), ids_of(p.items))
      assert.are.equal(7, p.page_size)
      for _, key in ipairs(p.items) do assert_is_stored(key) end
      assert.are.same({ "GET /api/token/?p=1&page_size=100", "GET /api/token/?p=3&page_size=100",
        "GET /api/token/?p=4&page_size=7" }, routes(env.m))
    end)

    it("raises on bad arguments and sends nothing", function()
      local c = env.client()
      local cases = {
        { { page = 0 }, "page must be an integer >= 1" },
        { { page = 1.5 }, "page must be an integer >= 1" },
        { { page = "2" }, "page must be an integer >= 1" },
        { { page_size = 0 }, "page_size must be an integer from 1 to 100" },
        { { page_size = 101 }, "page_size must be an integer from 1 to 100" },
        { { pagesize = 10 }, "unknown argument 'pagesize'" },
      }
      for _, case in ipairs(cases) do
        assert.matches("client_spec%.lua:%d+: cometkey%.list: " .. case[2],
          helpers.raises(function() c:list(case[1]) end))
      end
      assert.matches("arguments must be a table", helpers.raises(function() c:list(5) end))
      assert.are.same({}, routes(env.m))
    end)
  end)

  describe("client:each", function()
    it("yields every key exactly once, newest first, in three pages", function()
      local c = env.client()
      local seen = {}
      for key in c:each() do seen[#seen + 1] = key.id end
      assert.are.same(range(250, 1, -1), seen)
      assert.are.same({ "GET /api/token/?p=1&page_size=100", "GET /api/token/?p=2&page_size=100",
        "GET /api/token/?p=3&page_size=100" }, routes(env.m))
    end)

    it("stops after the last full page when the total is a multiple of 100", function()
      env.m:set_keys(helpers.seed(200))
      local n = 0
      for _ in env.client():each() do n = n + 1 end
      assert.are.equal(200, n)
      assert.are.same({ "GET /api/token/?p=1&page_size=100", "GET /api/token/?p=2&page_size=100" }, routes(env.m))
    end)

    it("filters with a table of field = value (names and normalised forms)", function()
      local c = env.client()
      local want = {}
      for i = 250, 1, -1 do if i % 7 == 0 then want[#want + 1] = i end end
      local got = {}
      for key in c:each { status = "disabled" } do got[#got + 1] = key.id end
      assert.are.same(want, got)
      got = {}
      for key in c:each { status = 2, name = "key-014" } do got[#got + 1] = key.id end
      assert.are.same({ 14 }, got)
      assert.matches("client_spec%.lua:%d+: cometkey%.each: stauts: unknown field",
        helpers.raises(function() c:each { stauts = 2 } end))
    end)

    it("filters with a function", function()
      local got = {}
      for key in env.client():each(function(k) return k.remain_quota > 1240 end) do got[#got + 1] = key.id end
      assert.are.same(range(250, 241, -1), got)
    end)

    it("raises when a page cannot be read", function()
      local c = env.client { retries = 0 }
      local it_ = c:each()
      assert.are.equal(250, it_().id)
      env.m:fault { type = "html", status = 502, match = "GET /api/token/" }
      for _ = 1, 99 do it_() end
      local msg = helpers.raises(function() it_() end)
      assert.matches("cometkey: GET /api/token/: HTTP 502", msg)
      assert.are.same({ "GET /api/token/?p=1&page_size=100", "GET /api/token/?p=2&page_size=100" },
        routes(env.m))
    end)
  end)

  describe("client:search", function()
    it("finds by exact keyword, by pattern and pages (paged style): { items, total, page, page_size }", function()
      local c = env.client()
      local function found(args) return ids_of(assert(c:search(args)).items) end
      assert.are.same({ 7 }, found { keyword = "key-007" })
      assert.are.same({ 7 }, found "key-007")
      assert.are.same(range(249, 240, -1), found { keyword = "key-24%" })
      local page = assert(c:search { keyword = "key-2%", page = 2, page_size = 10 })
      assert.are.same(range(240, 231, -1), ids_of(page.items))
      assert.are.same({ 2, 10, 51 }, { page.page, page.page_size, page.total }) -- key-2, key-20..key-249
      assert.are.same({ items = {}, total = 0, page = 1, page_size = 100 }, assert(c:search { keyword = "nope" }))
      local row = env.m:key(42)
      assert.are.same({ 42 }, found { token = "sk-" .. row.key })
      assert.are.same({
        "GET /api/token/search?keyword=key-007&p=1&page_size=100",
        "GET /api/token/search?keyword=key-007&p=1&page_size=100",
        "GET /api/token/search?keyword=key-24%25&p=1&page_size=100",
        "GET /api/token/search?keyword=key-2%25&p=2&page_size=10",
        "GET /api/token/search?keyword=nope&p=1&page_size=100",
        "GET /api/token/search?token=sk-" .. row.key .. "&p=1&page_size=100",
      }, routes(env.m))
    end)

    it("reads the old bare-array answer (array style) as one page", function()
      env.m:config { search_style = "array" }
      local found = assert(env.client():search { keyword = "key-24" })
      local ids = ids_of(found.items)
      table.sort(ids)
      assert.are.same(range(240, 249), ids)
      assert.are.same({ 10, 1, 10 }, { found.total, found.page, found.page_size })
      for _, key in ipairs(found.items) do assert_is_stored(key) end
    end)

    it("returns the server's refusal of a bad pattern as kind api", function()
      local info = assert_failure("api", env.client():search { keyword = "k%%" })
      assert.are.equal(200, info.status)
    end)

    it("raises on bad arguments and sends nothing", function()
      local c = env.client()
      assert.matches("give a keyword or a token", helpers.raises(function() c:search {} end))
      assert.matches("keyword must be a string", helpers.raises(function() c:search { keyword = 5 } end))
      assert.matches("unknown argument 'name'", helpers.raises(function() c:search { name = "x" } end))
      assert.matches("page_size must be an integer from 1 to 100",
        helpers.raises(function() c:search { keyword = "x", page_size = 500 } end))
      assert.matches("client_spec%.lua:%d+: cometkey%.search: arguments must be a table",
        helpers.raises(function() c:search(5) end))
      assert.are.same({}, routes(env.m))
    end)
  end)
end)

describe("client:create", function()
  it("returns the created record with its id (POST, then the newest page)", function()
    local c = env.client()
    local key = assert(c:create { name = "fresh", remain_quota = 5000, allow_ips = { "10.1.2.3/8", "::1" },
      model_limits = { " gpt-4o ", "o3" }, model_limits_enabled = true, group = "vip" })
    assert.are.equal(8, key.id)
    assert_is_stored(key)
    local row = env.m:key(8)
    assert.are.same({ "fresh", 1, 5000, -1, "10.0.0.0/8\n::1", "gpt-4o,o3", true, "vip" },
      { row.name, row.status, row.remain_quota, row.expired_time, row.allow_ips, row.model_limits,
        row.model_limits_enabled, row.group })
    assert.are.same({ "POST /api/token/", "GET /api/token/?p=1&page_size=100" }, routes(env.m))
    local sent = body(env.m:requests()[1])
    assert.are.equal("fresh", sent.name)
    assert.is_nil(sent.status)
    assert.is_nil(sent.id)
  end)

  it("sets a status given at create with a status_only PUT", function()
    local key = assert(env.client():create { name = "off-at-birth", status = "disabled", unlimited_quota = true })
    assert.are.equal(2, key.status)
    assert.are.equal(2, env.m:key(key.id).status)
    assert.is_true(env.m:key(key.id).unlimited_quota)
    assert.are.same({ "POST /api/token/", "GET /api/token/?p=1&page_size=100", "PUT /api/token/?status_only=1" },
      routes(env.m))
    assert.are.same({ id = key.id, status = 2 }, body(env.m:requests()[3]))
  end)

  -- Observed: the server allows duplicate names; the client picks the newest key (highest
  -- id) whose name and settings match what it sent, so a same-name key with other settings
  -- is never returned, but an identical key created by someone else in between would be.
  it("returns the newest key when two keys share a name", function()
    local c = env.client()
    local older_other = assert(c:create { name = "twin", remain_quota = 1 })
    local first = assert(c:create { name = "twin", remain_quota = 7 })
    local second = assert(c:create { name = "twin", remain_quota = 7 })
    assert.are.same({ 8, 9, 10 }, { older_other.id, first.id, second.id })
    local twins = 0
    for _, row in ipairs(env.m:keys()) do if row.name == "twin" then twins = twins + 1 end end
    assert.are.equal(3, twins)
  end)

  it("says the key was created when reading it back or setting its status fails", function()
    local c = env.client { retries = 0 }
    env.m:fault { type = "html", status = 502, match = "GET /api/token/" }
    local value, message, info = c:create { name = "half-done" }
    assert_failure("http", value, message, info)
    assert.matches("%(the key was created; reading it back failed%)$", message)
    assert.is_true(info.created)
    assert.are.equal("half-done", env.m:key(8).name)
    env.m:fault { type = "html", status = 502, match = "PUT /api/token/" }
    value, message, info = c:create { name = "half-off", status = 2 }
    assert_failure("http", value, message, info)
    assert.matches("%(the key was created as id 9 with status 1%)$", message)
    assert.are.same({ true, 9 }, { info.created, info.id })
    assert.are.equal(1, env.m:key(9).status)
    assert.are.same({ "POST /api/token/", "GET /api/token/?p=1&page_size=100", "POST /api/token/",
      "GET /api/token/?p=1&page_size=100", "PUT /api/token/?status_only=1" }, routes(env.m))
  end)

  it("returns api when the server refuses (token cap) and creates nothing", function()
    env.m:config { max_tokens = 6 }
    local info = assert_failure("api", env.client():create { name = "one-too-many" })
    assert.matches("6", info.message)
    assert.are.equal(7, #env.m:keys())
    assert.are.same({ "POST /api/token/" }, routes(env.m))
  end)

  it("raises on invalid fields with every problem listed and sends nothing", function()
    local c = env.client()
    local msg = helpers.raises(function()
      c:create { id = 3, name = ("x"):rep(51), expired_time = 0, colour = "red" }
    end)
    assert.matches("client_spec%.lua:%d+: cometkey%.create: ", msg)
    for _, field in ipairs({ "id: ", "name: ", "expired_time: ", "colour: unknown field" }) do
      assert.is_truthy(msg:find(field, 1, true), field .. " missing in " .. msg)
    end
    assert.matches("name: required", helpers.raises(function() c:create { remain_quota = 1 } end))
    assert.matches("model_limits_enabled = true with no models",
      helpers.raises(function() c:create { name = "x", model_limits_enabled = true } end))
    assert.are.same({}, routes(env.m))
  end)
end)

describe("client:delete", function()
  it("soft-deletes the key; get and delete then say not_found", function()
    local c = env.client()
    assert.is_true(c:delete(5))
    local row = env.m:key(5)
    assert.is_true(row.deleted)
    assert_failure("not_found", c:get(5))
    assert_failure("not_found", c:delete(5))
    assert.is_false(env.m:key(1).deleted)
    assert.are.same({ "DELETE /api/token/5", "GET /api/token/5", "DELETE /api/token/5" }, routes(env.m))
    assert.matches("id must be a positive integer", helpers.raises(function() c:delete(0) end))
  end)
end)

describe("client:close", function()
  it("is idempotent, and every call after it raises without sending", function()
    local c = env.client()
    assert(c:get(1))
    c:close()
    c:close()
    assert.matches("closed%)$", tostring(c))
    -- (no tail calls: the raise must point at these lines)
    local calls = {
      get = function() local _ = c:get(1) end,
      list = function() local _ = c:list() end,
      each = function() local _ = c:each() end,
      search = function() local _ = c:search "x" end,
      create = function() local _ = c:create { name = "x" } end,
      update = function() local _ = c:update { id = 1, name = "x" } end,
      update_many = function() local _ = c:update_many { { id = 1, status = 2 } } end,
      delete = function() local _ = c:delete(1) end,
    }
    for name, fn in pairs(calls) do
      assert.matches("client_spec%.lua:%d+: cometkey%." .. name .. ": client is closed", helpers.raises(fn))
    end
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
  end)
end)

describe("errors", function()
  it("not_found: a missing id", function()
    local info = assert_failure("not_found", env.client():get(999))
    assert.are.equal(200, info.status)
    assert.are.equal("record not found", info.message)
    assert.matches("^%d+%w+$", info.request_id)
    assert.is_false(info.retryable)
  end)

  it("auth: a wrong token (HTTP 200 success:false) and a missing New-Api-User (401)", function()
    local info = assert_failure("auth", env.client({ token = "not-the-token" }):get(1))
    assert.are.equal(200, info.status)
    assert.is_string(info.request_id)
    env.m:config { require_user_header = true }
    info = assert_failure("auth", env.client({ user_id = false }):list())
    assert.are.equal(401, info.status)
    assert.is_string(info.request_id)
    assert.are.same({ "GET /api/token/1", "GET /api/token/?p=1&page_size=100" }, routes(env.m))
  end)

  it("api: the enable guard (through the client) and a name over 50 bytes (core.request)", function()
    local c = env.client()
    local info = assert_failure("api", c:update { id = 3, status = "enabled" })
    assert.matches("expired and cannot be enabled", info.message)
    assert.are.equal(200, info.status)
    assert.are.equal(3, env.m:key(3).status)
    -- validation stops a long name in the client, so send one by hand
    local row = env.m:key(1)
    local fields = { id = 1 }
    for _, f in ipairs({ "expired_time", "remain_quota", "unlimited_quota", "model_limits_enabled",
      "model_limits", "allow_ips", "group", "cross_group_retry" }) do fields[f] = row[f] end
    fields.name = ("n"):rep(51)
    local built = core.request("update", { fields = fields }, c.request_conf)
    local res = assert(c.transport:request { method = built.method, url = env.m.url .. built.path,
      headers = built.headers, body = built.body, timeout = 5 })
    res.request = { method = built.method, path = built.path }
    info = assert_failure("api", core.response("update", res))
    assert.are.equal("Token name is too long", info.message)
    assert.are.equal("production", env.m:key(1).name)
  end)

  it("rate_limited: 429s beyond the retry budget", function()
    env.m:fault { type = "ratelimit", count = 3, retry_after = 0 }
    local info = assert_failure("rate_limited", env.client({ retries = 2 }):get(1))
    assert.are.equal(429, info.status)
    assert.are.equal(3, info.attempts)
    assert.are.same({ "GET /api/token/1", "GET /api/token/1", "GET /api/token/1" }, routes(env.m))
  end)

  it("rate_limited: the server's own rate limiter", function()
    env.m:config { rate_limit = { requests = 2, window = 60 } }
    local c = env.client { retries = 0 }
    assert(c:get(1))
    assert(c:get(1))
    local info = assert_failure("rate_limited", c:get(1))
    assert.are.equal(1, info.attempts)
  end)

  it("http: an HTML 502 page (retried) and a 500 (not retried)", function()
    env.m:fault { type = "html", status = 502, count = 3 }
    local value, message, info = env.client({ retries = 2 }):get(1)
    assert_failure("http", value, message, info)
    assert.matches("HTTP 502 with an HTML body", message)
    assert.are.equal(502, info.status)
    assert.are.equal(3, info.attempts)
    assert.is_string(info.request_id)
    env.m:clear_requests()
    env.m:fault { type = "status", status = 500, body = "oops", count = 3 }
    info = assert_failure("http", env.client({ retries = 2 }):get(1))
    assert.are.equal(500, info.status)
    assert.are.equal(1, info.attempts)
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
  end)

  it("decode: a body that is not JSON", function()
    env.m:fault { type = "nonjson" }
    local value, message, info = env.client():get(1)
    assert_failure("decode", value, message, info)
    assert.matches("cannot decode the response", message)
    assert.are.equal(200, info.status)
    assert.are.equal("upstream says hi", info.message)
    assert.is_string(info.request_id)
  end)

  it("network: a closed port", function()
    local c = env.client { base_url = "http://127.0.0.1:" .. helpers.closed_port(), retries = 1 }
    local info = assert_failure("network", c:get(1))
    assert.is_false(info.sent)
    assert.are.equal(2, info.attempts)
  end)

  it("timeout: a delay beyond the timeout, returned within timeout + 1 s", function()
    env.m:fault { type = "delay", seconds = 3 }
    local c = env.client { timeout = 0.5, retries = 2 }
    local elapsed, r = helpers.timed(c.get, c, 1)
    local info = assert_failure("timeout", r[1], r[2], r[3])
    assert.is_true(elapsed >= 0.45 and elapsed < 1.5, "elapsed " .. elapsed)
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
    assert.is_truthy(info.attempts >= 1)
  end)

  it("too_large: a body over max_body", function()
    env.m:fault { type = "big", bytes = 200000 }
    local info = assert_failure("too_large", env.client({ max_body = 4096 }):list())
    assert.is_false(info.retryable)
    assert.are.equal(1, info.attempts)
  end)

  it("conflict: an expectation that does not hold, nothing written", function()
    local before = env.m:key(1)
    local info = assert_failure("conflict", env.client():update({ id = 1, name = "x" }, { expect = { status = 2 } }))
    assert.are.equal("status", info.field)
    assert.are.same({}, helpers.row_diff(before, env.m:key(1)))
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
  end)
end)

describe("retries", function()
  local FAULTS = {
    { type = "html", status = 502 },
    { type = "status", status = 503, body = "" },
    { type = "ratelimit", retry_after = 0 },
    { type = "reset" },
  }

  it("retries one 502/503/429/reset on a GET and succeeds", function()
    local c = env.client()
    for _, f in ipairs(FAULTS) do
      env.m:clear_requests()
      env.m:fault(f)
      local key = assert(c:get(1))
      assert.are.equal(1, key.id)
      local log = env.m:requests()
      assert.are.same({ "GET /api/token/1", "GET /api/token/1" }, routes(env.m), f.type)
      assert.are.equal(f.type, log[1].fault)
    end
  end)

  it("retries one 502/503/429/reset on a PUT and the write lands once", function()
    local c = env.client()
    for n, f in ipairs(FAULTS) do
      env.m:clear_requests()
      f.match = "PUT /api/token/"
      env.m:fault(f)
      local key = assert(c:update { id = 1, remain_quota = 1000 + n })
      assert.are.equal(1000 + n, key.remain_quota)
      assert.are.equal(1000 + n, env.m:key(1).remain_quota)
      assert.are.same({ "GET /api/token/1", "PUT /api/token/", "PUT /api/token/" }, routes(env.m), f.type)
    end
  end)

  it("reports the attempts on failure, and retries = 0 disables retrying", function()
    env.m:fault { type = "html", status = 503, count = 5 }
    local info = assert_failure("http", env.client({ retries = 3 }):get(1))
    assert.are.equal(4, info.attempts)
    env.m:clear_requests()
    env.m:clear_faults()
    env.m:fault { type = "html", status = 502 }
    info = assert_failure("http", env.client({ retries = 0 }):get(1))
    assert.are.equal(1, info.attempts)
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
  end)

  it("honours Retry-After", function()
    env.m:fault { type = "ratelimit", retry_after = 1 }
    local c = env.client()
    local elapsed, r = helpers.timed(c.get, c, 1)
    assert.are.equal(1, r[1].id)
    assert.is_true(elapsed >= 1 and elapsed < 1.8, "elapsed " .. elapsed)
    local log = env.m:requests()
    assert.are.equal(2, #log)
    assert.is_true(log[2].time - log[1].time >= 0.99)
  end)

  it("does not retry a POST the server may have processed (observed: the key exists)", function()
    env.m:fault { type = "reset", processed = true, match = "POST /api/token/" }
    local info = assert_failure("network", env.client({ retries = 2 }):create { name = "maybe" })
    assert.is_true(info.sent)
    assert.are.equal(1, info.attempts)
    assert.are.same({ "POST /api/token/" }, routes(env.m))
    assert.are.equal("maybe", env.m:key(8).name) -- created once, although the client saw a failure
    assert.is_nil(env.m:key(9))
  end)

  it("does not retry a POST answered 502", function()
    env.m:fault { type = "html", status = 502, match = "POST" }
    local info = assert_failure("http", env.client():create { name = "no" })
    assert.are.equal(1, info.attempts)
    assert.are.same({ "POST /api/token/" }, routes(env.m))
    assert.are.equal(7, #env.m:keys())
  end)

  it("retries a create that never left the host (closed port), then gives up", function()
    local c = env.client { base_url = "http://127.0.0.1:" .. helpers.closed_port(), retries = 2 }
    local info = assert_failure("network", c:create { name = "x" })
    assert.is_false(info.sent)
    assert.are.equal(3, info.attempts)
  end)

  it("stops retrying at the timeout", function()
    env.m:fault { type = "status", status = 503, count = -1 }
    local c = env.client { timeout = 1, retries = 10 }
    local elapsed, r = helpers.timed(c.get, c, 1)
    local info = assert_failure("http", r[1], r[2], r[3])
    assert.is_true(elapsed < 1.2, "elapsed " .. elapsed)
    assert.is_true(info.attempts >= 2 and info.attempts < 11, "attempts " .. info.attempts)
    assert.are.equal(info.attempts, #env.m:requests())
  end)
end)

describe("keep-alive", function()
  it("20 calls on one client use one connection", function()
    local c = env.client()
    for i = 1, 20 do
      if i % 2 == 0 then assert(c:get(1)) else assert(c:update { id = 1, status = 1 + i % 2 }) end
    end
    local stats = env.m:stats()
    assert.are.equal(20, stats.requests)
    assert.are.equal(1, stats.connections)
  end)
end)

describe("callback form", function()
  local function recorder()
    local calls = {}
    return calls, function(...) calls[#calls + 1] = { n = select("#", ...), ... } end
  end

  it("calls back exactly once with (nil, result) on success", function()
    local c = env.client()
    local calls, cb = recorder()
    assert.are.equal(0, select("#", c:get(1, cb)))
    assert.are.equal(1, #calls)
    assert.is_nil(calls[1][1])
    assert.are.equal(1, calls[1][2].id)
    assert.is_nil(calls[1][3])
    calls, cb = recorder()
    c:update({ id = 1, name = "async" }, cb)
    assert.are.equal(1, #calls)
    assert.are.equal("async", calls[1][2].name)
    assert.are.equal("async", env.m:key(1).name)
    calls, cb = recorder()
    c:list(cb)
    assert.are.equal(6, calls[1][2].total)
  end)

  it("calls back exactly once with (err, nil, info) on failure", function()
    local c = env.client()
    local calls, cb = recorder()
    c:get(999, cb)
    assert.are.equal(1, #calls)
    assert.matches("^cometkey: GET /api/token/999: ", calls[1][1])
    assert.is_nil(calls[1][2])
    assert.are.equal("not_found", calls[1][3].kind)
    calls, cb = recorder()
    env.m:fault { type = "html", status = 502, count = 2 }
    env.client({ retries = 1 }):delete(1, cb)
    assert.are.equal(1, #calls)
    assert.are.equal("http", calls[1][3].kind)
    assert.are.equal(2, calls[1][3].attempts)
    assert.is_false(env.m:key(1).deleted)
  end)
end)
