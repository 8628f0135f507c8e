--- The resty (cosocket) transport proved in a real nginx: spec/support/nginx_app/
-- runs cometkey in one nginx worker against the mock server (spec/support/mock.lua).
-- The busted side only uses luasocket and lua-cjson, so this spec runs under any
-- Lua; nginx loads the C core built for LuaJIT: build/luajit (made here with
-- `make build-luajit`), or the directory in CK_LUAJIT_BUILD when that is set.
local socket = require "socket"
local cjson = require "cjson.safe"
local mock_lib = require "spec.support.mock"
local certs_lib = require "spec.support.certs"
local sys = require "spec.support.sys"

local PING_LIMIT = 0.1 -- seconds: a /ping answered later than this means the worker was blocked

-- ------------------------------------------------------------------ helpers

local read_file, shell_quote, capture = sys.read_file, sys.quote, sys.capture

-- Sends one HTTP/1.0 request on a fresh connection; returns the connection.
local function send_request(port, path)
  local c = socket.tcp()
  c:settimeout(10)
  assert(c:connect("127.0.0.1", port))
  assert(c:send("GET " .. path .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
  return c
end

-- Reads the whole answer (HTTP/1.0: nginx closes after it) -> status, body.
local function read_response(c)
  local data, err, partial = c:receive("*a")
  c:close()
  data = data or partial
  assert(data and data ~= "", "no response: " .. tostring(err))
  local status = tonumber(data:match("^HTTP/%d%.%d (%d%d%d)"))
  local body = data:match("\r\n\r\n(.*)$") or ""
  return status, body
end

local function get(port, path)
  return read_response(send_request(port, path))
end

local function get_json(port, path)
  local status, body = get(port, path)
  local value = cjson.decode(body)
  assert(type(value) == "table", "not JSON (HTTP " .. tostring(status) .. "): " .. body)
  return value, status
end

-- ------------------------------------------------------------------ the test nginx

local REPO = capture("pwd")
local APP_DIR = REPO .. "/spec/support/nginx_app"

local function start_app(values)
  local dir = sys.temp_dir("cometkey-nginx")
  values.PREFIX = dir
  values.REPO = REPO
  values.USER = sys.is_root() and "user root root;" or ""
  local template = assert(read_file(APP_DIR .. "/nginx.conf"))
  sys.write_file(dir .. "/nginx.conf", (template:gsub("{{(%u[%u_]*)}}", function(name)
    return assert(values[name], "no value for template field " .. name)
  end)))
  local app = { dir = dir, port = values.PORT, error_log = dir .. "/error.log" }
  local ok = sys.execute("nginx -p " .. shell_quote(dir) .. " -c " .. shell_quote(dir .. "/nginx.conf")
    .. " -e " .. shell_quote(app.error_log) .. " >" .. shell_quote(dir .. "/startup.log") .. " 2>&1")
  local up = ok and sys.wait_for(function() return sys.port_answers(app.port) end, 5, 0.02)
  -- The daemonized master writes its pid file after the starting command returned.
  app.pid = tonumber((read_file(dir .. "/nginx.pid") or ""):match("%d+"))
  if not up then
    local log = (read_file(dir .. "/startup.log") or "") .. (read_file(app.error_log) or "")
    if app.pid then sys.execute("kill -KILL " .. app.pid .. " 2>/dev/null") end
    sys.remove_dir(dir)
    error("the test nginx did not start:\n" .. log)
  end
  return app
end

local function stop_app(app)
  if not app then return end
  sys.stop_process(app.pid, 5)
  sys.remove_dir(app.dir)
end

local function error_log(app)
  return read_file(app.error_log) or ""
end

-- ------------------------------------------------------------------ specs

describe("resty transport in nginx #nginx #novalgrind", function()
  local certs, mock, tls_mock, app

  setup(function()
    -- nginx runs LuaJIT: the C core must be the LuaJIT build, whatever Lua runs busted.
    local build = os.getenv("CK_LUAJIT_BUILD")
    if not build or build == "" then
      build = REPO .. "/build/luajit"
      local out = capture("make --no-print-directory -s build-luajit 2>&1; echo \"exit=$?\"")
      assert(out:match("exit=0%s*$"), "make build-luajit failed:\n" .. out)
    end
    certs = certs_lib.generate()
    mock = mock_lib.start()
    tls_mock = mock_lib.start { tls = { cert = certs.server.cert, key = certs.server.key } }
    app = start_app {
      PORT = sys.free_port(), SELF_SIGNED_PORT = sys.free_port(), WATCH_PID = sys.own_pid(),
      CPATH = build .. "/?.so", TOKEN = mock.token, USER_ID = tostring(mock.user_id), MOCK_URL = mock.url,
      TLS_URL = tls_mock.url, CA = certs.ca,
      SELF_SIGNED_CERT = certs.self_signed.cert, SELF_SIGNED_KEY = certs.self_signed.key,
    }
  end)

  teardown(function()
    local pid = app and app.pid
    stop_app(app)
    if mock then mock:stop() end
    if tls_mock then tls_mock:stop() end
    if certs then certs:cleanup() end
    assert(not sys.process_alive(pid), "the test nginx is still running")
  end)

  before_each(function()
    mock:reset()
  end)

  it("does not block the worker while an update waits on the server", function()
    local before = mock:key(5)
    mock:fault { type = "delay", seconds = 1, match = "PUT /api/token/" }

    local started = socket.gettime()
    local update = send_request(app.port, "/update?id=5&name=from-nginx")
    socket.sleep(0.05) -- the GET is done and the delayed PUT is in flight
    local worst = 0
    for _ = 1, 20 do
      local t0 = socket.gettime()
      local status, body = get(app.port, "/ping")
      local took = socket.gettime() - t0
      assert.are.equal(200, status)
      assert.are.equal("pong", body)
      assert.is_true(took < PING_LIMIT, string.format("/ping took %.1f ms", took * 1000))
      if took > worst then worst = took end
      socket.sleep(0.02)
    end
    -- Every ping was answered while /update was still waiting for the server.
    local readable = socket.select({ update }, nil, 0)
    assert.are.equal(0, #readable, "/update finished before the pings did")

    local status, body = read_response(update)
    local elapsed = socket.gettime() - started
    print(string.format("\n  resty: max /ping latency during a 1 s delayed update: %.2f ms (update took %.2f s)",
      worst * 1000, elapsed))
    assert.are.equal(200, status)
    local result = assert(cjson.decode(body), body)
    assert.is_true(result.ok, body)
    assert.are.equal("resty", result.transport)
    assert.are.equal("from-nginx", result.key.name)
    assert.is_true(elapsed >= 1, "the delay fault did not apply")

    local after = mock:key(5)
    assert.are.equal("from-nginx", after.name)
    before.name = nil
    after.name = nil
    assert.are.same(before, after)
  end)

  it("keeps its connection to the server alive across updates", function()
    for i = 1, 5 do
      local result = get_json(app.port, "/update?id=1&name=keepalive-" .. i)
      assert.is_true(result.ok, result.message)
    end
    local stats = mock:stats()
    print(string.format("\n  resty: 5 updates = %d requests over %d connection(s)", stats.requests,
      stats.connections))
    assert.are.equal(10, stats.requests) -- GET + PUT per update
    assert.is_true(stats.connections <= 2, "connections: " .. stats.connections)
    assert.are.equal("keepalive-5", mock:key(1).name)
  end)

  it("resends once on a fresh connection when a pooled one closes before the reply", function()
    assert.is_true(get_json(app.port, "/get?id=1").ok) -- leaves a connection in the pool
    mock:fault { type = "reset", match = "GET /api/token/" }
    local result = get_json(app.port, "/get?id=1&retries=0")
    assert.is_true(result.ok, result.message)
    local log = mock:requests()
    assert.are.equal(3, #log)
    assert.are.equal("reset", log[2].fault)
    assert.are.equal(log[1].connection, log[2].connection) -- the reused connection...
    assert.are_not.equal(log[2].connection, log[3].connection) -- ...then a new one
  end)

  it("reads chunked responses", function()
    mock:fault { type = "chunked", chunks = 5, match = "GET /api/token/" }
    local result = get_json(app.port, "/get?id=1")
    assert.is_true(result.ok, result.message)
    assert.are.equal(mock:key(1).name, result.key.name)
    assert.are.equal("chunked", mock:requests()[1].fault)
  end)

  it("completes the callback form within the request", function()
    mock:fault { type = "delay", seconds = 0.2, match = "GET /api/token/" }
    local result = get_json(app.port, "/get?id=5&async=1")
    assert.is_true(result.ok, result.message)
    assert.are.equal("resty", result.transport)
    assert.are.equal(mock:key(5).name, result.key.name)
  end)

  it("refuses a body over max_body with kind too_large", function()
    mock:fault { type = "big", bytes = 65536, match = "GET /api/token/" }
    local result = get_json(app.port, "/get?id=1&max_body=4096&retries=0")
    assert.is_false(result.ok)
    assert.are.equal("too_large", result.kind)
    assert.matches("GET /api/token/1: response too large: body exceeds max_body %(4096 bytes%)", result.message)
    -- The connection was closed, not pooled: the next call works.
    assert.is_true(get_json(app.port, "/get?id=1").ok)
  end)

  it("gives up at the request timeout with kind timeout", function()
    mock:fault { type = "delay", seconds = 2, match = "GET /api/token/" }
    local t0 = socket.gettime()
    local result = get_json(app.port, "/get?id=1&timeout=0.3&retries=0")
    local took = socket.gettime() - t0
    assert.is_false(result.ok)
    assert.are.equal("timeout", result.kind)
    assert.is_true(result.retryable)
    assert.is_true(took < 1, string.format("took %.2f s", took))
    assert.matches("^cometkey: GET /api/token/1: timeout: ", result.message)
  end)

  it("verifies TLS against lua_ssl_trusted_certificate", function()
    local result = get_json(app.port, "/get?id=1&base=tls")
    assert.is_true(result.ok, result.message)
    assert.are.equal(tls_mock:key(1).name, result.key.name)
    -- An IP-literal base_url: nginx cannot check the name, and says so once.
    assert.matches("does not check that the certificate names 127.0.0.1", error_log(app), 1, true)
  end)

  it("refuses a self-signed certificate with kind tls", function()
    local result = get_json(app.port, "/get?id=1&base=self_signed")
    assert.is_false(result.ok)
    assert.are.equal("tls", result.kind)
    assert.is_false(result.sent)
    assert.matches("TLS error: TLS handshake failed: .*self.signed", result.message)
    assert.not_matches(mock.token, result.message, 1, true)
  end)

  it("refuses ca_file, which a cosocket cannot use, with kind tls", function()
    tls_mock:reset()
    local result = get_json(app.port, "/get?id=1&base=tls&ca_file=" .. certs.ca)
    assert.is_false(result.ok)
    assert.are.equal("tls", result.kind)
    assert.is_false(result.sent)
    assert.matches("ca_file cannot be applied to an nginx cosocket; remove it and set lua_ssl_trusted_certificate",
      result.message, 1, true)
    assert.are.equal(0, tls_mock:stats().requests)
  end)

  it("fails in log_by_lua with the way out, and works from ngx.timer.at", function()
    local status, body = get(app.port, "/log-phase?id=1")
    assert.are.equal(200, status)
    assert.are.equal("logged\n", body)
    assert.is_true(sys.wait_for(function() return error_log(app):find("cometkey-spec timer: ", 1, true) end, 5),
      "the timer did not report")
    local log = error_log(app)
    assert.matches("cometkey-spec log phase: cometkey: GET /api/token/1: network error: cosockets are not "
      .. "available in the log_by_lua* phase; run the call from ngx.timer.at(0, fn)", log, 1, true)
    assert.matches("cometkey-spec timer: updated from-timer", log, 1, true)
    assert.are.equal("from-timer", mock:key(1).name)
    assert.not_matches(mock.token, log, 1, true)
  end)

  it("ships an example configuration that nginx accepts", function()
    -- The same file with its pid path moved into the test's directory (nginx -t creates it).
    local conf, n = assert(read_file(REPO .. "/examples/openresty/nginx.conf"))
      :gsub("\npid [^;\n]+;", "\npid " .. app.dir .. "/example.pid;")
    assert.are.equal(1, n)
    sys.write_file(app.dir .. "/example.conf", conf)
    -- the resolver line run.sh derives from /etc/resolv.conf, beside the copy (as run.sh does)
    local resolver = capture("sh " .. shell_quote(REPO .. "/examples/openresty/run.sh") .. " --resolver")
    assert.matches("^resolver .+;%s*$", resolver)
    sys.write_file(app.dir .. "/resolver.conf", resolver)
    local out = capture("nginx -t -q -p " .. shell_quote(REPO) .. " -c " .. shell_quote(app.dir .. "/example.conf")
      .. " 2>&1; echo \"exit=$?\"")
    assert.matches("exit=0%s*$", out)
  end)

  describe("hostile answers (issue #15)", function()
    local raw = require "spec.support.raw_server"
    local function reply(status, headers, body)
      return "HTTP/1.1 " .. status .. " X\r\nContent-Type: application/json\r\n" .. headers
        .. "Content-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body
    end

    it("redacts a failure that completes after another light thread closed the client", function()
      local echo = '{"error":{"message":"Authorization: ' .. mock.token .. '","type":"x"}}'
      local s = raw.start(reply(500, "X-Echo: " .. mock.token .. "\r\n", echo), 30, nil, 0.5)
      local result = get_json(app.port, "/raw?id=1&port=" .. s.port .. "&close_after=0.1")
      s.stop()
      assert.is_false(result.ok)
      assert.is_string(result.message)
      assert.is_nil(result.message:find(mock.token, 1, true), result.message)
      for k, v in pairs(result.info_strings) do assert.is_nil(v:find(mock.token, 1, true), k) end
      assert.matches("<redacted>", result.message, 1, true) -- still redacted, not withheld: the call held the token
      assert.is_true(result.wiped) -- and the last call wiped it
    end)

    it("refuses 100 000 repeated header fields with too_large without blocking the worker", function()
      local s = raw.start(reply(200, ("X-A: v\r\n"):rep(100000), '{"success":true,"data":{"id":1}}'), 30)
      local result = get_json(app.port, "/raw?id=1&port=" .. s.port)
      s.stop()
      assert.is_false(result.ok)
      assert.are.equal("too_large", result.kind)
      assert.is_true(result.seconds < 0.5, result.seconds .. " s")
    end)

    it("stops reading an endless header line at the header cap (too_large, not a buffered 4 MB)", function()
      local s = raw.start("HTTP/1.1 200 OK\r\nX-Endless: " .. ("e"):rep(4 * 1024 * 1024), 30)
      local result = get_json(app.port, "/raw?id=1&port=" .. s.port)
      s.stop()
      assert.is_false(result.ok)
      assert.are.equal("too_large", result.kind, result.message)
    end)

    it("reads a 200 KB run of blanks in a header value in linear time", function()
      local s = raw.start(reply(200, "X-Sp: a" .. (" "):rep(200000) .. "b\r\n",
        '{"success":true,"data":{"id":1,"name":"n","status":1}}'), 30)
      local result = get_json(app.port, "/raw?id=1&port=" .. s.port)
      s.stop()
      assert.is_true(result.ok, result.message)
      assert.is_true(result.seconds < 0.5, result.seconds .. " s")
    end)
  end)

  it("checks an allowlist in access_by_lua", function()
    local status, body = get(app.port, "/allow-inside")
    assert.are.equal(200, status)
    assert.are.equal("allowed\n", body)
    status = get(app.port, "/allow-outside")
    assert.are.equal(403, status)
  end)
end)
