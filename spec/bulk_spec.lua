-- spec/bulk_spec.lua - client:update_many end to end against the local mock: results in
-- input order, stored state, progress, validation of every item before anything is sent,
-- per-item failures, 429 pacing and the number of connections.
local helpers = require "spec.support.helpers"

local env = helpers.use_mock_env()

local routes, body = helpers.routes, helpers.body

local DAY = 86400

-- 60 keys: every 5th expired (status 3, past expiry), every 7th disabled.
local function seed60()
  local past = os.time() - DAY
  env.m:set_keys(helpers.seed(60, function(i, row)
    if i % 5 == 0 then
      row.status, row.expired_time = 3, past
    elseif i % 7 == 0 then
      row.status = 2
    end
  end))
end

-- Item i of a mixed batch and what the stored row must become.
local function mixed_item(i, t)
  local kind = i % 4
  if i % 5 == 0 then -- re-enable an expired key with a new expiry (two PUTs, ordered)
    return { id = i, status = 1, expired_time = t }, { status = 1, expired_time = t }
  elseif kind == 0 then
    return { id = i, status = "disabled" }, { status = 2 }
  elseif kind == 1 then
    return { id = i, name = "bulk-" .. i }, { name = "bulk-" .. i }
  elseif kind == 2 then
    return { id = i, remain_quota = i * 100, allow_ips = { "10.0." .. i .. ".1" } },
      { remain_quota = i * 100, allow_ips = "10.0." .. i .. ".1" }
  end
  return { id = i, status = 2, name = "off-" .. i }, { status = 2, name = "off-" .. i }
end

describe("client:update_many", function()
  before_each(seed60)

  it("applies 50 mixed items at concurrency 8: input order, stored state, progress", function()
    local t = os.time() + 30 * DAY
    local list, want = {}, {}
    for i = 1, 50 do list[i], want[i] = mixed_item(i, t) end
    local before = env.m:keys()
    local progress = {}
    local results = env.client():update_many(list, {
      concurrency = 8,
      on_progress = function(done, total) progress[#progress + 1] = { done, total } end,
    })
    assert.are.equal(50, #results)
    for i = 1, 50 do
      local r = results[i]
      assert.is_true(r.ok, tostring(r.error))
      assert.are.equal(i, r.key.id)
      local d = helpers.row_diff(before[i], env.m:key(i))
      local expected = {}
      for f, v in pairs(want[i]) do expected[f] = { from = before[i][f], to = v } end
      if expected.status and expected.status.from == expected.status.to then expected.status = nil end
      assert.are.same(expected, d, "item " .. i)
      for f, v in pairs(want[i]) do assert.are.equal(v, r.key[f], "item " .. i .. " " .. f) end
    end
    for i = 51, 60 do assert.are.same({}, helpers.row_diff(before[i], env.m:key(i))) end
    assert.are.equal(50, #progress)
    for n, p in ipairs(progress) do assert.are.same({ n, 50 }, p) end
    -- each enable of an expired key: its full PUT reached the server before its status_only PUT
    local order = {}
    for n, e in ipairs(env.m:requests()) do
      local b = body(e)
      if b and b.id % 5 == 0 then
        order[b.id] = order[b.id] or {}
        order[b.id][#order[b.id] + 1] = (e.query == "status_only=1" and "status" or "full") .. "@" .. n
      end
    end
    for id = 5, 50, 5 do
      assert.are.equal(2, #order[id])
      assert.matches("^full@", order[id][1])
      assert.matches("^status@", order[id][2])
    end
    local stats = env.m:stats()
    assert.is_true(stats.connections <= 8, "connections " .. stats.connections)
  end)

  it("raises once listing every bad item, and sends nothing", function()
    local c = env.client()
    local before = env.m:keys()
    local list = {}
    for i = 1, 10 do list[i] = { id = i, status = 2 } end
    list[3] = { id = 3, stauts = 2 }
    list[7] = { id = 7, remain_quota = -5 }
    list[9] = "not a table"
    local msg = helpers.raises(function() c:update_many(list) end)
    assert.matches("bulk_spec%.lua:%d+: cometkey%.update_many: 3 invalid item%(s%): ", msg)
    assert.is_truthy(msg:find("item 3: stauts: unknown field", 1, true), msg)
    assert.is_truthy(msg:find("item 7: remain_quota: ", 1, true), msg)
    assert.is_truthy(msg:find("item 9: ", 1, true), msg)
    assert.is_nil(msg:find("item 1:", 1, true), msg)
    list[3], list[7], list[9] = { id = 3, status = 2 }, { id = 7, status = 2 }, { id = 9, status = 2 }
    assert.matches("bulk_spec%.lua:%d+: cometkey%.update_many: concurrency must be an integer from 1 to 256",
      helpers.raises(function() c:update_many(list, { concurrency = 0 }) end))
    assert.matches("bulk_spec%.lua:%d+: cometkey%.update_many: unknown option 'paralel'",
      helpers.raises(function() c:update_many(list, { paralel = 2 }) end))
    assert.matches("bulk_spec%.lua:%d+: cometkey%.update_many: on_progress must be a function",
      helpers.raises(function() c:update_many(list, { on_progress = 1 }) end))
    assert.are.same({}, routes(env.m))
    assert.are.same(before, env.m:keys())
  end)

  it("reports per-item failures without stopping the others", function()
    local list = {}
    for i = 1, 12 do list[i] = { id = i, name = "n-" .. i } end
    list[4] = { id = 404, name = "ghost" }
    list[8] = { id = 10, status = 1 } -- key 10 is expired: the server's enable guard refuses
    local results = env.client():update_many(list, { concurrency = 4 })
    assert.are.equal(12, #results)
    assert.is_false(results[4].ok)
    assert.are.equal("not_found", results[4].info.kind)
    assert.matches("^cometkey: GET /api/token/404: ", results[4].error)
    assert.is_false(results[8].ok)
    assert.are.equal("api", results[8].info.kind)
    assert.are.equal(3, env.m:key(10).status)
    for i = 1, 12 do
      if i ~= 4 and i ~= 8 then
        assert.is_true(results[i].ok, tostring(results[i].error))
        assert.are.equal("n-" .. i, env.m:key(i).name)
      end
    end
    assert.is_nil(env.m:key(404))
  end)

  it("retries a 429 burst with Retry-After: 0 and every item succeeds", function()
    env.m:fault {
      { type = "ratelimit", retry_after = 0, count = 8, match = "PUT" },
    }
    local list = {}
    for i = 1, 24 do list[i] = { id = i, status = (i % 7 == 0) and 1 or 2 } end
    local results = env.client():update_many(list, { concurrency = 8 })
    for i = 1, 24 do
      assert.is_true(results[i].ok, tostring(results[i].error))
      assert.are.equal(list[i].status, env.m:key(i).status)
    end
    local log = env.m:requests()
    assert.are.equal(32, #log)
    for n = 1, 8 do assert.are.same({ "ratelimit", 429 }, { log[n].fault, log[n].status }) end
    assert.is_true(env.m:stats().connections <= 8)
  end)

  it("never uses more connections than the concurrency", function()
    local list = {}
    for i = 1, 30 do list[i] = { id = i, group = "g" .. i } end
    env.m:fault { type = "delay", seconds = 0.05, count = -1 }
    local results = env.client():update_many(list, { concurrency = 3 })
    for i = 1, 30 do assert.is_true(results[i].ok) end
    local stats = env.m:stats()
    assert.are.equal(31, stats.requests) -- one list page reads the 30 records, then one PUT each
    assert.is_true(stats.connections <= 3, "connections " .. stats.connections)
  end)

  it("returns an empty result for an empty list, sending nothing", function()
    assert.are.same({}, env.client():update_many({}))
    assert.are.same({}, routes(env.m))
  end)

  it("dry_run plans every item and writes nothing; replace sends one PUT per item", function()
    seed60()
    local before = env.m:keys()
    env.m:clear_requests()
    local plans = env.client():update_many({ { id = 1, name = "x" }, { id = 2, status = 2 } }, { dry_run = true })
    assert.is_true(plans[1].ok and plans[1].key.dry_run)
    assert.are.equal("x", plans[1].key.diff.name.to)
    assert.is_true(plans[2].ok and plans[2].key.dry_run)
    for _, r in ipairs(routes(env.m)) do assert.matches("^GET ", r) end
    assert.are.same(before, env.m:keys())

    env.m:clear_requests()
    local full = { name = "r", expired_time = -1, remain_quota = 7, unlimited_quota = false,
      model_limits_enabled = false, model_limits = "", allow_ips = "", group = "", cross_group_retry = false }
    local list = {}
    for id = 3, 4 do
      local item = { id = id }
      for k, v in pairs(full) do item[k] = v end
      list[#list + 1] = item
    end
    local results = env.client():update_many(list, { replace = true })
    assert.is_true(results[1].ok and results[2].ok)
    assert.are.same({ "PUT /api/token/", "PUT /api/token/" }, routes(env.m))
    assert.are.equal(7, env.m:key(4).remain_quota)
  end)
end)
