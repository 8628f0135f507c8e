-- spec/hostile_spec.lua - attacks from issue #15 and what holds them (docs/reliability.md,
-- "Attacks tried"): header floods on every transport, Retry-After values that try to stall
-- or raise, failures that arrive after close(), proxies for loopback addresses, base_url
-- tricks. Servers here are loopback only: the mock and spec/support/raw_server.lua.
local cometkey = require "cometkey"
local raw = require "spec.support.raw_server"
local fake = require "spec.support.fakehosts"

local TOKEN = "tok-HOSTILE-5d1e0a7c93b4"

local function cpu(fn, ...)
  local t0 = os.clock()
  local r = { fn(...) }
  return os.clock() - t0, r
end

local function response(header_lines, body)
  body = body or '{"success":true,"data":{"id":1,"name":"a","status":1}}'
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" .. header_lines
    .. "Content-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body
end

-- ------------------------------------------------------------------ item 5: header floods

describe("response header floods", function()
  local servers = {}
  after_each(function()
    for _, s in ipairs(servers) do s.stop() end
    servers = {}
  end)
  local function serve(bytes)
    local s = raw.start(bytes, 30)
    servers[#servers + 1] = s
    return s
  end

  describe("curl transport", function()
    local function get(s)
      local c = cometkey.new { token = TOKEN, base_url = s.url, retries = 2, timeout = 10 }
      local took, r = cpu(c.get, c, 1)
      c:close()
      return took, r[1], r[2], r[3]
    end

    it("refuses 100 000 repeated fields with kind too_large, at once and without a retry", function()
      local s = serve(response(("X-A: v\r\n"):rep(100000)))
      local took, key, message, info = get(s)
      assert.is_nil(key)
      assert.are.equal("too_large", info.kind, message)
      assert.is_false(info.retryable)
      assert.are.equal(1, #s.log())
      assert.is_true(took < 0.5, ("%.3f s of CPU"):format(took))
    end)

    it("refuses 501 fields (the field cap), and joins 400 repeats in linear time", function()
      local s = serve(response(("X-B: w\r\n"):rep(501)))
      local _, _, message, info = get(s)
      assert.are.equal("too_large", info.kind, message)
      assert.matches("500 fields", message, 1, true)
      local t = require("cometkey.transport.curl").new {}
      local s2 = serve(response(("X-B: w\r\n"):rep(400)))
      local res = t:request { method = "GET", url = s2.url .. "/x" }
      t:close()
      assert.are.equal(("w, "):rep(399) .. "w", res.headers["x-b"])
    end)

    it("maps libcurl's own refusal of a 120 KB header line to too_large (was: retryable network)", function()
      local s = serve(response("X-Long: " .. ("a"):rep(120000) .. "\r\n"))
      local _, key, message, info = get(s)
      assert.is_nil(key)
      assert.are.equal("too_large", info.kind, message)
      assert.is_false(info.retryable)
      assert.are.equal(1, #s.log())
    end)

    it("refuses a header block over 256 KiB made of few fields", function()
      local line = "X-C: " .. ("c"):rep(90000) .. "\r\n"
      local s = serve(response(line:rep(3)))
      local _, _, message, info = get(s)
      assert.are.equal("too_large", info.kind, message)
    end)
  end)

  describe("resty transport's header reader (fake cosocket)", function()
    local resty = fake.resty()
    local function read(bytes)
      local headers = {}
      local took, r = cpu(resty._read_headers, fake.socket(bytes), math.huge, headers, { bytes = 0, fields = 0 })
      return took, headers, r[1], r[2], r[3]
    end

    it("refuses 100 000 repeated fields with too_large in linear time", function()
      local took, _, ok, err, kind = read(("X-A: v\r\n"):rep(100000) .. "\r\n")
      assert.is_nil(ok)
      assert.are.equal("too_large", kind, err)
      assert.is_true(took < 0.5, ("%.3f s of CPU"):format(took))
    end)

    it("joins 500 repeats in linear time, as the other transports do", function()
      local took, headers, ok = read(("X-A: v\r\n"):rep(500) .. "\r\n")
      assert.is_true(ok)
      assert.are.equal(("v, "):rep(499) .. "v", headers["x-a"])
      assert.is_true(took < 0.1, ("%.3f s of CPU"):format(took))
    end)

    it("cuts blanks around a value without backtracking over a 200 KB run of blanks", function()
      local took, headers, ok = read("X-Sp: a" .. (" "):rep(200000) .. "b \r\n\r\n")
      assert.is_true(ok)
      assert.are.equal("a" .. (" "):rep(200000) .. "b", headers["x-sp"])
      assert.is_true(took < 0.5, ("%.3f s of CPU"):format(took))
    end)

    it("stops reading an endless header line at the cap (receive(\"*l\") would buffer all of it)", function()
      local sock = fake.socket("X-Endless: " .. ("e"):rep(8 * 1024 * 1024))
      local ok, err, kind = resty._read_headers(sock, math.huge, {}, { bytes = 0, fields = 0 })
      assert.is_nil(ok)
      assert.are.equal("too_large", kind, err)
      assert.is_true(sock.consumed() <= resty.MAX_HEADER_BYTES + resty.READ_CHUNK, sock.consumed() .. " bytes read")
    end)

    it("counts bytes over every block of one response (1xx and trailers included)", function()
      local budget = { bytes = 0, fields = 0 }
      for _ = 1, 3 do
        assert.is_true(resty._read_headers(fake.socket(("X: 1\r\n"):rep(150) .. "\r\n"), math.huge, {}, budget))
      end
      local ok, _, kind = resty._read_headers(fake.socket(("X: 1\r\n"):rep(150) .. "\r\n"), math.huge, {}, budget)
      assert.is_nil(ok)
      assert.are.equal("too_large", kind)
    end)
  end)

  describe("nvim transport's header parser", function()
    local nvim = fake.nvim()
    it("refuses 100 000 fields and joins repeats in linear time", function()
      local took, r = cpu(nvim._parse_head, "HTTP/1.1 200 OK\r\n" .. ("X-A: v\r\n"):rep(100000) .. "\r\n")
      assert.are.equal("too_large", r[3])
      assert.is_true(took < 0.5, ("%.3f s of CPU"):format(took))
      took, r = cpu(nvim._parse_head, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" .. ("X-A: v\r\n"):rep(400)
        .. "X-Sp: a" .. (" "):rep(100000) .. "b  \r\n\r\n")
      assert.are.equal(200, r[1])
      assert.are.equal(("v, "):rep(399) .. "v", r[2]["x-a"])
      assert.are.equal("a" .. (" "):rep(100000) .. "b", r[2]["x-sp"])
      assert.is_true(took < 0.5, ("%.3f s of CPU"):format(took))
    end)
  end)

  describe("user function transport", function()
    it("refuses a response table with 100 000 header fields as too_large", function()
      local headers = {}
      for i = 1, 100000 do headers["x-" .. i] = "v" end
      local calls = 0
      local c = cometkey.new { token = TOKEN, base_url = "http://127.0.0.1:9", retries = 2, transport = function()
        calls = calls + 1
        return { status = 200, headers = headers, body = "{}" }
      end }
      local key, message, info = c:get(1)
      assert.is_nil(key)
      assert.are.equal("too_large", info.kind, message)
      assert.matches("^cometkey: GET /api/token/1: response too large", message)
      assert.are.equal(1, calls)
      c:close()
    end)
  end)
end)

-- ------------------------------------------------------------------ item 1: failures after close()

-- Every string reachable from v (keys, values, nested tables) that shows the token.
local function shows_token(v, seen)
  seen = seen or {}
  if type(v) == "string" then return v:find(TOKEN, 1, true) ~= nil end
  if type(v) ~= "table" or seen[v] then return false end
  seen[v] = true
  for k, x in pairs(v) do
    if shows_token(k, seen) or shows_token(x, seen) then return true end
  end
  return false
end

describe("a failure that completes after close()", function()
  -- A user transport that keeps every request pending until the spec completes it.
  local function pending_transport()
    local pending, calls = {}, 0
    local function transport(req, cb)
      calls = calls + 1
      assert.are.equal(TOKEN, req.headers.Authorization)
      pending[#pending + 1] = cb
    end
    return transport, pending, function() return calls end
  end

  local echoes = {
    { nil, "proxy error: Authorization: " .. TOKEN },
    { { status = 500, headers = {}, body = '{"error":{"message":"bad ' .. TOKEN .. '","type":"x"}}' } },
    { { status = 200, headers = {}, body = '{"success":false,"message":"no user for ' .. TOKEN .. '"}' } },
    { { status = 502, headers = { ["x-echo"] = TOKEN }, body = "<html>" .. TOKEN .. "</html>" } },
  }
  for n, echo in ipairs(echoes) do
    it("is still redacted (async user transport, case " .. n .. ")", function()
      local transport, pending = pending_transport()
      local c = cometkey.new { token = TOKEN, base_url = "https://api.example.invalid", transport = transport,
        retries = 0 }
      local got
      c:get(1, function(err, value, info) got = { err = err, value = value, info = info } end)
      assert.are.equal(1, #pending)
      c:close()
      pending[1](echo[2], echo[1])
      assert.is_table(got)
      assert.is_string(got.err)
      assert.is_false(shows_token(got), "the token came back after close(): " .. tostring(got.err))
      assert.matches("^cometkey: ", got.err)
      -- the last call ended: the token is wiped now
      assert.is_true(c.conf.secret:wiped())
    end)
  end

  it("sends nothing more: an update whose read completes after close() does not write", function()
    local transport, pending, calls = pending_transport()
    local c = cometkey.new { token = TOKEN, base_url = "https://api.example.invalid", transport = transport }
    local got
    c:update({ id = 1, name = "renamed" }, function(err, value, info)
      got = { err = err, value = value, info = info }
    end)
    c:close()
    assert.is_false(c.conf.secret:wiped()) -- kept for redaction while the call runs
    pending[1](nil, { status = 200, headers = {}, body = '{"success":true,"data":{"id":1,"name":"a","status":1,'
      .. '"expired_time":-1,"remain_quota":5,"unlimited_quota":false,"model_limits_enabled":false,'
      .. '"model_limits":"","allow_ips":"","group":"","cross_group_retry":false}}' })
    assert.are.equal(1, calls())
    assert.is_table(got)
    assert.matches("the client was closed", got.err)
    assert.are.equal("network", got.info.kind)
    assert.is_true(c.conf.secret:wiped())
  end)

  it("is redacted when a synchronous call yields (as on cosockets) and another thread closes", function()
    local c = cometkey.new { token = TOKEN, base_url = "https://api.example.invalid", retries = 0,
      transport = function(req) return coroutine.yield(req) end }
    local co = coroutine.create(function() return c:get(1) end)
    local ok, req = coroutine.resume(co)
    assert.is_true(ok, req)
    assert.are.equal(TOKEN, req.headers.Authorization)
    c:close() -- from "another thread"
    local r = { coroutine.resume(co, nil, "upstream said: Authorization: " .. TOKEN) }
    assert.is_true(r[1], r[2])
    assert.is_nil(r[2])
    assert.is_string(r[3])
    assert.is_false(shows_token(r), "the token came back: " .. tostring(r[3]))
    assert.is_true(c.conf.secret:wiped())
  end)

  it("a client closed with nothing running wipes the token at once", function()
    local c = cometkey.new { token = TOKEN, base_url = "https://api.example.invalid", transport = function() end }
    c:close()
    assert.is_true(c.conf.secret:wiped())
  end)
end)

-- ------------------------------------------------------------------ item 4: Retry-After and time

describe("Retry-After", function()
  local retry_after = require "cometkey.retry_after"
  local call = require "cometkey.call"
  local core = require "cometkey.core"
  local options = require "cometkey.options"

  describe("parse", function()
    local NOW = 784111777 -- Sun, 06 Nov 1994 08:49:37 GMT
    it("reads delta-seconds and the three HTTP-date forms", function()
      assert.are.equal(0, retry_after.parse("0", NOW))
      assert.are.equal(120, retry_after.parse("120", NOW))
      assert.are.equal(7, retry_after.parse(" 7 ", NOW))
      assert.are.equal(999999999, retry_after.parse("999999999", NOW))
      assert.are.equal(10, retry_after.parse("Sun, 06 Nov 1994 08:49:47 GMT", NOW))
      assert.are.equal(10, retry_after.parse("Sunday, 06-Nov-94 08:49:47 GMT", NOW))
      assert.are.equal(10, retry_after.parse("Sun Nov  6 08:49:47 1994", NOW))
      assert.are.equal(86400 * 365, retry_after.parse("Mon, 06 Nov 1995 08:49:37 GMT", NOW))
      assert.are.equal(0, retry_after.parse("Sat, 05 Nov 1994 08:49:37 GMT", NOW)) -- in the past: now
      assert.are.equal(86400, retry_after.parse("Sun, 29 Feb 2004 00:00:00 GMT", 1077926400))
    end)

    for _, bad in ipairs {
      "-1", "+5", "5.5", "1e3", "0x10", "inf", "-inf", "nan", "NaN", "1e308", "9999999999",
      "99999999999999999999999999", "5, 5", "5 5", "", " ", "soon", "Sun, 06 Nov 1994 08:49:47 UTC",
      "Mon, 06 Nov 1994 08:49:47 GMT", "Sun, 31 Nov 1994 08:49:47 GMT", "Tue, 29 Feb 2005 00:00:00 GMT",
      "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Foo 1994 08:49:47 GMT", "Sun, 6 Nov 1994 08:49:47 GMT",
      "Fri, 31 Dec 9999 23:59:59 GMT", ("9"):rep(100),
    } do
      it("ignores " .. string.format("%q", bad), function()
        assert.is_nil(retry_after.parse(bad, NOW))
      end)
    end

    it("ignores what is not a string, and a now that is not finite", function()
      for _, v in ipairs { 5, true, {} } do assert.is_nil(retry_after.parse(v, NOW)) end
      assert.is_nil(retry_after.parse("Sun, 06 Nov 1994 08:49:47 GMT", 0 / 0))
      assert.is_nil(retry_after.parse("Sun, 06 Nov 1994 08:49:47 GMT", math.huge))
    end)
  end)

  describe("in a call (virtual clock)", function()
    -- Runs one GET through call.perform with a clock that only moves when the call sleeps.
    local function run(status, value, timeout, retries)
      local conf = options.parse { token = TOKEN, base_url = "https://api.example.invalid", timeout = timeout,
        retries = retries or 1, transport = function() end }
      local client = { conf = conf, transport = { needs_token = true }, closed = false }
      local clock, waits, requests = 1000, {}, 0
      local ctx = {
        now = function() return clock end,
        sleep = function(s)
          waits[#waits + 1] = s
          assert(s == s and s >= 0 and s < math.huge, "bad sleep " .. tostring(s))
          clock = clock + s
        end,
        request = function()
          requests = requests + 1
          return { status = status, headers = { ["retry-after"] = value, ["content-type"] = "application/json" },
            body = "" }
        end,
      }
      local ok, v, message, info = pcall(call.perform, client, ctx, "get",
        core.request("get", { id = 1 }, { user_agent = "t" }))
      conf.secret:wipe()
      return { ok = ok, value = v, message = message, info = info, waits = waits, requests = requests,
        elapsed = clock - 1000 }
    end

    it("waits the whole Retry-After when it ends before the deadline (was: cut to 8 s)", function()
      local r = run(429, "120", 300)
      assert.is_true(r.ok, r.value)
      assert.are.same({ 120 }, r.waits)
      assert.are.equal(2, r.requests)
      assert.are.equal("rate_limited", r.info.kind)
    end)

    it("does not wait at all when the Retry-After ends past the deadline", function()
      local r = run(429, "120", 30, 5)
      assert.are.same({}, r.waits)
      assert.are.equal(1, r.requests)
      assert.are.equal(120, r.info.retry_after)
    end)

    it("honours an HTTP-date, and a 503's Retry-After too", function()
      local r = run(429, os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 5), 30)
      assert.are.equal(1, #r.waits)
      assert.is_true(r.waits[1] >= 4 and r.waits[1] <= 5, tostring(r.waits[1]))
      r = run(503, "3", 30)
      assert.are.same({ 3 }, r.waits)
    end)

    for _, bad in ipairs { "-1", "1e308", "inf", "nan", "0x7fffffff", "5, 5", "Thu, 21 Oct 2026 07:28:00 GMT" } do
      it("falls back to the ordinary backoff for " .. bad .. ", never raising or passing the timeout", function()
        local r = run(429, bad, 5, 10)
        assert.is_true(r.ok, r.value)
        assert.is_nil(r.info.retry_after)
        assert.is_true(r.waits[1] <= call.BACKOFF_BASE, tostring(r.waits[1]))
        assert.is_true(r.elapsed <= 5, tostring(r.elapsed))
      end)
    end
  end)

  it("cannot stall or raise update_many (a user transport answering 429 with Retry-After: 1e308)", function()
    local n = 0
    local c = cometkey.new { token = TOKEN, base_url = "https://api.example.invalid", retries = 1, timeout = 0.2,
      transport = function()
        n = n + 1
        return { status = 429, headers = { ["Retry-After"] = "1e308" }, body = "" }
      end }
    local t0 = os.time()
    local ok, results = pcall(c.update_many, c, { { id = 1, status = 2 } })
    c:close()
    assert.is_true(ok, results)
    assert.is_false(results[1].ok)
    -- a bulk item waits out 429s for at most REFUSAL_TIMEOUTS x timeout (here 2 s)
    assert.is_true(os.time() - t0 <= 4)
  end)
end)

-- ------------------------------------------------------------------ item 2: loopback and proxies

describe("a loopback base_url never goes through a proxy from the environment", function()
  local sys = require "spec.support.sys"
  local KEY = '{"success":true,"data":{"id":1,"name":"direct","status":1}}'
  local proxy, servers
  local lua = arg and arg[-1] or "lua"
  -- (under tools/asan-specs.sh the child cannot load the sanitizer build: it uses build/5.4)
  local build = not os.getenv("CK_ASAN") and os.getenv("CK_BUILD") or "build/5.4"

  before_each(function()
    proxy = raw.start("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 30)
    servers = {}
  end)
  after_each(function()
    proxy.stop()
    for _, s in ipairs(servers) do s.stop() end
  end)

  local function target(host)
    local s = raw.start(response("", KEY), 30, host)
    servers[#servers + 1] = s
    return s
  end

  -- Runs one client:get(1) in a child process whose environment names the proxy.
  local function child_get(url)
    local script = "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path; package.cpath = "
      .. string.format("%q", build .. "/?.so;") .. " .. package.cpath; "
      .. "local c = require('cometkey').new{ token = " .. string.format("%q", TOKEN) .. ", base_url = "
      .. string.format("%q", url) .. ", retries = 0, timeout = 5, allow_http = true }; "
      .. "local key, err, info = c:get(1); io.write(key and key.name or (info.kind .. ': ' .. err))"
    return sys.capture("http_proxy=" .. proxy.url .. " HTTP_PROXY=" .. proxy.url .. " all_proxy=" .. proxy.url
      .. " no_proxy= NO_PROXY= " .. sys.quote(lua) .. " -e " .. sys.quote(script) .. " 2>&1")
  end

  for _, host in ipairs { "127.0.0.2", "127.1.2.3", "127.0.0.1" } do
    it("curl transport: http://" .. host .. " is reached directly (the token never reaches the proxy)", function()
      local s = target(host)
      local out = child_get(s.url)
      assert.are.equal("direct", out)
      assert.are.equal(1, #s.log())
      assert.are.same({}, proxy.log())
    end)
  end

  it("curl transport: http://localhost is reached directly", function()
    local s = target("127.0.0.1")
    assert.are.equal("direct", child_get("http://localhost:" .. s.port))
    assert.are.same({}, proxy.log())
  end)

  it("the environment's proxy still applies to other hosts (the control: the child does read it)", function()
    local out = child_get("http://api.example.invalid")
    assert.matches("HTTP 502", out, 1, true)
    assert.are.equal(1, #proxy.log())
    assert.matches("^GET http://api.example.invalid/api/token/1 ", proxy.log()[1])
  end)

  local nvim = fake.nvim()
  local function cli_get(url)
    local config = assert(nvim._build_config({ max_body = 65536, connect_timeout = 5, verify = true },
      { method = "GET", url = url .. "/api/token/1", timeout = 5, headers = { Authorization = TOKEN } }))
    local dir = sys.temp_dir("cometkey-cli")
    sys.write_file(dir .. "/config", config)
    local out = sys.capture("http_proxy=" .. proxy.url .. " all_proxy=" .. proxy.url .. " no_proxy= NO_PROXY= "
      .. "curl -q --config - <" .. sys.quote(dir .. "/config") .. " 2>&1")
    sys.remove_dir(dir)
    return out
  end

  for _, host in ipairs { "127.0.0.2", "127.1.2.3" } do
    it("nvim transport's curl CLI: http://" .. host .. " is reached directly", function()
      local s = target(host)
      local out = cli_get(s.url)
      assert.matches("direct", out, 1, true)
      assert.are.equal(1, #s.log())
      assert.are.same({}, proxy.log())
    end)
  end

  it("nvim transport's curl CLI: other hosts keep the environment's proxy", function()
    cli_get("http://api.example.invalid")
    assert.are.equal(1, #proxy.log())
  end)

  it("counts only dotted-decimal 127.a.b.c with octets 0..255 as loopback", function()
    local options = require "cometkey.options"
    for _, h in ipairs { "127.0.0.1", "127.255.255.255", "127.0.0.0", "LOCALHOST", "[::1]" } do
      assert.is_true(options.is_loopback(h), h)
    end
    for _, h in ipairs { "127.0.0.256", "127.300.0.1", "127.0.0.01", "127.0.0.0001", "127.1", "127.0.0.1.",
      "0177.0.0.1", "localhost.", "[::ffff:127.0.0.1]" } do
      assert.is_false(options.is_loopback(h), h)
      assert.has_error(function() cometkey.new { token = TOKEN, base_url = "http://" .. h } end)
    end
  end)
end)

-- ------------------------------------------------------------------ item 6: options and bulk raises

describe("option and bulk-item checks", function()
  for _, url in ipairs {
    "https://api.example.invalid:1e+23", "https://api.example.invalid:0", "https://api.example.invalid:65536",
    "https://api.example.invalid:99999999999999999999", "https://api.example.invalid:-443",
    "https://api.example.invalid:0x1bb", "https://[::1]:70000", "http://127.0.0.1:4.5",
  } do
    it("refuses the port in " .. url .. " with a message naming it", function()
      local ok, err = pcall(cometkey.new, { token = TOKEN, base_url = url })
      assert.is_false(ok)
      assert.matches("base_url has an invalid port (an integer from 1 to 65535", err, 1, true)
    end)
  end

  for _, case in ipairs {
    { "https://user:pass@api.example.invalid", "credentials" }, { "https://@api.example.invalid", "credentials" },
    { "https://api.example.invalid/#frag", "query or fragment" },
    { "https://api.example.invalid?x=1", "query or fragment" },
    { "https://api.example.invalid/p?#", "query or fragment" },
  } do
    it("refuses " .. case[1], function()
      local ok, err = pcall(cometkey.new, { token = TOKEN, base_url = case[1] })
      assert.is_false(ok)
      assert.matches(case[2], err, 1, true)
    end)
  end

  it("accepts ports 1 and 65535", function()
    for _, url in ipairs { "https://api.example.invalid:1", "https://api.example.invalid:65535" } do
      local c = cometkey.new { token = TOKEN, base_url = url }
      assert.are.equal(url, c.conf.base_url)
      c:close()
    end
  end)

  it("names at most 20 invalid bulk items in the raise, with the count", function()
    local c = cometkey.new { token = TOKEN, base_url = "https://api.example.invalid", transport = function()
      error("nothing may be sent")
    end }
    local list = {}
    for i = 1, 100000 do list[i] = { id = i, stauts = 2 } end
    local ok, err = pcall(c.update_many, c, list)
    c:close()
    assert.is_false(ok)
    assert.matches("100000 invalid item(s): item 1: ", err, 1, true)
    assert.matches("item 20: ", err, 1, true)
    assert.is_nil(err:find("item 21: ", 1, true))
    assert.matches("... and 99980 more", err, 1, true)
    assert.is_true(#err < 8192, #err .. " bytes")
  end)
end)

-- ------------------------------------------------------------------ item 7: child processes and files

describe("the token in child processes and files (bin/cometkey under strace)", function()
  local sys = require "spec.support.sys"
  local mock = require "spec.support.mock"
  local m, dir

  lazy_setup(function()
    m = mock.start { token = TOKEN }
    dir = sys.temp_dir("cometkey-strace")
  end)
  lazy_teardown(function()
    if m then m:stop() end
    sys.remove_dir(dir)
  end)

  -- Runs the CLI under strace -f; returns its output and every exec (argv + environment)
  -- and every file opened for writing, as strace printed them.
  local function traced(env, args)
    assert(sys.execute("command -v strace >/dev/null 2>&1"), "strace is not installed (tools/deps.sh test)")
    local log = dir .. "/strace.log"
    os.remove(log)
    -- the tool's interpreter and build, as in cli_spec (CK_CLI_LUA, CK_CLI_BUILD)
    local cli_lua, cli_build = os.getenv("CK_CLI_LUA") or "lua5.4", os.getenv("CK_CLI_BUILD") or "build/5.4"
    local out = sys.capture("cd " .. sys.quote(sys.capture("pwd")) .. " && " .. env .. " CK_BUILD="
      .. sys.quote(cli_build) .. " strace -f -qq -v -s 100000 -e trace=execve,openat,creat "
      .. "-o " .. sys.quote(log) .. " " .. cli_lua .. " bin/cometkey --base-url " .. m.url .. " " .. args
      .. " </dev/null 2>&1")
    local execs, writes = {}, {}
    for line in (sys.read_file(log) or ""):gmatch("[^\n]+") do
      if line:find("execve(", 1, true) then execs[#execs + 1] = line end
      local path, flags = line:match('open[a-z]*%(.-"([^"]*)", ([%u_|]+)')
      if path and (flags:find("O_WRONLY", 1, true) or flags:find("O_RDWR", 1, true) or flags:find("O_CREAT", 1, true))
        and not line:find("= %-1") then
        writes[#writes + 1] = path
      end
    end
    return out, execs, writes
  end

  it("with --token-file: no exec'd process has it in argv or environment, no file written holds it", function()
    local file = dir .. "/token"
    sys.write_file(file, TOKEN .. "\n")
    sys.execute("chmod 600 " .. sys.quote(file))
    local out, execs, writes = traced("", "--token-file " .. sys.quote(file) .. " get 1")
    assert.matches("id", out)
    assert.is_true(#execs >= 1)
    for _, e in ipairs(execs) do assert.is_nil(e:find(TOKEN, 1, true), e) end
    for _, path in ipairs(writes) do
      local data = sys.read_file(path)
      assert.is_true(data == nil or not data:find(TOKEN, 1, true), path)
    end
  end)

  it("with COMETAPI_ACCESS_TOKEN: never in any argv; in environments only where the caller put it", function()
    local out, execs = traced("COMETAPI_ACCESS_TOKEN=" .. TOKEN, "get 1")
    assert.matches("id", out)
    for _, e in ipairs(execs) do
      local argv = e:match("^%d+%s+execve%(\"[^\"]*\", (%b[])")
      assert.is_string(argv, e)
      assert.is_nil(argv:find(TOKEN, 1, true), e)
      -- the environment is inherited unchanged: the variable itself, never a copy elsewhere
      local envs = e:match("%b[]%s*,%s*(%b[])")
      if envs then
        local _, copies = envs:gsub(TOKEN:gsub("%p", "%%%0"), "")
        local _, named = envs:gsub("COMETAPI_ACCESS_TOKEN=" .. TOKEN:gsub("%p", "%%%0"), "")
        assert.are.equal(named, copies, e)
      end
    end
  end)
end)
