-- spec/server2026_spec.lua - the 2026 server end to end (issue #12): reveal, reveal_many,
-- delete_many, search pages, each over search, server_settings, remain_quota_usd, the
-- cross_group_retry rule, the New-Api-User hint and the limiter, against the mock's 2026
-- defaults; then the same calls against each older build and switch (2025, 2026-03,
-- unmasked keys, no New-Api-User, no limiter, personal-access-token auth); and the server's
-- reading of stored allowlists.
local cometkey = require "cometkey"
local helpers = require "spec.support.helpers"

local env = helpers.use_mock_env()

local routes, body = helpers.routes, helpers.body

local function masked(key) return key:sub(1, 4) .. "**********" .. key:sub(-4) end

local function range(from, to)
  local out = {}
  for i = from, to do out[#out + 1] = i end
  return out
end

-- A world failure: nil, a one-line message, info of that kind; nothing secret in them.
local function assert_failure(kind, value, message, info)
  assert.is_nil(value)
  assert.is_true(helpers.one_line(message), tostring(message))
  assert.is_table(info)
  assert.are.equal(kind, info.kind, message)
  return info
end

-- Runs an async call (callback form) to completion on the sync transport's loop.
local function await(c, start)
  local out
  start(function(...) out = table.pack and table.pack(...) or { n = select("#", ...), ... } end)
  local deadline = helpers.now() + 10
  while out == nil and helpers.now() < deadline do c.transport:sleep(0.01) end
  assert.is_table(out, "the callback was not called")
  return out
end

-- Seeds n keys of the test user (ids 1..n, names key-001..) plus key n + 1 of the other user.
local function seed(n)
  local rows = helpers.seed(n)
  rows[#rows + 1] = { id = n + 1, user_id = env.m.other_user_id, name = "theirs" }
  env.m:set_keys(rows)
  env.m:clear_requests()
end

describe("2026 server (the mock's defaults)", function()
  describe("reveal", function()
    it("create then reveal gives the full, working key; list and get only show it masked", function()
      local c = env.client()
      local key = assert(c:create { name = "fresh", remain_quota = 1000 })
      local stored = env.m:key(key.id).key
      assert.are.equal(48, #stored)
      assert.are.equal(masked(stored), key.key) -- what create read back
      local full = assert(c:reveal(key.id))
      assert.are.equal(stored, full)
      assert.are.equal("POST /api/token/" .. key.id .. "/key", routes(env.m)[#routes(env.m)])
      -- the revealed key is the one the server authenticates: it is the stored row's key
      assert.are.equal(key.id, (function()
        for _, row in ipairs(env.m:keys()) do if row.key == full then return row.id end end
      end)())
    end)

    it("has a callback form, and a missing key is not_found", function()
      local c = env.client()
      local r = await(c, function(cb) c:reveal(1, cb) end)
      assert.is_nil(r[1])
      assert.are.equal(env.m:key(1).key, r[2])
      assert_failure("not_found", c:reveal(7)) -- the other user's
      assert_failure("not_found", c:reveal(999))
    end)

    it("an answer without a string data.key is kind decode, and the key never shows", function()
      local lines = {}
      local c = env.client { debug = function(line) lines[#lines + 1] = line end }
      env.m:fault { type = "status", status = 200, match = "POST /api/token/1/key",
        body = '{"success":true,"message":"","data":{"key":42}}' }
      local _, message = c:reveal(1)
      assert.matches("data.key is not a string", message, 1, true)
      local full = assert(c:reveal(1))
      local r = await(c, function(cb) c:reveal(1, cb) end)
      assert.are.equal(full, r[2])
      local seen = table.concat(lines, "\n") .. tostring(c) .. message
      assert.is_true(#lines >= 6)
      assert.is_nil(seen:find(full, 1, true), "the key in a debug line, message or tostring")
      assert.is_nil(seen:find(full:sub(5, -5), 1, true))
    end)

    it("raises on a bad id and sends nothing", function()
      local c = env.client()
      env.m:clear_requests()
      for _, bad in ipairs({ 0, -1, 1.5, "1", true }) do
        assert.matches("cometkey%.reveal: id must be a positive integer", helpers.raises(function() c:reveal(bad) end))
      end
      assert.are.same({}, routes(env.m))
    end)
  end)

  describe("reveal_many", function()
    it("reveals 150 keys in two requests of at most 100 ids; other users' ids are absent", function()
      seed(150)
      local c = env.client()
      local ids = range(1, 151)
      ids[#ids + 1] = 3 -- a duplicate: merged
      local keys = assert(c:reveal_many(ids))
      local n = 0
      for id, key in pairs(keys) do
        n = n + 1
        assert.are.equal(env.m:key(id).key, key)
      end
      assert.are.equal(150, n)
      assert.is_nil(keys[151])
      local log = env.m:requests()
      assert.are.same({ "POST /api/token/batch/keys", "POST /api/token/batch/keys" }, routes(env.m))
      assert.are.equal(100, #body(log[1]).ids)
      assert.are.equal(51, #body(log[2]).ids)
    end)

    it("has a callback form", function()
      local c = env.client()
      local r = await(c, function(cb) c:reveal_many({ 1, 2 }, cb) end)
      assert.is_nil(r[1])
      assert.are.same({ [1] = env.m:key(1).key, [2] = env.m:key(2).key }, r[2])
    end)

    it("raises on bad ids (naming the argument) and sends nothing", function()
      local c = env.client()
      env.m:clear_requests()
      local big = range(1, 10001)
      local cases = {
        { {}, "ids must not be empty" },
        { "1,2", "ids must be an array of key ids" },
        { { 1, 2.5 }, "ids%[2%] must be a positive integer" },
        { { 1, "2" }, "ids%[2%] must be a positive integer" },
        { { 0 }, "ids%[1%] must be a positive integer" },
        { { 1, x = 2 }, "ids must be an array" },
        { big, "ids: at most 10000 ids in one call, got 10001" },
      }
      for _, case in ipairs(cases) do
        assert.matches("cometkey%.reveal_many: " .. case[2], helpers.raises(function() c:reveal_many(case[1]) end))
        assert.matches("cometkey%.delete_many: " .. case[2], helpers.raises(function() c:delete_many(case[1]) end))
      end
      assert.are.same({}, routes(env.m))
    end)
  end)

  describe("delete_many", function()
    it("deletes 250 keys with 3 requests (one POST /api/token/batch per 100 ids) and returns the count", function()
      seed(250)
      local c = env.client()
      local ids = range(1, 251) -- 251 is the other user's: skipped by the server
      ids[#ids + 1] = 7         -- duplicates merged silently
      assert.are.equal(250, assert(c:delete_many(ids)))
      assert.are.same({ "POST /api/token/batch", "POST /api/token/batch", "POST /api/token/batch" }, routes(env.m))
      local sizes = {}
      for i, e in ipairs(env.m:requests()) do sizes[i] = #body(e).ids end
      assert.are.same({ 100, 100, 51 }, sizes)
      for id = 1, 250 do assert.is_true(env.m:key(id).deleted) end
      assert.is_false(env.m:key(251).deleted)
      assert.are.equal(0, assert(c:delete_many { 1, 2 })) -- already gone
    end)

    it("has a callback form", function()
      local c = env.client()
      local r = await(c, function(cb) c:delete_many({ 1, 2, 7 }, cb) end)
      assert.is_nil(r[1])
      assert.are.equal(2, r[2])
    end)

    it("reports how far it got when a later batch is refused (not resent: a resend would count 0)", function()
      seed(150)
      env.m:config { rate_limit = { requests = 1, window = 60 } }
      local c = env.client { retries = 2 }
      local info = assert_failure("rate_limited", c:delete_many(range(1, 150)))
      assert.are.equal(100, info.deleted)
      assert.are.equal(1, info.applied)
      assert.are.equal(1, info.attempts)
      assert.are.equal(100, #(function()
        local out = {}
        for _, row in ipairs(env.m:keys()) do if row.deleted then out[#out + 1] = row end end
        return out
      end)())
    end)
  end)

  describe("search and each", function()
    it("search returns { items, total, page, page_size }", function()
      seed(120)
      local page = assert(env.client():search { keyword = "key-1%", page = 1, page_size = 10 })
      assert.are.same({ 10, 1, 10 }, { #page.items, page.page, page.page_size })
      assert.are.equal(21, page.total) -- key-100 .. key-120
    end)

    it("each{ keyword = ... } pages through search results; a table adds field filters", function()
      seed(250)
      local c = env.client()
      local got = {}
      for key in c:each { keyword = "key-%" } do got[#got + 1] = key.id end
      local newest_first = {}
      for i = 250, 1, -1 do newest_first[#newest_first + 1] = i end
      assert.are.same(newest_first, got)
      assert.are.same({
        "GET /api/token/search?keyword=key-%25&p=1&page_size=100",
        "GET /api/token/search?keyword=key-%25&p=2&page_size=100",
        "GET /api/token/search?keyword=key-%25&p=3&page_size=100",
      }, routes(env.m))
      got = {}
      for key in c:each { keyword = "key-%", remain_quota = 1007 } do got[#got + 1] = key.id end
      assert.are.same({ 7 }, got)
      local row = env.m:key(42)
      got = {}
      for key in c:each { token = row.key } do got[#got + 1] = key.id end
      assert.are.same({ 42 }, got)
    end)

    it("each with a callback: callback(nil, key) per key, then callback(nil, nil)", function()
      seed(120)
      local c = env.client()
      local calls, finished = {}, false
      c:each({ keyword = "key-1%" }, function(err, key)
        assert.is_nil(err)
        if key == nil then finished = true else calls[#calls + 1] = key.id end
      end)
      local deadline = helpers.now() + 10
      while not finished and helpers.now() < deadline do c.transport:sleep(0.01) end
      assert.is_true(finished)
      assert.are.equal(21, #calls) -- key-100 .. key-120
    end)

    it("each with a callback reports a failure once, as callback(err, nil, info)", function()
      local c = env.client { retries = 0 }
      env.m:fault { type = "html", status = 502, match = "GET /api/token/" }
      local r = await(c, function(cb) c:each(nil, cb) end)
      assert.is_string(r[1])
      assert.are.equal("http", r[3].kind)
    end)

    it("raises on a bad filter", function()
      local c = env.client()
      assert.matches("filter must be", helpers.raises(function() c:each(5) end))
      assert.matches("keyword must be a string", helpers.raises(function() c:each { keyword = 5 } end))
      assert.matches("stauts", helpers.raises(function() c:each { keyword = "x", stauts = 1 } end))
    end)
  end)

  describe("server_settings and remain_quota_usd", function()
    it("reads GET /api/status once per client", function()
      env.m:config { quota_per_unit = 250000 }
      local c = env.client()
      local s = assert(c:server_settings())
      assert.are.equal(250000, s.quota_per_unit)
      assert.is_true(s.display_in_currency)
      assert(c:server_settings())
      local r = await(c, function(cb) c:server_settings(cb) end)
      assert.are.equal(250000, r[2].quota_per_unit)
      assert.are.same({ "GET /api/status" }, routes(env.m))
    end)

    it("create and update convert USD with the server's quota_per_unit, read first", function()
      local c = env.client()
      local key = assert(c:create { name = "dollars", remain_quota_usd = 2.5 })
      assert.are.equal(1250000, key.remain_quota)
      assert.are.equal(1250000, env.m:key(key.id).remain_quota)
      assert.are.equal("GET /api/status", routes(env.m)[1])
      assert(c:update { id = 1, remain_quota_usd = 0.29 })
      assert.are.equal(145000, env.m:key(1).remain_quota) -- 0.29 x 500000, not 144999
      local n = 0
      for _, r in ipairs(routes(env.m)) do if r == "GET /api/status" then n = n + 1 end end
      assert.are.equal(1, n)
    end)

    it("rounds an amount that is not a whole number of units down; dry_run shows both figures", function()
      env.m:config { quota_per_unit = 1000 }
      local c = env.client()
      local plan = assert(c:update({ id = 1, remain_quota_usd = 1.2345 }, { dry_run = true }))
      assert.are.same({ usd = 1.2345, units = 1234, quota_per_unit = 1000, rounded_down = true }, plan.remain_quota_usd)
      assert.are.same({ from = 500000, to = 1234 }, plan.diff.remain_quota)
      assert.are.equal(500000, env.m:key(1).remain_quota)
      assert(c:update { id = 1, remain_quota_usd = 1.2345 })
      assert.are.equal(1234, env.m:key(1).remain_quota)
    end)

    it("is exclusive with remain_quota; refuses negative, non-finite or too large amounts, sending nothing", function()
      local c = env.client()
      env.m:clear_requests()
      local cases = {
        { { id = 1, remain_quota = 5, remain_quota_usd = 1 }, "not both" },
        { { id = 1, remain_quota_usd = -1 }, "remain_quota_usd: must be a finite number" },
        { { id = 1, remain_quota_usd = 0 / 0 }, "remain_quota_usd: must be a finite number" },
        { { id = 1, remain_quota_usd = math.huge }, "remain_quota_usd: must be a finite number" },
        { { id = 1, remain_quota_usd = 2e9 }, "from 0 to 1e9" },
        { { id = 1, remain_quota_usd = "5" }, "remain_quota_usd: must be a number" },
      }
      for _, case in ipairs(cases) do
        assert.matches(case[2], helpers.raises(function() c:update(case[1]) end), 1, true)
      end
      assert.matches("not both", helpers.raises(function()
        c:create { name = "x", remain_quota = 1, remain_quota_usd = 1 }
      end), 1, true)
      assert.are.same({}, routes(env.m))
    end)

    it("checks remain_quota against a known quota_per_unit (after server_settings) before sending", function()
      env.m:config { quota_per_unit = 1000 }
      local c = env.client()
      assert(c:server_settings())
      env.m:clear_requests()
      assert.matches("remain_quota: 1000000000001 is above this server's maximum 1000000000000",
        helpers.raises(function() c:update { id = 1, remain_quota = 1000000000001 } end), 1, true)
      assert.are.same({}, routes(env.m))
      assert(c:update { id = 1, remain_quota = 1000000000000 })
      assert(c:update { id = 1, remain_quota = 1000000000001, unlimited_quota = true })
    end)

    it("update_many converts per item", function()
      env.m:config { quota_per_unit = 100 }
      local c = env.client()
      local results = c:update_many { { id = 1, remain_quota_usd = 3 }, { id = 5, remain_quota_usd = 0.5 } }
      assert.is_true(results[1].ok and results[2].ok)
      assert.are.equal(300, env.m:key(1).remain_quota)
      assert.are.equal(50, env.m:key(5).remain_quota)
    end)
  end)

  describe("cross_group_retry", function()
    it("true with a group other than auto is refused before anything is sent", function()
      local c = env.client()
      env.m:clear_requests()
      assert.matches("cross_group_retry: true needs group = \"auto\"", helpers.raises(function()
        c:create { name = "x", group = "default", cross_group_retry = true }
      end), 1, true)
      assert.matches("cross_group_retry: true needs group", helpers.raises(function()
        c:create { name = "x", cross_group_retry = true }
      end), 1, true)
      assert.matches("cross_group_retry: true needs group", helpers.raises(function()
        c:update { id = 1, group = "vip", cross_group_retry = true }
      end), 1, true)
      assert.are.same({}, routes(env.m))
    end)

    it("on an update that does not name the group, the stored group decides: conflict, nothing written", function()
      local c = env.client()
      local before = env.m:key(5) -- group "default"
      local info = assert_failure("conflict", c:update { id = 5, cross_group_retry = true })
      assert.are.equal("cross_group_retry", info.field)
      assert.are.same({ "GET /api/token/5" }, routes(env.m))
      assert.are.same({}, helpers.row_diff(before, env.m:key(5)))
    end)

    it("works with group auto on create (the key is found) and update", function()
      local c = env.client()
      local key = assert(c:create { name = "routed", group = "auto", cross_group_retry = true })
      assert.is_true(key.cross_group_retry)
      key = assert(c:update { id = 5, group = "auto", cross_group_retry = true })
      assert.is_true(key.cross_group_retry)
      assert.is_true(env.m:key(5).cross_group_retry)
    end)
  end)

  describe("New-Api-User", function()
    it("a missing or foreign user id fails with kind auth and says to set user_id", function()
      for _, c in ipairs({ env.client { user_id = false }, env.client { user_id = env.m.other_user_id } }) do
        local _, message, info = c:get(1)
        assert.are.equal("auth", info.kind)
        assert.are.equal(401, info.status)
        assert.matches("set user_id", message, 1, true)
        assert.matches("--user-id or COMETAPI_USER_ID", message, 1, true)
      end
      local _, message = env.client({ token = "wrong" }):get(1) -- not a New-Api-User problem
      assert.is_nil(message:find("set user_id", 1, true))
    end)
  end)

  describe("the limiter", function()
    it("a 429 without Retry-After from the global limiter is retried within the timeout", function()
      env.m:config { rate_limit = { requests = 2, window = 0.3 } }
      local c = env.client { retries = 4 }
      for _ = 1, 4 do assert(c:get(1)) end
      local statuses = {}
      for i, e in ipairs(env.m:requests()) do statuses[i] = e.status end
      assert.truthy(table.concat(statuses, ","):find("429", 1, true), "the limiter refused some")
    end)
  end)
end)

describe("older server builds and single switches", function()
  it("2025: full keys in answers, no reveal endpoint (the message says so), no New-Api-User needed", function()
    env.m:config { server = "2025" }
    local c = env.client { user_id = false }
    local key = assert(c:get(1))
    assert.are.equal(env.m:key(1).key, key.key)
    local _, message, info = c:reveal(1)
    assert.are.equal("http", info.kind) -- a bare 404: no such route
    assert.matches("no reveal endpoint", message, 1, true)
    _, message = c:reveal_many { 1, 2 }
    assert.matches("no reveal endpoint", message, 1, true)
    assert.are.equal(2, assert(c:delete_many { 1, 2 }))
    assert.are.equal(500000, assert(c:server_settings()).quota_per_unit)
    local made = assert(c:create { name = "usd-2025", remain_quota_usd = 0.5 })
    assert.are.equal(250000, made.remain_quota)
    assert.are.equal(made.key, env.m:key(made.id).key) -- whole, as listed
    -- cross_group_retry is stored as sent by these builds (the client still refuses it off "auto")
    env.m:config { server = "2025" }
    assert(c:update { id = 5, group = "auto", cross_group_retry = true })
    assert(c:update { id = 5, group = "vip" }) -- echoes the stored true
    assert.is_true(env.m:key(5).cross_group_retry)
    assert.is_nil(assert(c:get(5)).auto_groups)
  end)

  it("2026-03: reveal_many falls back to one reveal per id (no batch endpoint yet)", function()
    env.m:config { server = "2026-03" }
    local c = env.client()
    local keys = assert(c:reveal_many { 1, 2, 7 })
    assert.are.same({ [1] = env.m:key(1).key, [2] = env.m:key(2).key }, keys)
    assert.are.same({ "POST /api/token/batch/keys", "POST /api/token/1/key", "POST /api/token/2/key",
      "POST /api/token/7/key" }, routes(env.m))
  end)

  it("masked_keys = false, require_user_header = false, rate_limit = false: each switch alone", function()
    env.m:config { masked_keys = false }
    assert.are.equal(env.m:key(1).key, assert(env.client():get(1)).key)
    env.m:config { masked_keys = true, require_user_header = false }
    assert(env.client({ user_id = false }):get(1))
    env.m:config { require_user_header = true, rate_limit = false }
    local c = env.client { retries = 0 }
    for _ = 1, 200 do assert(c:get(1)) end
  end)

  it("personal-access-token auth: no user id needed; failures are auth with the server's code", function()
    env.m:config { server = "pat" }
    assert(env.client({ user_id = false }):get(1))
    local info = assert_failure("auth", env.client({ token = "wrong", user_id = false }):get(1))
    assert.are.same({ 401, "AUTH_UNAUTHORIZED" }, { info.status, info.code })
    info = assert_failure("auth", env.client({ token = env.m.forbidden_token }):get(1))
    assert.are.same({ 403, "AUTH_INSUFFICIENT_PRIVILEGE" }, { info.status, info.code })
  end)

  it("array-style search (before 2026-02): one page of any size, and each stops after it", function()
    seed(150)
    env.m:config { search_style = "array" }
    local c = env.client()
    local page = assert(c:search { keyword = "key-" })
    assert.are.same({ 150, 1, 150 }, { page.total, page.page, page.page_size })
    local n = 0
    for _ in c:each { keyword = "key-" } do n = n + 1 end
    assert.are.equal(150, n)
    assert.are.equal(2, #routes(env.m))
  end)
end)

describe("allowlists as the server reads them (as = \"server\")", function()
  local allowlist = cometkey.allowlist

  it("removes spaces, splits on newlines only, deletes commas, ignores invalid entries", function()
    local entries, ignored, restricts = allowlist.parse("1.2.3.4, 5.6.7.8", { as = "server" })
    assert.are.same({}, entries)
    assert.are.same({ "1.2.3.45.6.7.8" }, ignored)
    assert.is_true(restricts)
    entries, ignored = allowlist.parse(" 10.1.2.3 / 8 \r\n1.2.3.4,\n\n[::1]\n2001:DB8::1", { as = "server" })
    assert.are.same({ "10.0.0.0/8", "1.2.3.4", "2001:db8::1" }, entries)
    assert.are.same({ "[::1]" }, ignored)
    entries, ignored, restricts = allowlist.parse("", { as = "server" })
    assert.are.same({}, entries)
    assert.are.same({}, ignored)
    assert.is_false(restricts)
    assert.is_false(select(3, allowlist.parse(cometkey.null, { as = "server" })))
  end)

  it("compile: a list whose every entry is invalid matches nothing; an empty one everything", function()
    local m = allowlist.compile("1.2.3.4, 5.6.7.8", { as = "server" })
    assert.is_false(m:contains("1.2.3.4"))
    assert.is_false(m:contains("5.6.7.8"))
    assert.matches("matches nothing", tostring(m))
    m = allowlist.compile("10.0.0.0/8\nnot-an-ip", { as = "server" })
    assert.is_true(m:contains("10.9.8.7"))
    assert.is_false(m:contains("11.0.0.1"))
    assert.is_true(allowlist.compile("", { as = "server" }):contains("8.8.8.8"))
    assert.is_true(allowlist.compile(" \n,\n", { as = "server" }):contains("8.8.8.8"))
  end)

  it("the default (client input) reading is unchanged, and bad options raise", function()
    assert.are.same({ "1.2.3.4", "5.6.7.8" }, allowlist.parse("1.2.3.4, 5.6.7.8"))
    assert.are.same({ "1.2.3.4", "5.6.7.8" }, allowlist.parse("1.2.3.4, 5.6.7.8", { as = "client" }))
    assert.has_error(function() allowlist.parse("x") end)
    assert.matches("opts.as must be", helpers.raises(function() allowlist.parse("", { as = "srv" }) end), 1, true)
    assert.matches("unknown option", helpers.raises(function() allowlist.compile("", { mode = 1 }) end), 1, true)
    assert.matches("reads a stored string", helpers.raises(function()
      allowlist.compile({ "1.2.3.4" }, { as = "server" })
    end), 1, true)
  end)

  it("reads a stored row the way the mock (and the server) stores it verbatim", function()
    local c = env.client()
    local fields = { id = 1, name = "production", expired_time = -1, remain_quota = 500000, unlimited_quota = false,
      model_limits_enabled = false, model_limits = "", allow_ips = "1.2.3.4, 5.6.7.8", group = "",
      cross_group_retry = false }
    env.m:http("PUT", "/api/token/", { headers = { Authorization = env.m.token, ["New-Api-User"] = "1",
      ["Content-Type"] = "application/json" }, body = require("cjson").encode(fields) })
    local stored = assert(c:get(1)).allow_ips
    assert.are.equal("1.2.3.4, 5.6.7.8", stored)
    assert.is_false(allowlist.compile(stored, { as = "server" }):contains("1.2.3.4"))
    assert.is_true(allowlist.compile(stored):contains("1.2.3.4")) -- the client reading would allow it
  end)
end)
