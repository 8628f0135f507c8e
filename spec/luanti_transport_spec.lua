-- spec/luanti_transport_spec.lua: the "luanti" transport and the cometkey.luanti loader
-- outside the engine, with a stand-in for the engine's API (register_globalstep,
-- after, register_on_shutdown) driven step by step against the mock server. The real
-- engine is spec/luanti_spec.lua; this one runs on every interpreter and pins the
-- details: callback-only, never blocking (multi_wait(0) returns at once, retries wait
-- in the globalstep), one answer per call, connection reuse, shutdown.
local mock = require "spec.support.mock"
local cometkey = require "cometkey"
local ccurl = require "cometkey.curl"
local luanti = require "cometkey.transport.luanti"

local now = ccurl.now
-- Time limits stretch under valgrind and ASan (tools/valgrind-specs.sh, tools/asan-specs.sh).
local SLOW = (os.getenv("CK_VALGRIND") and 20) or (os.getenv("CK_ASAN") and 4) or 1

-- A stand-in for the engine: globalsteps, minetest.after jobs and shutdown hooks.
local function fake_host()
  local h = { steps = {}, jobs = {}, shutdowns = {}, step_times = {}, logs = {} }
  function h.register_globalstep(f) h.steps[#h.steps + 1] = f end
  function h.register_on_shutdown(f) h.shutdowns[#h.shutdowns + 1] = f end
  function h.after(s, f) h.jobs[#h.jobs + 1] = { at = now() + s, f = f } end
  function h.get_us_time() return math.floor(now() * 1e6) end
  function h.log(level, line) h.logs[#h.logs + 1] = level .. ": " .. line end
  -- One server step: the globalsteps (timed), then the due after-jobs.
  function h.step()
    local t0 = now()
    for _, f in ipairs(h.steps) do f(0.01) end
    h.step_times[#h.step_times + 1] = now() - t0
    local due, later = {}, {}
    for _, j in ipairs(h.jobs) do
      if j.at <= now() then due[#due + 1] = j else later[#later + 1] = j end
    end
    h.jobs = later
    for _, j in ipairs(due) do j.f() end
  end
  function h.run_until(pred, seconds)
    local limit = now() + (seconds or 10)
    while not pred() and now() < limit do
      h.step()
      ccurl.sleep(0.005)
    end
    return pred()
  end
  function h.longest_step()
    local m = 0
    for _, t in ipairs(h.step_times) do m = math.max(m, t) end
    return m
  end
  function h.shutdown()
    for _, f in ipairs(h.shutdowns) do f() end
  end
  return h
end

describe("luanti transport (stand-in engine, mock server)", function()
  local m, host, clients

  lazy_setup(function() m = mock.start {} end)
  lazy_teardown(function() if m then m:stop() end end)

  before_each(function()
    m:reset()
    host = fake_host()
    rawset(_G, "minetest", host)
    clients = {}
  end)

  after_each(function()
    for _, c in ipairs(clients) do c:close() end
    rawset(_G, "minetest", nil)
  end)

  local function client(extra)
    local opts = { token = m.token, base_url = m.url, user_id = m.user_id, timeout = 5, connect_timeout = 2 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local c = cometkey.new(opts)
    clients[#clients + 1] = c
    return c
  end

  it("is picked by itself inside Luanti, and only there", function()
    assert.are.equal("luanti", client().transport.name)
    rawset(_G, "minetest", nil)
    assert.are.equal("curl", client().transport.name)
    local ok, err = pcall(client, { transport = "luanti" })
    assert.is_false(ok)
    assert.matches('luanti_transport_spec.lua:%d+: cometkey.new: transport "luanti" runs only inside a Luanti '
      .. "%(Minetest%) server mod %(minetest.register_globalstep, minetest.after and minetest.register_on_shutdown "
      .. "are needed%)$", err)
  end)

  it("refuses transports that make no sense in Luanti, at the caller", function()
    for _, t in ipairs({ "curl", "resty", "nvim" }) do
      local ok, err = pcall(client, { transport = t })
      assert.is_false(ok)
      assert.matches('transport "' .. t .. '" makes no sense in a Luanti server', err, 1, true)
      assert.matches("luanti_transport_spec.lua", err, 1, true)
    end
    assert.are.same({}, m:requests())
  end)

  it("is callback-only: a call without a callback raises before anything is sent", function()
    local c = client()
    local ok, err = pcall(function()
      c:get(1) -- the error names this line
    end)
    assert.is_false(ok)
    assert.matches('the "luanti" transport is callback-only', err, 1, true)
    assert.matches("nothing was sent", err, 1, true)
    assert.matches("luanti_transport_spec.lua:%d+:", err)
    assert.has_error(function() c:update { id = 1, status = 2 } end)
    assert.has_error(function() c:list() end)
    assert.has_error(function() c:update_many { { id = 1, name = "x" } } end)
    assert.has_error(function() c:each()() end)
    assert.has_error(function() c.transport:request { method = "GET", url = m.url .. "/api/token/1" } end)
    assert.has_error(function() c.transport:sleep(0.1) end)
    host.run_until(function() return false end, 0.2)
    assert.are.same({}, m:requests())
  end)

  it("answers each call once, later, from the server's loop", function()
    local c = client()
    local got = {}
    c:get(1, function(err, key) got[#got + 1] = { "get", err, key and key.id } end)
    c:update({ id = 2, name = "renamed" }, function(err, key) got[#got + 1] = { "update", err, key and key.name } end)
    c:list({ page_size = 3 }, function(err, page) got[#got + 1] = { "list", err, page and #page.items } end)
    assert.are.same({}, got) -- nothing inside the call itself
    assert.is_true(host.run_until(function() return #got == 3 end))
    host.run_until(function() return false end, 0.1)
    table.sort(got, function(a, b) return a[1] < b[1] end)
    assert.are.same({ { "get", nil, 1 }, { "list", nil, 3 }, { "update", nil, "renamed" } }, got)
    assert.are.equal("renamed", m:key(2).name)
  end)

  it("never blocks: multi_wait(0) returns at once while the server is slow", function()
    m:fault { type = "delay", match = "GET /api/token/1", seconds = 1 }
    local c = client()
    local t0, answer = now(), nil
    c:get(1, function(err, key) answer = { err, key and key.id, now() - t0 } end)
    assert.is_true(host.run_until(function() return answer ~= nil end))
    assert.are.same({ nil, 1 }, { answer[1], answer[2] })
    assert.is_true(answer[3] >= 0.9, answer[3])
    assert.is_true(#host.step_times > 20 / SLOW, #host.step_times .. " steps")
    assert.is_true(host.longest_step() < 0.05 * SLOW, host.longest_step() .. " s")
  end)

  it("polls with cometkey.curl's multi_wait(0), which returns at once", function()
    m:fault { type = "delay", match = "GET /api/token/1", seconds = 0.5 }
    local t = require("cometkey.transport.curl").new { secret = require("cometkey.core").secret(m.token), timeout = 5 }
    t:multi_add(1, { method = "GET", url = m.url .. "/api/token/1",
      headers = { ["New-Api-User"] = tostring(m.user_id) }, timeout = 5 })
    local worst, calls, done = 0, 0
    local limit = now() + 5
    repeat
      local t0 = now()
      local finished = t:multi_wait(0)
      worst = math.max(worst, now() - t0)
      calls = calls + 1
      done = finished[1]
      ccurl.sleep(0.002)
    until done or now() > limit
    t:close()
    assert.are.equal(200, done and done.res and done.res.status)
    assert.is_true(calls > 50 / SLOW, calls .. " polls")
    assert.is_true(worst < 0.02 * SLOW, worst * 1000 .. " ms") -- measured: well under 1 ms
  end)

  it("waits for retries in the globalstep, not on the main thread", function()
    m:fault { type = "ratelimit", match = "GET /api/token/3", count = 2 }
    local c = client()
    local t0, answer = now(), nil
    c:get(3, function(err, key, info) answer = { err, key and key.id, now() - t0, info } end)
    assert.is_true(host.run_until(function() return answer ~= nil end))
    assert.is_nil(answer[1])
    assert.are.equal(3, answer[2])
    assert.is_true(answer[3] >= 0.25, answer[3]) -- two backoff waits happened
    assert.is_true(host.longest_step() < 0.05 * SLOW, host.longest_step() .. " s")
    local n = 0
    for _, e in ipairs(m:requests()) do if e.uri == "/api/token/3" then n = n + 1 end end
    assert.are.equal(3, n)
  end)

  it("reuses its connection and queues calls beyond its in-flight limit", function()
    local c = client()
    local answers, seen = 0, {}
    for i = 1, 3 do
      local done = false
      c:get(i, function(err, key) assert.is_nil(err); done = key.id == i end)
      assert.is_true(host.run_until(function() return done end))
    end
    assert.are.equal(1, c.transport:stats().connects)
    for round = 1, 3 do
      for id = 1, 6 do
        c:get(id, function(err, key)
          assert.is_nil(err)
          assert.are.equal(id, key.id)
          answers = answers + 1
          seen[round * 10 + id] = (seen[round * 10 + id] or 0) + 1
        end)
      end
    end
    assert.is_true(c.transport:pending() > luanti.MAX_INFLIGHT)
    assert.is_true(host.run_until(function() return answers == 18 end))
    host.run_until(function() return false end, 0.1)
    assert.are.equal(18, answers)
    for _, n in pairs(seen) do assert.are.equal(1, n) end
    assert.is_true(c.transport:stats().connects <= luanti.MAX_INFLIGHT)
  end)

  it("close() answers running, queued and waiting calls (later, on the loop)", function()
    m:fault { type = "delay", match = "GET /api/token/1", seconds = 3 }
    m:fault { type = "ratelimit", match = "GET /api/token/2", count = -1 }
    local c = client()
    local got = {}
    c:get(1, function(err) got[#got + 1] = err end)
    c:get(2, function(err) got[#got + 1] = err end)
    host.run_until(function() return #m:requests() >= 2 end, 2)
    c:close()
    assert.are.same({}, got)
    assert.is_true(host.run_until(function() return #got == 2 end, 2))
    for _, err in ipairs(got) do assert.matches("the client was closed", err, 1, true) end
    assert.has_error(function() c:get(1, function() end) end, nil)
  end)

  it("closes on server shutdown: every call is answered at once and the token is wiped", function()
    m:fault { type = "delay", match = "GET /api/token/1", seconds = 3 }
    local c = client()
    local got = {}
    c:get(1, function(err) got[#got + 1] = err end)
    c:get(2, function(err) got[#got + 1] = err end)
    host.step()
    host.shutdown()
    assert.are.equal(2, #got)
    for _, err in ipairs(got) do assert.matches("the client was closed", err, 1, true) end
    assert.has_error(function() c.conf.secret:reveal() end, "cometkey: the token was wiped (client closed)")
    assert.are.equal("cometkey.transport.luanti (closed)", tostring(c.transport))
  end)
end)

-- The loader needs setfenv (Lua 5.1 / LuaJIT, as in Luanti): not run on 5.4.
if not rawget(_G, "setfenv") then return end

describe("cometkey.luanti loader (outside the engine, this interpreter as 'ie')", function()
  local build = os.getenv("CK_BUILD") or "build/5.4"
  local loader = dofile("lua/cometkey/luanti.lua")
  local engine = { register_globalstep = function() end, after = function() end,
    register_on_shutdown = function() end }
  local ck = loader.load(_G, { path = "lua/?.lua", cpath = build .. "/?.so", core = engine })

  it("returns a working cometkey, separate from require's", function()
    assert.are.equal(cometkey._VERSION, ck._VERSION)
    assert.are_not.equal(cometkey, ck)
    assert.is_true(ck.validate { id = 1, name = "ok" })
  end)

  it("gives every cometkey function (and upvalue) an environment without io, os.execute, require, loadlib, debug",
    function()
    -- The standard library is everybody's (LuaJIT writes some of it in Lua, with _G as
    -- environment): not followed, as in spec/luanti_spec.lua.
    local public = {}
    for _, name in ipairs({ "string", "table", "math", "coroutine", "os", "io", "debug", "package", "bit", "jit" }) do
      for _, x in pairs(rawget(_G, name) or {}) do public[x] = true end
    end
    for _, x in pairs(_G) do if type(x) == "function" then public[x] = true end end
    local seen, envs = {}, {}
    local function walk(v)
      if seen[v] or v == engine or public[v] then return end -- (the engine's table is every mod's)
      local t = type(v)
      if t ~= "table" and t ~= "function" then return end
      seen[v] = true
      if t == "function" then
        -- (C functions: LuaJIT's getfenv gives the caller's globals, and the standard
        -- library's own are everybody's; cometkey's Lua functions are the point.)
        if debug.getinfo(v, "S").what ~= "C" then
          local env = getfenv(v)
          assert.are_not.equal(_G, env)
          envs[env] = true
          walk(env)
        end
        local i = 1
        while debug.getupvalue(v, i) do
          local _, x = debug.getupvalue(v, i)
          assert.are_not.equal(_G, x)
          walk(x)
          i = i + 1
        end
      else
        for k, x in pairs(v) do walk(k); walk(x) end
        walk(getmetatable(v))
      end
    end
    walk(ck)
    local n = 0
    for env in pairs(envs) do
      n = n + 1
      for _, name in ipairs({ "io", "package", "load", "loadstring", "dofile", "loadfile", "getfenv",
        "setfenv", "module", "print" }) do
        assert.is_nil(rawget(env, name), name)
      end
      if env.debug then -- only what every Luanti mod's debug table has too
        for name in pairs(env.debug) do assert.is_true(name == "getinfo" or name == "traceback", name) end
      end
      if env.os then
        assert.is_nil(env.os.execute)
        assert.is_nil(env.os.exit)
        assert.is_nil(env.os.getenv)
      end
      if env.require then
        assert.are_not.equal(require, env.require)
        assert.has_error(function() env.require("io") end)
        assert.has_error(function() env.require("cometkey.cli.format") end)
        assert.are.equal(ck, env.require("cometkey"))
      end
      if env.table and jit then
        -- LuaJIT's Lua-written library functions are wrapped (their own environment is _G).
        assert.are_not.equal(_G, getfenv(env.table.remove))
      end
    end
    assert.is_true(n >= 8, n .. " environments")
  end)

  it("raises clearly on a wrong environment or option", function()
    assert.has_error(function() loader.load({}) end, "cometkey.luanti.load: pass the insecure environment: "
      .. "minetest.request_insecure_environment() (only in a mod listed in secure.trusted_mods, and only "
      .. "while its init.lua runs)")
    assert.has_error(function() loader.load(_G, { core = engine, bogus = 1 }) end,
      "cometkey.luanti.load: unknown option 'bogus' (path, cpath, core)")
    local ok, err = pcall(loader.load, _G, { core = engine, path = "/nonexistent/?.lua", cpath = build .. "/?.so" })
    assert.is_false(ok)
    assert.matches("module 'cometkey' not found", err, 1, true)
  end)
end)
