-- spec/curl_spec.lua - cometkey.curl (the libcurl transport) and its Lua wrapper
-- cometkey.transport.curl, against the local mock server: round trips, the
-- headers on the wire, keep-alive, every fault kind, header injection,
-- lifecycle, secrecy of the token and the multi interface.
local curl = require "cometkey.curl"
local transport = require "cometkey.transport.curl"
local mock = require "spec.support.mock"
local core = require "cometkey.core"
local cjson = require "cjson"

local UA = "cometkey-spec/1.0"
-- libcurl checks its timers in whole milliseconds: it may stop a hair before our clock says.
local SLACK = 0.01

-- Starts a mock for the calling block --> the mock, its base URL, a secret of its token.
local function start_mock()
  local m = mock.start {}
  return m, (m.url:gsub("/$", "")), core.secret(m.token)
end

describe("cometkey.curl", function()
  local m, base, secret

  lazy_setup(function() m, base, secret = start_mock() end)
  lazy_teardown(function() if m then m:stop() end end)

  before_each(function() m:reset() end)

  local function std_headers(extra)
    local h = { ["User-Agent"] = UA, ["Content-Type"] = "application/json", ["Accept-Language"] = "en",
      ["New-Api-User"] = tostring(m.user_id) } -- the mock requires it, as upstream servers do
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end

  local function get(h, path, extra)
    return h:perform { method = "GET", url = base .. path, headers = std_headers(extra) }
  end

  -- The request log entries the mock recorded after `before` (its request count then).
  local function logged_since(before)
    local all, out = m:requests(), {}
    for _, entry in ipairs(all) do
      if entry.seq > before then out[#out + 1] = entry end
    end
    return out
  end

  local function decode(res)
    return cjson.decode(res.body)
  end

  -- The handle still works: a plain authenticated GET succeeds.
  local function assert_works(h)
    local res, err = get(h, "/api/token/1")
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_true(decode(res).success)
    assert.are.equal(1, decode(res).data.id)
  end

  local function assert_one_line_without_token(message)
    assert.is_string(message)
    assert.is_nil(message:find("[\r\n]"))
    assert.is_nil(message:find(m.token, 1, true))
  end

  describe("options", function()
    it("creates a handle with defaults and with every option", function()
      local h = curl.new()
      assert.are.equal("cometkey.curl (open)", tostring(h))
      h:close()
      h = curl.new { timeout = 1.5, connect_timeout = 0.25, verify = true, max_body = 1024, token = secret }
      assert.are.equal("cometkey.curl (open)", tostring(h))
      h:close()
    end)

    it("raises naming the option for bad types and values", function()
      local cases = {
        { { timeout = "30" }, "timeout" }, { { timeout = 0 }, "timeout" }, { { timeout = -1 }, "timeout" },
        { { timeout = 0 / 0 }, "timeout" }, { { connect_timeout = false }, "connect_timeout" },
        { { verify = "yes" }, "verify" }, { { ca_file = 42 }, "ca_file" },
        { { ca_file = "/nonexistent/ca.pem" }, "ca_file" }, { { max_body = 0 }, "max_body" },
        { { max_body = 1.5 }, "max_body" }, { { token = m.token }, "token" }, { { timout = 1 }, "timout" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(curl.new, case[1])
        assert.is_false(ok)
        assert.matches(case[2], err, 1, true)
      end
    end)

    it("refuses a token with control characters without showing it", function()
      local ok, err = pcall(curl.new, { token = core.secret("abc\r\nX-Evil: 1") })
      assert.is_false(ok)
      assert.matches("control characters", err, 1, true)
      assert.is_nil(err:find("X-Evil", 1, true))
    end)

    it("reports the libcurl version", function()
      local version, tls = curl.version()
      assert.matches("^%d+%.%d+%.%d+", version)
      assert.is_string(tls)
    end)
  end)

  describe("round trips", function()
    local h
    before_each(function() h = curl.new { token = secret, timeout = 5 } end)
    after_each(function() h:close() end)

    it("GET returns status, lower-case headers and the body", function()
      local res, err, info = get(h, "/api/token/1")
      assert.is_nil(err)
      assert.is_nil(info)
      assert.are.equal(200, res.status)
      assert.matches("^application/json", res.headers["content-type"])
      assert.is_nil(res.headers["Content-Type"])
      assert.are.equal("production", decode(res).data.name)
    end)

    it("PUT sends the body and the server applies it", function()
      local record = decode(get(h, "/api/token/5")).data
      record.name = "renamed-by-spec"
      record.auto_groups = nil -- cjson would send the empty array as {}, which the server refuses
      local body = cjson.encode(record)
      local before = m:stats().requests
      local res, err = h:perform { method = "PUT", url = base .. "/api/token/", headers = std_headers(), body = body }
      assert.is_nil(err)
      assert.are.equal(200, res.status)
      assert.is_true(decode(res).success)
      local log = logged_since(before)
      assert.are.equal(1, #log)
      assert.are.equal("PUT", log[1].method)
      assert.are.equal("/api/token/", log[1].uri)
      assert.are.equal(body, log[1].body)
      assert.are.equal("renamed-by-spec", decode(get(h, "/api/token/5")).data.name)
    end)

    it("POST creates and DELETE removes", function()
      local name = "spec-created-" .. tostring(os.time())
      local before = m:stats().requests
      local res, err = h:perform {
        method = "POST", url = base .. "/api/token/", headers = std_headers(),
        body = cjson.encode { name = name, remain_quota = 1000, expired_time = -1 },
      }
      assert.is_nil(err)
      assert.are.equal(200, res.status)
      assert.is_true(decode(res).success)
      assert.are.equal("POST", logged_since(before)[1].method)

      local found = decode(get(h, "/api/token/search?keyword=" .. name))
      assert.is_true(found.success)
      local items = found.data.items or found.data
      assert.are.equal(1, #items)
      local id = ("%d"):format(items[1].id) -- cjson decodes every number as a float on 5.4

      before = m:stats().requests
      res, err = h:perform { method = "DELETE", url = base .. "/api/token/" .. id, headers = std_headers() }
      assert.is_nil(err)
      assert.are.equal(200, res.status)
      assert.is_true(decode(res).success)
      local log = logged_since(before)
      assert.are.equal("DELETE", log[1].method)
      assert.are.equal(0, log[1].body_length)
      assert.is_false(decode(get(h, "/api/token/" .. id)).success)
    end)

    it("sends the token (redacted in the log), the caller's headers, and no Expect", function()
      local before = m:stats().requests
      -- A body over 1 MiB is where libcurl would add "Expect: 100-continue" by itself.
      local big = cjson.encode { id = 1, name = string.rep("n", 1100 * 1024) }
      h:perform { method = "PUT", url = base .. "/api/token/", headers = std_headers { ["X-Spec"] = "yes" },
        body = big }
      local log = logged_since(before)
      assert.are.equal(1, #log)
      local headers = log[1].headers
      assert.is_true(log[1].auth_present)
      assert.are.equal("<redacted>", headers.authorization)
      assert.is_nil(headers.expect)
      assert.are.equal(UA, headers["user-agent"])
      assert.are.equal("yes", headers["x-spec"])
      assert.are.equal(#big, log[1].body_length)
    end)

    it("authenticates with the token (a handle without it is refused)", function()
      local anonymous = curl.new { timeout = 5 }
      local res = get(anonymous, "/api/token/1")
      anonymous:close()
      assert.is_false(decode(res).success)
      assert_works(h)
    end)

    it("sends no User-Agent or Accept-Encoding of its own", function()
      local before = m:stats().requests
      h:perform { method = "GET", url = base .. "/api/token/1" }
      local headers = logged_since(before)[1].headers
      assert.is_nil(headers["user-agent"])
      assert.is_nil(headers["accept-encoding"])
    end)
  end)

  describe("keep-alive", function()
    it("50 requests use one connection", function()
      local h = curl.new { token = secret, timeout = 5 }
      local before = m:stats().connections
      for _ = 1, 50 do
        local res = assert(get(h, "/api/token/1"))
        assert.are.equal(200, res.status)
      end
      assert.are.equal(1, m:stats().connections - before)
      local stats = h:stats()
      assert.are.equal(50, stats.requests)
      assert.are.equal(1, stats.connects)
      h:close()
    end)

    it("a request that is not idempotent opens its own connection; an idempotent POST reuses one", function()
      local h = curl.new { token = secret, timeout = 5 }
      local url = base .. "/api/token/search?keyword=x"
      for _ = 1, 3 do assert(h:perform { method = "POST", url = url, body = "{}", idempotent = true }) end
      assert.are.equal(1, h:stats().connects)
      for _ = 1, 2 do assert(h:perform { method = "POST", url = url, body = "{}" }) end -- a POST by default
      assert.are.equal(3, h:stats().connects)
      assert(h:perform { method = "GET", url = base .. "/api/token/1", idempotent = false })
      assert.are.equal(4, h:stats().connects)
      assert.has_error(function() h:perform { method = "GET", url = url, idempotent = "yes" } end)
      h:close()
    end)
  end)

  describe("failures", function()
    local h
    before_each(function() h = curl.new { token = secret, timeout = 5 } end)
    after_each(function() h:close() end)

    local function assert_failure(kind, res, err, info)
      assert.is_nil(res)
      assert_one_line_without_token(err)
      assert.are.equal("table", type(info))
      assert.are.equal(kind, info.kind)
      assert.is_number(info.curl_code)
      assert.is_boolean(info.retryable)
      assert.matches("^cometkey: %u+ /", err)
    end

    it("connection refused is a retryable network error, nothing sent", function()
      local probe = curl.new { timeout = 2 }
      -- Port 1 on loopback: nothing listens there.
      local res, err, info = probe:perform { method = "GET", url = "http://127.0.0.1:1/api/token/?token=q" }
      probe:close()
      assert_failure("network", res, err, info)
      assert.is_true(info.retryable)
      assert.is_false(info.sent)
      assert.matches("cometkey: GET /api/token/: network error: ", err, 1, true)
      assert.is_nil(err:find("token=q", 1, true)) -- the query is not part of the message
    end)

    it("a delay beyond the timeout is a timeout, within timeout + 0.5 s", function()
      m:fault { type = "delay", seconds = 3, match = "GET /api/token/1" }
      local t0 = curl.now()
      local res, err, info = h:perform { method = "GET", url = base .. "/api/token/1", timeout = 0.5 }
      local elapsed = curl.now() - t0
      assert_failure("timeout", res, err, info)
      assert.is_true(info.retryable)
      assert.is_true(info.sent)
      assert.is_true(elapsed >= 0.5 - SLACK and elapsed < 1.0, "elapsed " .. elapsed)
      assert_works(h)
    end)

    it("the handle's own timeout applies without a per-request one", function()
      local short = curl.new { token = secret, timeout = 0.3 }
      m:fault { type = "delay", seconds = 2, match = "GET /api/token/1" }
      local t0 = curl.now()
      local res, err, info = get(short, "/api/token/1")
      local elapsed = curl.now() - t0
      assert_failure("timeout", res, err, info)
      assert.is_true(elapsed >= 0.3 - SLACK and elapsed < 0.8, "elapsed " .. elapsed)
      short:close()
    end)

    it("a reset connection is a network error", function()
      m:fault { type = "reset", match = "GET /api/token/1" }
      local res, err, info = get(h, "/api/token/1")
      assert_failure("network", res, err, info)
      assert.is_true(info.retryable)
      assert_works(h)
    end)

    it("a POST is never replayed on a new connection after a reset", function()
      assert_works(h) -- a kept-alive connection exists now
      m:fault { type = "reset", processed = true, match = "POST /api/token/" }
      local before = m:stats().requests
      local res, err, info = h:perform {
        method = "POST", url = base .. "/api/token/", headers = std_headers(),
        body = cjson.encode { name = "created-once", remain_quota = 1, expired_time = -1 },
      }
      assert_failure("network", res, err, info)
      local posts = 0
      for _, entry in ipairs(logged_since(before)) do
        if entry.method == "POST" then posts = posts + 1 end
      end
      assert.are.equal(1, posts)
      local created = 0
      for _, key in ipairs(m:keys()) do
        if key.name == "created-once" then created = created + 1 end
      end
      assert.are.equal(1, created)
      assert_works(h)
    end)

    it("an idempotent request on a dead kept-alive connection is resent once by libcurl", function()
      assert_works(h)
      m:fault { type = "reset", match = "GET /api/token/1" }
      local before = m:stats().requests
      assert_works(h)
      assert.are.equal(2, #logged_since(before))
    end)

    it("a truncated body is a network error", function()
      m:fault { type = "truncate", match = "GET /api/token/1" }
      local res, err, info = get(h, "/api/token/1")
      assert_failure("network", res, err, info)
      assert.is_true(info.retryable)
      assert_works(h)
    end)

    it("a body that stalls beyond the timeout is a timeout", function()
      m:fault { type = "slow_body", seconds = 3, match = "GET /api/token/1" }
      local t0 = curl.now()
      local res, err, info = h:perform { method = "GET", url = base .. "/api/token/1", timeout = 0.5 }
      local elapsed = curl.now() - t0
      assert_failure("timeout", res, err, info)
      assert.is_true(elapsed < 1.0, "elapsed " .. elapsed)
      assert_works(h)
    end)

    it("a body over max_body is too_large (announced length)", function()
      local capped = curl.new { token = secret, timeout = 10, max_body = 1024 * 1024 }
      m:fault { type = "big", bytes = 20 * 1024 * 1024, match = "GET /api/token/" }
      local res, err, info = get(capped, "/api/token/")
      assert_failure("too_large", res, err, info)
      assert.is_false(info.retryable)
      assert.matches("max_body (1048576 bytes)", err, 1, true)
      assert_works(capped)
      capped:close()
    end)

    it("a body over max_body is too_large (chunked, counted while it arrives)", function()
      local capped = curl.new { token = secret, timeout = 10, max_body = 64 }
      m:fault { type = "chunked", chunks = 8, match = "GET /api/token/1" }
      local res, err, info = get(capped, "/api/token/1")
      assert_failure("too_large", res, err, info)
      capped:close()
    end)

    it("a redirect is returned as data and never followed", function()
      m:fault { type = "redirect", status = 301, location = base .. "/api/token/2", match = "GET /api/token/1" }
      local before = m:stats().requests
      local res, err = get(h, "/api/token/1")
      assert.is_nil(err)
      assert.are.equal(301, res.status)
      assert.are.equal(base .. "/api/token/2", res.headers.location)
      assert.are.equal(1, m:stats().requests - before)
      assert.are.equal(1, #logged_since(before))
    end)

    it("decodes a chunked body", function()
      local plain = get(h, "/api/token/1")
      m:fault { type = "chunked", chunks = 5, match = "GET /api/token/1" }
      local res, err = get(h, "/api/token/1")
      assert.is_nil(err)
      assert.are.equal("chunked", res.headers["transfer-encoding"])
      assert.is_nil(res.headers["content-length"])
      assert.are.same(decode(plain).data, decode(res).data)
    end)
  end)

  describe("programmer errors", function()
    local h
    before_each(function() h = curl.new { token = secret, timeout = 5 } end)
    after_each(function() h:close() end)

    it("header injection raises and sends nothing", function()
      local before = m:stats().requests
      local bad = {
        { ["X-Evil"] = "a\r\nX-Injected: 1" }, { ["X-Evil"] = "a\nb" }, { ["X-Evil"] = "a\0b" },
        { ["X-Evil\r\nX-Injected"] = "1" }, { ["X Evil"] = "1" }, { ["X-Evil:"] = "1" }, { [""] = "1" },
        { Authorization = "other-token" }, { authorization = "other-token" }, { ["X-Evil"] = true },
      }
      for _, headers in ipairs(bad) do
        local ok, err = pcall(h.perform, h, { method = "GET", url = base .. "/api/token/1", headers = headers })
        assert.is_false(ok)
        assert.matches("req.headers", err, 1, true)
        assert.is_nil(err:find("other-token", 1, true))
      end
      assert.are.equal(before, m:stats().requests)
      assert_works(h)
    end)

    it("a bad request table raises naming the field", function()
      local cases = {
        { { method = "PATCH", url = base .. "/" }, "req.method" },
        { { url = base .. "/" }, "req.method" },
        { { method = "GET" }, "req.url" },
        { { method = "GET", url = "ftp://127.0.0.1/" }, "req.url" },
        { { method = "GET", url = base .. "/a b" }, "req.url" },
        { { method = "GET", url = "http://user:pw@127.0.0.1/" }, "req.url" },
        { { method = "GET", url = base .. "/", body = "x" }, "req.body" },
        { { method = "PUT", url = base .. "/", body = {} }, "req.body" },
        { { method = "GET", url = base .. "/", headers = "x" }, "req.headers" },
        { { method = "GET", url = base .. "/", timeout = 0 }, "req.timeout" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(h.perform, h, case[1])
        assert.is_false(ok)
        assert.matches(case[2], err, 1, true)
      end
      assert.is_false(pcall(h.perform, h, "GET /"))
      assert_works(h)
    end)
  end)

  describe("lifecycle and secrecy", function()
    it("close is idempotent and perform after close raises", function()
      local h = curl.new { token = secret }
      assert_works(h)
      h:close()
      h:close()
      assert.are.equal("cometkey.curl (closed)", tostring(h))
      local ok, err = pcall(h.perform, h, { method = "GET", url = base .. "/api/token/1" })
      assert.is_false(ok)
      assert.matches("cometkey: client is closed", err, 1, true)
      assert.is_false(pcall(h.multi_add, h, 1, { method = "GET", url = base .. "/" }))
      assert.is_number(h:stats().requests)
    end)

    it("closing the handle leaves the secret usable by other handles", function()
      local a, b = curl.new { token = secret }, curl.new { token = secret }
      a:close()
      assert_works(b)
      b:close()
    end)

    it("tostring never shows the token", function()
      local h = curl.new { token = secret }
      assert.is_nil(tostring(h):find(m.token, 1, true))
      local t = transport.new { secret = secret }
      assert.is_nil(tostring(t):find(m.token, 1, true))
      h:close()
      t:close()
      assert.is_nil(tostring(h):find(m.token, 1, true))
    end)

    it("error messages never show the token or header values", function()
      local h = curl.new { token = secret, timeout = 0.3 }
      m:fault { type = "delay", seconds = 2, match = "GET /api/token/1" }
      local _, err = get(h, "/api/token/1", { ["X-Note"] = "private-header-value" })
      assert_one_line_without_token(err)
      assert.is_nil(err:find("private-header-value", 1, true))
      h:close()
    end)

    if _VERSION == "Lua 5.4" then
      it("closes through a to-be-closed variable", function()
        local chunk = assert(load [[
          local curl, probe = ...
          do
            local h <close> = curl.new {}
            probe.h = h
          end
        ]])
        local probe = {}
        chunk(curl, probe)
        assert.are.equal("cometkey.curl (closed)", tostring(probe.h))
      end)
    end

    it("is collected without close", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local h = curl.new { token = secret }
        assert_works(h)
        weak[1] = h
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
    end)
  end)

  describe("clock", function()
    it("now is monotonic seconds and sleep waits", function()
      local t0 = curl.now()
      curl.sleep(0.1)
      local dt = curl.now() - t0
      assert.is_true(dt >= 0.1 and dt < 0.5, "slept " .. dt)
      curl.sleep(0)
      assert.is_false(pcall(curl.sleep, -1))
      assert.is_false(pcall(curl.sleep, "soon"))
    end)
  end)

  describe("multi", function()
    local h
    before_each(function() h = curl.new { token = secret, timeout = 5 } end)
    after_each(function() h:close() end)

    local function req(id)
      return { method = "GET", url = base .. "/api/token/" .. id, headers = std_headers() }
    end

    it("40 requests at concurrency 8 complete with their tags over few connections", function()
      local total, concurrency, next_tag = 40, 8, 1
      local id_of, seen, completed = {}, {}, 0
      local before = m:stats().connections
      local function add()
        local tag = next_tag
        next_tag = next_tag + 1
        id_of[tag] = (tag - 1) % 6 + 1
        h:multi_add(tag, req(id_of[tag]))
      end
      for _ = 1, concurrency do add() end
      assert.are.equal(concurrency, h:multi_pending())
      while h:multi_pending() > 0 do
        local done = h:multi_wait(5)
        assert.is_true(#done > 0, "multi_wait timed out")
        for _, d in ipairs(done) do
          assert.is_nil(seen[d.tag], "tag reported twice")
          seen[d.tag] = true
          completed = completed + 1
          assert.is_nil(d.err)
          assert.are.equal(200, d.res.status)
          assert.are.equal(id_of[d.tag], decode(d.res).data.id)
          if next_tag <= total then add() end
        end
        assert.is_true(h:multi_pending() <= concurrency)
      end
      assert.are.equal(total, completed)
      local connections = m:stats().connections - before
      assert.is_true(connections >= 1 and connections <= concurrency, "connections " .. connections)
      assert.is_true(h:stats().connects <= concurrency)
      assert.are.equal(total, h:stats().requests)
    end)

    it("reports failures in perform's shape, next to successes", function()
      m:fault { type = "delay", seconds = 3, match = "GET /api/token/2" }
      h:multi_add(1, req(1))
      h:multi_add(2, { method = "GET", url = base .. "/api/token/2", timeout = 0.4 })
      h:multi_add(3, { method = "GET", url = "http://127.0.0.1:1/api/token/3" })
      local results = {}
      while h:multi_pending() > 0 do
        for _, d in ipairs(h:multi_wait(5)) do results[d.tag] = d end
      end
      local ok_res = get(h, "/api/token/1")
      assert.are.same({ "body", "headers", "status" }, (function()
        local keys = {}
        for k in pairs(results[1].res) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
      assert.are.equal(ok_res.status, results[1].res.status)
      assert.are.same(decode(ok_res).data, decode(results[1].res).data)
      assert.are.equal("timeout", results[2].info.kind)
      assert.matches("^cometkey: GET /api/token/2: timeout: ", results[2].err)
      assert.are.equal("network", results[3].info.kind)
      assert.is_false(results[3].info.sent)
      local _, perform_err, perform_info = h:perform { method = "GET", url = "http://127.0.0.1:1/api/token/3" }
      -- The same words (libcurl's text may differ in the milliseconds it reports).
      assert.are.equal(perform_err:gsub("%d+ ms", "N ms"), (results[3].err:gsub("%d+ ms", "N ms")))
      assert.are.same(perform_info, results[3].info)
    end)

    it("multi_wait returns an empty array when nothing completes in time", function()
      m:fault { type = "delay", seconds = 0.6, match = "GET /api/token/1" }
      assert.are.same({}, h:multi_wait(0.05)) -- nothing in flight: returns at once
      h:multi_add(7, req(1))
      local t0 = curl.now()
      local done = h:multi_wait(0.1)
      local elapsed = curl.now() - t0
      assert.are.same({}, done)
      assert.is_true(elapsed >= 0.1 and elapsed < 0.4, "elapsed " .. elapsed)
      assert.are.equal(1, h:multi_pending())
      done = h:multi_wait(5)
      assert.are.equal(1, #done)
      assert.are.equal(7, done[1].tag)
      assert.are.equal(200, done[1].res.status)
      assert.are.equal(0, h:multi_pending())
    end)

    it("raises on a bad tag or request before anything is sent", function()
      local before = m:stats().requests
      assert.is_false(pcall(h.multi_add, h, "one", req(1)))
      assert.is_false(pcall(h.multi_add, h, 1.5, req(1)))
      assert.is_false(pcall(h.multi_add, h, 1, { method = "GET", url = base .. "/", headers = { A = "\r\n" } }))
      assert.are.equal(0, h:multi_pending())
      assert.are.same({}, h:multi_wait(0))
      assert.are.equal(before, m:stats().requests)
    end)

    it("close with transfers in flight frees everything", function()
      m:fault { type = "delay", seconds = 1, match = "GET /api/token/1" }
      h:multi_add(1, req(1))
      h:multi_add(2, req(2))
      h:multi_wait(0.05)
      h:close()
      assert.are.equal("cometkey.curl (closed)", tostring(h))
    end)
  end)
end)

describe("cometkey.transport.curl", function()
  local m, base, secret

  lazy_setup(function() m, base, secret = start_mock() end)
  lazy_teardown(function() if m then m:stop() end end)

  -- New-Api-User: the mock requires it, as upstream servers do.
  local function user_header(h)
    h = h or {}
    h["New-Api-User"] = tostring(m.user_id)
    return h
  end

  it("reads its options from a whole client configuration", function()
    local t = transport.new {
      secret = secret, timeout = 5, connect_timeout = 2, verify = true, max_body = 4096,
      base_url = base, retries = 2, user_agent = UA, transport = "curl", debug = false,
    }
    local res = t:request { method = "GET", url = base .. "/api/token/1", headers = user_header() }
    assert.are.equal(200, res.status)
    t:close()
    -- max_body reached the handle: a larger body is refused.
    t = transport.new { secret = secret, max_body = 16 }
    local _, _, info = t:request { method = "GET", url = base .. "/api/token/1", headers = user_header() }
    assert.are.equal("too_large", info.kind)
    t:close()
  end)

  it("request returns res | nil, message, info", function()
    local t = transport.new { secret = secret, timeout = 5 }
    assert.are.equal("curl", t.name)
    assert.is_false(t.needs_token)
    local res = t:request { method = "GET", url = base .. "/api/token/1",
      headers = user_header { ["User-Agent"] = UA } }
    assert.are.equal(200, res.status)
    assert.is_true(cjson.decode(res.body).success)
    local none, err, info = t:request { method = "GET", url = "http://127.0.0.1:1/" }
    assert.is_nil(none)
    assert.is_string(err)
    assert.are.equal("network", info.kind)
    assert.is_true(t:stats().requests == 2)
    t:close()
    t:close()
  end)

  it("raises programmer errors at the caller with the rule", function()
    local ok, err = pcall(transport.new, "fast")
    assert.is_false(ok)
    assert.matches("opts must be a table", err, 1, true)
    ok, err = pcall(function()
      local t = transport.new { timeout = "x" } -- not a tail call: the error names this line
      return t
    end)
    assert.is_false(ok)
    assert.matches("^[^:]*curl_spec.lua:%d+: cometkey.transport.curl.new: timeout must be", err)
    local t = transport.new { secret = secret }
    ok, err = pcall(function()
      local res = t:request { method = "GET", url = base .. "/", headers = { A = "\n" } }
      return res
    end)
    assert.is_false(ok)
    assert.matches("curl_spec.lua:%d+: cometkey.transport.curl.request: req.headers", err)
    t:close()
    ok, err = pcall(function() return t:request { method = "GET", url = base .. "/" } end)
    assert.is_false(ok)
    assert.matches("cometkey: client is closed", err, 1, true)
  end)

  it("passes the clock, sleep and multi through", function()
    local t = transport.new { secret = secret, timeout = 5 }
    local t0 = t:now()
    t:sleep(0.05)
    assert.is_true(t:now() - t0 >= 0.05)
    t:multi_add(11, { method = "GET", url = base .. "/api/token/1", headers = user_header() })
    assert.are.equal(1, t:multi_pending())
    local done = {}
    while #done == 0 do done = t:multi_wait(5) end
    assert.are.equal(11, done[1].tag)
    assert.are.equal(200, done[1].res.status)
    local called
    t:request_async({ method = "GET", url = base .. "/api/token/1", headers = user_header() },
      function(res) called = res.status end)
    assert.are.equal(200, called)
    t:close()
  end)
end)
