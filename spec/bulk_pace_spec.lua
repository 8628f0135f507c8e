-- spec/bulk_pace_spec.lua - bulk at the server's pace (issue 13) against the local mock:
-- results that belong to their run (the three failure paths of the review), pacing under
-- a limiter of R requests per W seconds (learned from 429s or declared), the fewest
-- requests, streamed results with flat memory, callback hosts, and bad input.
local helpers = require "spec.support.helpers"
local cometkey = require "cometkey"
local bulk = require "cometkey.bulk"

local env = helpers.use_mock_env()
local routes, body = helpers.routes, helpers.body

local function seed(n) env.m:set_keys(helpers.seed(n)) end

local function statuses(from, to, status)
  local list = {}
  for id = from, to do list[#list + 1] = { id = id, status = status or 2 } end
  return list
end

-- Counts of the mock's logged answers: accepted (not 429) and refused (429).
local function answers()
  local accepted, refused = 0, 0
  for _, e in ipairs(env.m:requests()) do
    if e.status == 429 then refused = refused + 1 else accepted = accepted + 1 end
  end
  return accepted, refused
end

-- The next run on client c gets exactly its own results: unknown ids fail, known ones
-- come back with their own record.
local function next_run_is_own(c)
  assert.are.equal(0, c.transport:multi_pending())
  env.m:clear_faults()
  local results = c:update_many({ { id = 9001, status = 2 }, { id = 9002, name = "ghost" }, { id = 3, name = "own-3" },
    { id = 4, status = 2 } }, { concurrency = 4 })
  assert.are.equal(4, #results)
  assert.is_false(results[1].ok)
  assert.is_false(results[2].ok)
  assert.are.equal("not_found", results[2].info.kind)
  assert.is_true(results[3].ok, tostring(results[3].error))
  assert.are.equal(3, results[3].key.id)
  assert.are.equal("own-3", results[3].key.name)
  assert.is_true(results[4].ok, tostring(results[4].error))
  assert.are.equal(4, results[4].key.id)
  assert.is_nil(env.m:key(9001))
  assert.are.equal(0, c.transport:multi_pending())
end

describe("a bulk run owns its transfers", function()
  before_each(function() seed(40) end)

  it("an on_progress that raises: the error leaves, nothing stays in flight, the next run is its own", function()
    env.m:fault { type = "delay", seconds = 0.3, count = -1, match = "PUT" }
    local c = env.client()
    local msg = helpers.raises(function()
      c:update_many(statuses(1, 16), { concurrency = 8, on_progress = function(done)
        if done == 1 then error("progress bar broke") end
      end })
    end)
    assert.matches("progress bar broke", msg)
    next_run_is_own(c)
  end)

  it("an on_result that raises (keep_results = false) behaves the same", function()
    env.m:fault { type = "delay", seconds = 0.2, count = -1, match = "PUT" }
    local c = env.client()
    local msg = helpers.raises(function()
      c:update_many(statuses(1, 16), { concurrency = 8, keep_results = false, on_result = function(i)
        error("sink full at " .. i)
      end })
    end)
    assert.matches("sink full at", msg)
    next_run_is_own(c)
  end)

  it("Retry-After: 1e999 (and other garbage) is treated as absent: the run finishes and owns its results", function()
    env.m:fault {
      { type = "ratelimit", retry_after = "1e999", count = 3, match = "PUT" },
      { type = "ratelimit", retry_after = "-1", count = 2, match = "PUT" },
      { type = "ratelimit", retry_after = "Wed, 21 Oct 2015 07:28:00 GMT", count = 2, match = "PUT" },
    }
    local c = env.client()
    local t, r = helpers.timed(c.update_many, c, statuses(1, 12), { concurrency = 4 })
    local results = r[1]
    for i = 1, 12 do
      assert.is_true(results[i].ok, tostring(results[i].error))
      assert.are.equal(i, results[i].key.id)
    end
    assert.is_true(t < 5, "took " .. t)
    next_run_is_own(c)
  end)

  it("a nested bulk call (from on_progress, on_result or a callback) raises a clear error", function()
    env.m:fault { type = "delay", seconds = 0.1, count = -1, match = "PUT" }
    local c = env.client()
    local msg = helpers.raises(function()
      c:update_many(statuses(1, 8), { on_progress = function() c:update_many(statuses(9, 10)) end })
    end)
    assert.matches("bulk_pace_spec%.lua:%d+: cometkey%.update_many: a bulk call is already running on this client", msg)
    msg = helpers.raises(function()
      c:update_many(statuses(1, 8), { on_result = function() c:update_where(function() return true end,
        { name = "x" }) end })
    end)
    assert.matches("cometkey%.update_where: a bulk call is already running", msg)
    next_run_is_own(c)
    -- a single call from on_progress is fine (it does not use the run's transfers)
    local got
    local results = c:update_many(statuses(1, 3), { on_progress = function(done)
      if done == 1 then got = c:get(20) end
    end })
    assert.are.equal(20, got.id)
    for i = 1, 3 do assert.are.equal(i, results[i].key.id) end
  end)

  it("a nested call from an async callback raises too, and the outer run still delivers its own results", function()
    local c = env.client()
    local err_inner, outer
    c:update_many(statuses(1, 4), {}, function(err, results)
      outer = { err, results }
      err_inner = select(2, pcall(c.update_many, c, statuses(5, 6))) -- the run is over here: allowed
    end)
    assert.is_nil(outer[1])
    for i = 1, 4 do assert.are.equal(i, outer[2][i].key.id) end
    assert.is_table(err_inner) -- it ran: bulk calls after a run has finished are fine
    local inner_msg
    c:update_many(statuses(1, 2), { on_progress = function()
      inner_msg = select(2, pcall(c.update_many, c, statuses(5, 6)))
    end }, function() end)
    assert.matches("a bulk call is already running", inner_msg)
    next_run_is_own(c)
  end)
end)

-- #novalgrind: these measure wall time against the limiter's bound, which valgrind's slowdown distorts;
-- memory behaviour of the same paths is covered by the other describes here.
describe("pacing under the server's limiter #novalgrind", function()
  -- bound: requests accepted / R * W; every item must be done within 1.15 x that.
  local function check_bound(elapsed, requests, r, w)
    local bound = requests / r * w
    assert.is_true(elapsed <= 1.15 * bound, ("%.2f s for %d requests at %d per %g s: bound %.2f s, ratio %.2f")
      :format(elapsed, requests, r, w, bound, elapsed / bound))
  end

  for _, case in ipairs { { 20, 2, 60, 8 }, { 7, 0.5, 40, 4 }, { 30, 1, 95, 16 } } do
    local r, w, n, conc = case[1], case[2], case[3], case[4]
    local title = ("learns %d per %g s from empty 429s: %d status changes, zero failures, within 1.15x"):format(r, w, n)
    it(title, function()
      seed(n)
      env.m:config { rate_limit = { requests = r, window = w } }
      local c = env.client()
      local elapsed, res = helpers.timed(c.update_many, c, statuses(1, n), { concurrency = conc })
      local results = res[1]
      for i = 1, n do assert.is_true(results[i].ok, tostring(results[i].error)) end
      local accepted = answers()
      assert.are.equal(n, accepted)
      check_bound(elapsed, accepted, r, w)
      local p = c.pace:stats()
      assert.is_true(p.requests == r or p.requests == r + 1, "learned " .. p.requests) -- r + 1: probing up
    end)
  end

  it("a declared rate_limit paces from the start: no 429 at all, within 1.15x", function()
    seed(50)
    env.m:config { rate_limit = { requests = 20, window = 1 } }
    local c = env.client { rate_limit = { requests = 20, seconds = 1 } }
    local progress = {}
    local elapsed, res = helpers.timed(c.update_many, c, statuses(1, 50), { concurrency = 8,
      on_progress = function(done, total, eta) progress[#progress + 1] = { done, total, eta } end })
    for i = 1, 50 do assert.is_true(res[1][i].ok) end
    local accepted, refused = answers()
    assert.are.equal(0, refused)
    check_bound(elapsed, accepted, 20, 1)
    assert.are.equal(50, #progress)
    assert.are.same({ 50, 50 }, { progress[50][1], progress[50][2] })
    -- the ETA shows the wait: after the first burst it is at least the remaining windows
    assert.is_true(progress[20][3] >= 0.9, "eta " .. tostring(progress[20][3]))
  end)

  it("update_where pays N + ceil(total/100) requests and stays within the bound", function()
    seed(60)
    env.m:config { rate_limit = { requests = 20, window = 1 } }
    local c = env.client()
    local elapsed, res = helpers.timed(c.update_where, c, function(key) return key.id % 2 == 0 end,
      { group = "paced" }, { concurrency = 8 })
    local results = res[1]
    assert.are.equal(30, #results)
    for i = 1, 30 do assert.is_true(results[i].ok, tostring(results[i].error)) end
    local accepted = answers()
    assert.are.equal(31, accepted)
    check_bound(elapsed, accepted, 20, 1)
    for id = 1, 60 do assert.are.equal(id % 2 == 0 and "paced" or "", env.m:key(id).group) end
  end)

  it("a single call waits within its timeout, never past it", function()
    seed(5)
    for _, v in ipairs { "-5", "1e999", "garbage", "Wed, 21 Oct 2015 07:28:00 GMT", "0" } do
      env.m:fault { type = "ratelimit", retry_after = v, count = 1, match = "PUT" }
      local c = env.client { timeout = 3 }
      local elapsed, r = helpers.timed(c.update, c, { id = 1, status = 2 })
      assert.are.equal(1, r[1] and r[1].id, "Retry-After " .. v .. ": " .. tostring(r[2]))
      assert.is_true(elapsed < 2, v .. " took " .. elapsed)
    end
    env.m:fault { type = "ratelimit", retry_after = "100000", count = 1, match = "PUT" }
    local c = env.client { timeout = 1 }
    local elapsed, r = helpers.timed(c.update, c, { id = 1, status = 2 })
    assert.is_nil(r[1])
    assert.are.equal("rate_limited", r[3].kind)
    assert.is_true(elapsed < 1.5, "took " .. elapsed)
  end)
end)

describe("fewest requests", function()
  it("status changes: one request per key", function()
    seed(30)
    local results = env.client():update_many(statuses(1, 30))
    assert.are.equal(30, #results)
    local r = routes(env.m)
    assert.are.equal(30, #r)
    for _, route in ipairs(r) do assert.are.equal("PUT /api/token/?status_only=1", route) end
  end)

  it("field updates read the records from list pages when that is cheaper; dry_run says so", function()
    seed(150)
    local list = {}
    for id = 1, 120 do list[id] = { id = id, name = "f-" .. id } end
    local plans = env.client():update_many(list, { dry_run = true })
    assert.are.equal("list pages", plans.plan.reads)
    assert.are.equal(2, plans.plan.read_requests)
    assert.are.equal(120, plans.plan.write_requests)
    assert.are.equal(122, plans.plan.requests)
    assert.are.same({ "GET /api/token/?p=1&page_size=100", "GET /api/token/?p=2&page_size=100" }, routes(env.m))
    env.m:clear_requests()
    local results = env.client():update_many(list)
    for id = 1, 120 do assert.are.equal("f-" .. id, results[id].key.name) end
    assert.are.equal(122, #routes(env.m))
    -- two keys: one GET each (a page could not be cheaper)
    env.m:clear_requests()
    local few = env.client():update_many({ { id = 1, name = "a" }, { id = 2, name = "b" } }, { dry_run = true })
    assert.are.equal("one GET per key", few.plan.reads)
    assert.are.equal(4, few.plan.requests) -- 2 GETs + 2 PUTs
    assert.are.same({ "GET /api/token/1", "GET /api/token/2" }, routes(env.m))
  end)

  it("update_where over list pages and over search pages: N + ceil(total/100), no per-key GET", function()
    seed(250)
    local c = env.client()
    local results = assert(c:update_where({ remain_quota = 1010 }, { group = "ten" }))
    assert.are.equal(1, #results)
    assert.are.equal(10, results[1].key.id)
    local r = routes(env.m)
    assert.are.equal(3 + 1, #r)
    for n = 1, 3 do assert.matches("^GET /api/token/%?p=" .. n, r[n]) end
    assert.are.equal("PUT /api/token/", r[4])
    local put = body(env.m:requests()[4])
    assert.are.equal(1010, put.remain_quota) -- echoed from the listed record
    env.m:clear_requests()
    results = assert(c:update_where({ keyword = "key-00%" }, { status = 2 }))
    assert.are.equal(9, #results)
    r = routes(env.m)
    assert.are.equal(10, #r)
    assert.matches("^GET /api/token/search%?", r[1])
    for n = 2, 10 do assert.are.equal("PUT /api/token/?status_only=1", r[n]) end
  end)

  it("update_where: a page read that fails returns nil, message, info with what was done", function()
    seed(150)
    env.m:fault { type = "html", status = 500, count = -1, match = "GET /api/token/" }
    local results, message, info = env.client { retries = 0 }:update_where(function() return true end, { name = "z" })
    assert.is_nil(results)
    assert.matches("pass over the keys stopped", message)
    assert.are.equal("http", info.kind)
    assert.are.same({}, info.results)
  end)
end)

describe("streamed results", function()
  it("on_result streams every item and keep_results = false returns counts", function()
    seed(20)
    local seen = {}
    local list = statuses(1, 20)
    list[5] = { id = 999, status = 2 }
    local counts = env.client():update_many(list, { keep_results = false, concurrency = 4,
      on_result = function(i, r) seen[i] = r.ok end })
    assert.are.same({ ok = 19, failed = 1 }, counts)
    for i = 1, 20 do assert.are.equal(i ~= 5, seen[i]) end
  end)

  it("takes an iterator of items (each checked when taken; a bad one fails alone)", function()
    seed(10)
    local i = 0
    local failed = {}
    local counts = env.client():update_many(function()
      i = i + 1
      if i == 4 then return { id = 4, stauts = 2 } end
      if i <= 10 then return { id = i, status = 2 } end
    end, { keep_results = false, on_result = function(n, r) if not r.ok then failed[n] = r.info.kind end end })
    assert.are.same({ ok = 9, failed = 1 }, counts)
    assert.are.same({ [4] = "invalid" }, failed)
  end)
end)

describe("callback hosts", function()
  -- A host loop: the transport answers later, timers fire later; nothing may block.
  local function loop_client(extra)
    local http = require "socket.http"
    local ltn12 = require "ltn12"
    local socket = require "socket"
    local queue, timers = {}, {}
    local function perform(req)
      local chunks = {}
      local headers = {}
      for k, v in pairs(req.headers) do headers[k] = v end
      if req.body then headers["Content-Length"] = tostring(#req.body) end
      local ok, code, h = http.request { url = req.url, method = req.method, headers = headers,
        source = req.body and ltn12.source.string(req.body) or nil, sink = ltn12.sink.table(chunks) }
      if not ok then return nil, code end
      return { status = code, headers = h, body = table.concat(chunks) }
    end
    local opts = { transport = function(req, cb)
      assert(cb, "a blocking request in a callback host")
      queue[#queue + 1] = function() local res, err = perform(req); cb(err, res) end
    end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local c = env.client(opts)
    local slept = 0
    c.transport.sleep = function() error("blocking sleep in a callback host") end
    c.transport.sleep_async = function(_, s, cb)
      slept = slept + 1
      timers[#timers + 1] = { socket.gettime() + s, cb }
    end
    local function run()
      while #queue > 0 or #timers > 0 do
        if #queue > 0 then
          table.remove(queue, 1)()
        else
          table.sort(timers, function(a, b) return a[1] < b[1] end)
          local t = table.remove(timers, 1)
          local wait = t[1] - socket.gettime()
          if wait > 0 then socket.sleep(wait) end
          t[2]()
        end
      end
    end
    return c, run, function() return slept end
  end

  it("update_many(list, opts, callback) runs on the host's loop and paces with its timers", function()
    seed(12)
    local c, run, slept = loop_client { rate_limit = { requests = 5, seconds = 0.5 } }
    local got
    local ret = c:update_many(statuses(1, 12), { concurrency = 4 }, function(err, results) got = { err, results } end)
    assert.is_nil(ret)
    assert.is_nil(got) -- nothing happened yet: the host's loop has not run
    run()
    assert.is_nil(got[1])
    for i = 1, 12 do
      assert.is_true(got[2][i].ok, tostring(got[2][i].error))
      assert.are.equal(i, got[2][i].key.id)
    end
    assert.is_true(slept() > 0)
  end)

  it("update_where(filter, fields, opts, callback) too", function()
    seed(30)
    local c, run = loop_client()
    local got
    c:update_where({ remain_quota = 1005 }, { name = "cb" }, {}, function(err, results) got = { err, results } end)
    run()
    assert.is_nil(got[1])
    assert.are.equal(1, #got[2])
    assert.are.equal("cb", env.m:key(5).name)
  end)
end)

describe("bad input raises, nothing sent", function()
  it("rate_limit values", function()
    for _, v in ipairs { 5, { requests = 0, seconds = 1 }, { requests = 5, seconds = 0 },
      { requests = 5, seconds = -1 },
      { requests = 5, seconds = math.huge }, { requests = 0 / 0, seconds = 1 }, { requests = 1.5, seconds = 1 },
      { requests = 5 }, { requests = 5, seconds = 1, burst = 2 } } do
      local msg = helpers.raises(function() cometkey.new { token = "t", base_url = env.m.url, rate_limit = v } end)
      assert.matches("bulk_pace_spec%.lua:%d+: cometkey%.new: rate_limit", msg)
    end
  end)

  it("keep_results, on_result, holes, thunks", function()
    local c = env.client()
    assert.matches("keep_results = false returns only counts: give on_result",
      helpers.raises(function() c:update_many(statuses(1, 2), { keep_results = false }) end))
    assert.matches("on_result must be a function",
      helpers.raises(function() c:update_many(statuses(1, 2), { on_result = 1 }) end))
    local holes = statuses(1, 3)
    holes[5] = { id = 5, status = 2 }
    assert.matches("without holes", helpers.raises(function() c:update_many(holes) end))
    local thunks = { function() end, function() end }
    thunks[4] = function() end
    assert.matches("bulk_pace_spec%.lua:%d+: cometkey%.bulk%.run: thunks must be an array of functions without holes",
      helpers.raises(function() bulk.run(c, thunks) end))
    assert.matches("fields must not name id",
      helpers.raises(function() c:update_where(function() return true end, { id = 1, name = "x" }) end))
    assert.matches("filter must be",
      helpers.raises(function() c:update_where(5, { name = "x" }) end))
    assert.matches("stauts: unknown field",
      helpers.raises(function() c:update_where(function() return true end, { stauts = 2 }) end))
    local many = {}
    for i = 1, 1000 do many[i] = { id = i, stauts = 2 } end
    local msg = helpers.raises(function() c:update_many(many) end)
    assert.matches("1000 invalid item%(s%)", msg)
    assert.matches("and 980 more$", msg)
    assert.are.same({}, routes(env.m))
  end)

  it("bulk.run runs thunks of any kind on the scheduler", function()
    seed(5)
    local c = env.client()
    local thunks = {}
    for id = 1, 5 do thunks[id] = function(ctx) return c:_send(ctx, "get", { id = id }) end end
    local results = bulk.run(c, thunks, { concurrency = 2 })
    for id = 1, 5 do assert.are.equal(id, results[id].key.id) end
  end)
end)
