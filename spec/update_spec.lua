-- spec/update_spec.lua - every path of client:update end to end against the local mock:
-- status only, the read-merge-write of each editable field, status ordering around the
-- full PUT (and the server's enable guard that makes it necessary), stored states that
-- cannot be echoed, replace, dry_run, expect and validation. Each test checks the mock's
-- stored rows before and after, and the exact requests it received.
local cometkey = require "cometkey"
local core = require "cometkey.core"
local helpers = require "spec.support.helpers"

local env = helpers.use_mock_env()

local routes, body, row_diff = helpers.routes, helpers.body, helpers.row_diff

local NINE = { "name", "expired_time", "remain_quota", "unlimited_quota", "model_limits_enabled",
  "model_limits", "allow_ips", "group", "cross_group_retry" }

local FULL_PUT_KEYS = { "allow_ips", "cross_group_retry", "expired_time", "group", "id", "model_limits",
  "model_limits_enabled", "name", "remain_quota", "status", "unlimited_quota" }

local function log() return env.m:requests() end

-- Asserts that the stored row changed exactly in `changes` ({ field = new value }).
local function assert_changed(before, changes)
  local after = env.m:key(before.id)
  local d = row_diff(before, after)
  local want = {}
  for f, v in pairs(changes) do want[f] = { from = before[f], to = v } end
  assert.are.same(want, d)
  return after
end

local function assert_conflict(field, value, message, info)
  assert.is_nil(value)
  assert.is_true(helpers.one_line(message), tostring(message))
  assert.are.equal("conflict", info.kind)
  assert.are.equal(field, info.field)
  assert.is_truthy(message:find(field, 1, true), message)
  return info
end

-- Sends a request built by core.request through the client's transport, untouched by
-- the client's planning; returns core.response's mapping.
local function send_raw(c, op, args)
  local built = core.request(op, args, c.request_conf) -- with New-Api-User
  local url = env.m.url .. built.path .. (built.query and ("?" .. built.query) or "")
  local res = assert(c.transport:request { method = built.method, url = url, headers = built.headers,
    body = built.body, timeout = 5 })
  res.request = { method = built.method, path = built.path }
  return core.response(op, res)
end

local function future(days) return os.time() + days * 86400 end

describe("status only", function()
  it("is exactly one PUT ?status_only=1 with {id, status}, no GET", function()
    local before = env.m:key(1)
    local key = assert(env.client():update { id = 1, status = 2 })
    assert.are.equal(2, key.status)
    assert_changed(before, { status = 2 })
    assert.are.same({ "PUT /api/token/?status_only=1" }, routes(env.m))
    assert.are.same({ id = 1, status = 2 }, body(log()[1]))
  end)

  it("takes the status by name", function()
    local c = env.client()
    local before = env.m:key(2)
    assert(c:update { id = 2, status = "enabled" })
    assert_changed(before, { status = 1 })
    assert(c:update { id = 2, status = "exhausted" })
    assert.are.equal(4, env.m:key(2).status)
    assert.are.same({ { id = 2, status = 1 }, { id = 2, status = 4 } }, { body(log()[1]), body(log()[2]) })
  end)
end)

describe("read-merge-write", function()
  it("rename: GET then one full PUT of all nine fields; nothing else changes", function()
    local before = env.m:key(5)
    local key = assert(env.client():update { id = 5, name = "ci-runner-2" })
    assert.are.equal("ci-runner-2", key.name)
    assert_changed(before, { name = "ci-runner-2" })
    assert.are.same({ "GET /api/token/5", "PUT /api/token/" }, routes(env.m))
    local sent = body(log()[2])
    assert.are.same(FULL_PUT_KEYS, helpers.keys_of(sent))
    assert.are.equal(before.status, sent.status)
    for _, f in ipairs(NINE) do
      if f ~= "name" then assert.are.equal(before[f], sent[f], f) end
    end
  end)

  it("changes each of the nine fields alone, normalised, leaving the rest", function()
    local t = future(10)
    local cases = {
      { "name", "renamed", "renamed" },
      { "expired_time", t, t },
      { "remain_quota", 42, 42 },
      { "unlimited_quota", true, true },
      { "model_limits_enabled", false, false },
      { "model_limits", { " gpt-4o-mini ", "o3" }, "gpt-4o-mini,o3" },
      { "model_limits", "a, b ,c", "a,b,c" },
      { "allow_ips", { "10.1.2.3/8", "192.168.1.10", "2001:DB8::1" }, "10.0.0.0/8\n192.168.1.10\n2001:db8::1" },
      { "allow_ips", "172.16.0.1, 172.16.0.2", "172.16.0.1\n172.16.0.2" },
      { "allow_ips", "", "" },
      { "allow_ips", cometkey.null, "" }, -- observed: null and "" both mean "no restriction"; "" is sent
      { "group", "vip", "vip" },
      { "cross_group_retry", true, true },
    }
    local c = env.client()
    for _, case in ipairs(cases) do
      local field, value, stored = case[1], case[2], case[3]
      env.m:reset()
      if field == "cross_group_retry" then -- kept only on an "auto" key (2026-08+ servers)
        local rows = env.m:keys()
        for _, r in ipairs(rows) do if r.id == 5 then r.group = "auto" end end
        env.m:set_keys(rows)
      end
      local before = env.m:key(5)
      local key = assert(c:update { id = 5, [field] = value })
      assert_changed(before, { [field] = stored })
      assert.are.same({ "GET /api/token/5", "PUT /api/token/" }, routes(env.m), field)
      local sent = body(log()[2])
      assert.are.same(FULL_PUT_KEYS, helpers.keys_of(sent), field)
      assert.are.equal(stored, sent[field], field)
      assert.are.equal(stored, key[field], field)
    end
  end)

  it("round-trips a 15-digit quota exactly", function()
    local q = 123456789012345
    local key = assert(env.client():update { id = 1, remain_quota = q })
    assert.are.equal(q, key.remain_quota)
    if math.type then assert.are.equal("integer", math.type(key.remain_quota)) end
    assert.are.equal(q, env.m:key(1).remain_quota)
    assert.is_truthy(log()[2].body:find('"remain_quota":123456789012345[,}]'), log()[2].body)
    local max = 500000000000000
    assert(env.client():update { id = 1, remain_quota = max })
    assert.are.equal(max, env.m:key(1).remain_quota)
    assert.matches("remain_quota: must be between 0 and 500000000000000",
      helpers.raises(function() env.client():update { id = 1, remain_quota = max + 1 } end))
  end)

  it("leaves a stored status outside 1..4 out of the full PUT (the server never writes it)", function()
    env.m:set_keys { { id = 1, name = "odd", status = 0, remain_quota = 5 }, { id = 2, name = "odd", status = 99 } }
    local before = env.m:key(1)
    local key = assert(env.client():update { id = 1, name = "renamed" })
    assert.are.equal(0, key.status)
    assert_changed(before, { name = "renamed" })
    assert.is_nil(body(log()[2]).status)
    before = env.m:key(2)
    assert(env.client():update { id = 2, group = "g", status = 2 })
    assert_changed(before, { group = "g", status = 2 })
  end)

  it("echoes a stored expired_time of 0 and a NULL allow_ips unchanged", function()
    env.m:set_keys { { id = 1, name = "zero", expired_time = 0, remain_quota = 10, allow_ips = cometkey.null } }
    local before = env.m:key(1)
    assert.are.equal(cometkey.null, before.allow_ips)
    local key = assert(env.client():update { id = 1, name = "zero-renamed" })
    assert.are.equal(0, key.expired_time)
    assert.is_nil(key.allow_ips)
    assert_changed(before, { name = "zero-renamed" })
    local sent = body(log()[2])
    assert.are.equal(0, sent.expired_time)
    assert.are.equal(cometkey.null, sent.allow_ips)
  end)
end)

describe("status with other fields", function()
  it("disable + rename: the status PUT goes before the full PUT", function()
    local before = env.m:key(1)
    local key = assert(env.client():update { id = 1, status = "disabled", name = "cut-first" })
    assert.are.equal(2, key.status)
    assert_changed(before, { status = 2, name = "cut-first" })
    assert.are.same({ "GET /api/token/1", "PUT /api/token/?status_only=1", "PUT /api/token/" }, routes(env.m))
    assert.are.same({ id = 1, status = 2 }, body(log()[2]))
    assert.are.equal(2, body(log()[3]).status)
  end)

  it("enable + new expiry on an expired key: full PUT first, then status_only", function()
    local before = env.m:key(3)
    assert.are.equal(3, before.status)
    assert.is_true(before.expired_time > 0 and before.expired_time < os.time())
    local t = future(30)
    local key = assert(env.client():update { id = 3, status = 1, expired_time = t })
    assert.are.equal(1, key.status)
    assert.are.equal(t, key.expired_time)
    assert_changed(before, { status = 1, expired_time = t })
    assert.are.same({ "GET /api/token/3", "PUT /api/token/", "PUT /api/token/?status_only=1" }, routes(env.m))
    assert.are.equal(3, body(log()[2]).status) -- the stored status, never 1: no enable guard
    assert.are.same({ id = 3, status = 1 }, body(log()[3]))
  end)

  it("the naive orders fail on the same key (the mock reproduces the enable guard)", function()
    local c = env.client()
    local before = env.m:key(3)
    local t = future(30)
    -- enable first: the guard sees the old, past expiry
    local value, message, info = send_raw(c, "status", { id = 3, status = 1 })
    assert.is_nil(value)
    assert.are.equal("api", info.kind)
    assert.matches("expired and cannot be enabled", message)
    -- one full PUT echoing status 1 with the new expiry: refused as a whole
    local fields = { id = 3, status = 1 }
    for _, f in ipairs(NINE) do fields[f] = before[f] end
    fields.expired_time = t
    value, message, info = send_raw(c, "update", { fields = fields })
    assert.is_nil(value)
    assert.are.equal("api", info.kind)
    assert.matches("expired and cannot be enabled", message)
    assert.are.same({}, row_diff(before, env.m:key(3)))
    -- the client's order works on the very same stored row
    assert(c:update { id = 3, status = 1, expired_time = t })
    assert_changed(before, { status = 1, expired_time = t })
  end)

  it("enable on an exhausted key with a new quota", function()
    local before = env.m:key(4)
    assert.are.same({ 4, 0 }, { before.status, before.remain_quota })
    local key = assert(env.client():update { id = 4, status = "enabled", remain_quota = 9000 })
    assert.are.same({ 1, 9000 }, { key.status, key.remain_quota })
    assert_changed(before, { status = 1, remain_quota = 9000 })
    assert.are.same({ "GET /api/token/4", "PUT /api/token/", "PUT /api/token/?status_only=1" }, routes(env.m))
  end)

  it("keeps the stored status when it is already the target (no status request)", function()
    local before = env.m:key(1)
    assert(env.client():update { id = 1, status = 1, group = "g" })
    assert_changed(before, { group = "g" })
    assert.are.same({ "GET /api/token/1", "PUT /api/token/" }, routes(env.m))
  end)

  it("says how far it got when a later request fails", function()
    env.m:fault { { type = "delay", seconds = 0, match = "PUT" }, { type = "html", status = 502, match = "PUT" } }
    local before = env.m:key(3)
    local t = future(5)
    local value, message, info = env.client({ retries = 0 }):update { id = 3, status = 1, expired_time = t }
    assert.is_nil(value)
    assert.are.equal("http", info.kind)
    assert.are.equal(1, info.applied)
    assert.matches("after 1 of 2 requests had been applied", message)
    assert_changed(before, { expired_time = t })
  end)
end)

describe("stored states that cannot be echoed", function()
  local function seed_negative(unlimited)
    env.m:set_keys { { id = 1, name = "overdrawn", remain_quota = -250, unlimited_quota = unlimited, used_quota = 5 } }
    return env.m:key(1)
  end

  it("a negative remain_quota on a limited key + rename: conflict, nothing written", function()
    local before = seed_negative(false)
    local value, message, info = env.client():update { id = 1, name = "x" }
    assert_conflict("remain_quota", value, message, info)
    assert.matches("set remain_quota", message)
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
    assert.are.same({}, row_diff(before, env.m:key(1)))
  end)

  it("the same with remain_quota named succeeds", function()
    local before = seed_negative(false)
    assert(env.client():update { id = 1, name = "x", remain_quota = 0 })
    assert_changed(before, { name = "x", remain_quota = 0 })
  end)

  it("an unlimited key with a negative quota + rename succeeds and keeps the quota", function()
    local before = seed_negative(true)
    local key = assert(env.client():update { id = 1, name = "x" })
    assert.are.equal(-250, key.remain_quota)
    assert_changed(before, { name = "x" })
    assert.are.equal(-250, body(log()[2]).remain_quota)
  end)

  it("model_limits_enabled = true while the stored models are empty: conflict", function()
    local before = env.m:key(1)
    assert.are.equal("", before.model_limits)
    assert_conflict("model_limits_enabled", env.client():update { id = 1, model_limits_enabled = true })
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
    assert.are.same({}, row_diff(before, env.m:key(1)))
    assert(env.client():update { id = 1, model_limits_enabled = true, model_limits = "gpt-4o" })
    assert_changed(before, { model_limits_enabled = true, model_limits = "gpt-4o" })
  end)

  it("a stored name over 50 bytes: conflict unless the name is set", function()
    env.m:set_keys { { id = 1, name = ("n"):rep(60), remain_quota = 1 } }
    local before = env.m:key(1)
    assert_conflict("name", env.client():update { id = 1, group = "g" })
    assert.are.same({}, row_diff(before, env.m:key(1)))
    assert(env.client():update { id = 1, group = "g", name = "short" })
    assert_changed(before, { group = "g", name = "short" })
  end)
end)

describe("replace", function()
  local function all_nine(over)
    local f = { id = 1, name = "replaced", expired_time = -1, remain_quota = 77, unlimited_quota = false,
      model_limits_enabled = false, model_limits = "", allow_ips = "", group = "", cross_group_retry = false }
    for k, v in pairs(over or {}) do f[k] = v end
    return f
  end

  it("sends exactly one PUT of the given fields, without reading", function()
    local before = env.m:key(1)
    local key = assert(env.client():update(all_nine(), { replace = true }))
    assert.are.equal(77, key.remain_quota)
    assert_changed(before, { name = "replaced", remain_quota = 77 })
    assert.are.same({ "PUT /api/token/" }, routes(env.m))
    local sent = body(log()[1])
    local keys = helpers.keys_of(sent)
    assert.are.same({ "allow_ips", "cross_group_retry", "expired_time", "group", "id", "model_limits",
      "model_limits_enabled", "name", "remain_quota", "unlimited_quota" }, keys) -- no status
  end)

  it("requires all nine fields (raises, nothing sent)", function()
    local c = env.client()
    for _, f in ipairs(NINE) do
      local fields = all_nine()
      fields[f] = nil
      local msg = helpers.raises(function() c:update(fields, { replace = true }) end)
      assert.matches("update_spec%.lua:%d+: cometkey%.update: " .. f .. ": required in replace mode", msg)
    end
    assert.are.same({}, routes(env.m))
  end)

  it("orders a status change around its PUT", function()
    assert(env.client():update(all_nine { status = 2 }, { replace = true }))
    assert.are.same({ "PUT /api/token/?status_only=1", "PUT /api/token/" }, routes(env.m))
    assert.are.equal(2, env.m:key(1).status)
  end)
end)

describe("dry_run", function()
  it("returns the requests and the diff, and only reads", function()
    local before = env.m:key(1)
    local plan = assert(env.client():update({ id = 1, name = "planned", status = 2 }, { dry_run = true }))
    assert.is_true(plan.dry_run)
    assert.are.equal(1, plan.id)
    assert.are.same({ name = { from = "production", to = "planned" }, status = { from = 1, to = 2 } }, plan.diff)
    assert.are.equal(2, #plan.requests)
    assert.are.same({ "PUT", "/api/token/", "status_only=1" },
      { plan.requests[1].method, plan.requests[1].path, plan.requests[1].query })
    assert.are.same({ id = 1, status = 2 }, require("cjson").decode(plan.requests[1].body))
    local full = require("cjson").decode(plan.requests[2].body)
    assert.are.same(FULL_PUT_KEYS, helpers.keys_of(full))
    assert.are.equal("planned", full.name)
    assert.are.equal(before.remain_quota, full.remain_quota)
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
    assert.are.same({}, row_diff(before, env.m:key(1)))
  end)

  it("plans the enable of an expired key as full PUT then status_only", function()
    local plan = assert(env.client():update({ id = 3, status = 1, expired_time = future(1) }, { dry_run = true }))
    assert.are.same({ "/api/token/", "/api/token/" }, { plan.requests[1].path, plan.requests[2].path })
    assert.is_nil(plan.requests[1].query)
    assert.are.equal("status_only=1", plan.requests[2].query)
    assert.are.same({ "GET /api/token/3" }, routes(env.m))
    assert.are.equal(3, env.m:key(3).status)
  end)
end)

describe("expect", function()
  it("proceeds when the stored values match", function()
    local before = env.m:key(1)
    assert(env.client():update({ id = 1, name = "checked" }, { expect = { status = 1, name = "production" } }))
    assert_changed(before, { name = "checked" })
    assert.are.same({ "GET /api/token/1", "PUT /api/token/" }, routes(env.m))
  end)

  it("refuses with conflict when they differ, nothing written", function()
    local before = env.m:key(1)
    local value, message, info = env.client():update({ id = 1, status = 2 }, { expect = { status = 2 } })
    assert_conflict("status", value, message, info)
    assert.are.same({ 2, 1 }, { info.expected, info.actual })
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
    assert.are.same({}, row_diff(before, env.m:key(1)))
  end)

  it("compares allow_ips in normalised form", function()
    local before = env.m:key(5)
    assert.are.equal("10.0.0.0/8\n192.168.1.10", before.allow_ips)
    assert(env.client():update({ id = 5, group = "g" }, { expect = { allow_ips = { "10.1.2.3/8", "192.168.1.10" } } }))
    assert_changed(before, { group = "g" })
    env.m:clear_requests()
    local value, message, info =
      env.client():update({ id = 5, group = "h" }, { expect = { allow_ips = "10.1.2.3/16\n192.168.1.10" } })
    assert_conflict("allow_ips", value, message, info)
    assert.is_truthy(message:find('is "10.0.0.0/8\\n192.168.1.10", expected "10.1.0.0/16\\n192.168.1.10"', 1, true),
      message)
    assert.are.same({ "GET /api/token/5" }, routes(env.m))
  end)

  it("normalises the stored value too (the server stores allow_ips as sent)", function()
    env.m:set_keys { { id = 1, name = "raw", remain_quota = 1, allow_ips = "10.1.2.3/8, 2001:DB8::1" } }
    local before = env.m:key(1)
    assert(env.client():update({ id = 1, name = "ok" }, { expect = { allow_ips = "10.0.0.0/8\n2001:db8::1" } }))
    assert_changed(before, { name = "ok" })
    env.m:clear_requests()
    assert_conflict("allow_ips",
      env.client():update({ id = 1, name = "no" }, { expect = { allow_ips = "10.0.0.0/8" } }))
    assert.are.same({ "GET /api/token/1" }, routes(env.m))
  end)
end)

describe("validation", function()
  it("raises with every problem listed and sends nothing", function()
    local c = env.client()
    local msg = helpers.raises(function()
      c:update { id = 1, stauts = 2, name = ("é"):rep(26), expired_time = 0, remain_quota = -1,
        unlimited_quota = "yes", model_limits = { "a b" }, allow_ips = { "10.0.0.256" }, group = 5 }
    end)
    assert.matches("^[^\n]*update_spec%.lua:%d+: cometkey%.update: ", msg)
    for _, field in ipairs({ "name: must be at most 50 bytes", "expired_time: 0 is refused", "remain_quota: ",
      "unlimited_quota: ", "model_limits: ", "allow_ips: ", "group: ",
      "stauts: unknown field (did you mean status?)" }) do
      assert.is_truthy(msg:find(field, 1, true), field .. " missing in " .. msg)
    end
    assert.matches("id: required", helpers.raises(function() c:update { name = "x" } end))
    assert.matches("nothing to update", helpers.raises(function() c:update { id = 1 } end))
    assert.matches("unknown option 'dryrun'",
      helpers.raises(function() c:update({ id = 1, status = 1 }, { dryrun = true }) end))
    assert.matches("cometkey%.update: opts%.expect: bogus: unknown field",
      helpers.raises(function() c:update({ id = 1, status = 1 }, { expect = { bogus = 1 } }) end))
    assert.matches("opts%.expect must be a table",
      helpers.raises(function() c:update({ id = 1, status = 1 }, { expect = 1 }) end))
    assert.matches("fields must be a table", helpers.raises(function() c:update(1) end))
    assert.are.same({}, routes(env.m))
  end)
end)
