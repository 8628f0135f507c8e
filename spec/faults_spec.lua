-- spec/faults_spec.lua - the fault matrix: one client (cometkey.new, curl
-- transport) against the mock with injected faults. Every fault must end in its
-- documented kind with a one-line message, in bounded time, without a crash,
-- and the same client must work right afterwards.
local cometkey = require "cometkey"
local mock = require "spec.support.mock"
local socket = require "socket"

-- Under valgrind or ASan everything is slower: keep the bounds, widen the slack.
local SLOW = (os.getenv("CK_VALGRIND") or os.getenv("CK_ASAN")) and 5 or 1
local TIMEOUT = 1 * SLOW -- the client's timeout, seconds
local SLACK = 1 * SLOW   -- allowed time beyond the timeout
local RETRIES = 2
local MAX_BODY = 4096

describe("fault matrix through cometkey.new (curl transport)", function()
  local server, client, port

  local function start(p)
    server = mock.start { port = p }
    port = server.port
  end

  lazy_setup(function()
    start()
    client = cometkey.new {
      token = server.token, base_url = server.url, user_id = server.user_id, transport = "curl",
      timeout = TIMEOUT, connect_timeout = TIMEOUT, retries = RETRIES, max_body = MAX_BODY,
    }
  end)

  lazy_teardown(function()
    if client then client:close() end
    if server then server:stop() end
  end)

  before_each(function()
    server:clear_faults()
    server:clear_requests()
  end)

  -- The API requests the mock logged since the last clear.
  local function logged() return server:requests() end

  local function get1(c) return c:get(1) end

  -- Each case: fault (spec queued before the call, or a function), call (default
  -- get(1)), kind, status (HTTP or nil), pattern the message must match,
  -- requests (exact number logged) or min_requests, and check(info, log) extras.
  local cases = {
    {
      name = "connection refused (server down, port closed)",
      fault = function() server:stop() end,
      after = function() start(port) end,
      kind = "network", pattern = "^cometkey: GET /api/token/1: network error: ",
      requests = nil,
      check = function(info)
        assert.is_false(info.sent)
        assert.are.equal(RETRIES + 1, info.attempts) -- nothing was sent: retried to the budget
      end,
    },
    {
      name = "connection reset before any response byte (every attempt)",
      fault = { type = "reset", count = -1 },
      kind = "network", pattern = "^cometkey: GET /api/token/1: network error: ",
      -- libcurl replays once on a reused keep-alive connection, so the wire may see one more
      min_requests = RETRIES + 1,
      check = function(info) assert.are.equal(RETRIES + 1, info.attempts) end,
    },
    {
      name = "connection reset mid-response (headers and half the body, then closed)",
      fault = { type = "truncate", count = -1 },
      kind = "network", pattern = "^cometkey: GET /api/token/1: network error: ",
      min_requests = RETRIES + 1,
    },
    {
      name = "truncated body inside a complete HTTP response (cut JSON)",
      fault = { type = "status", status = 200, body = '{"success":true,"message":"","data":{"id":1,"na' },
      kind = "decode", status = 200, pattern = "^cometkey: GET /api/token/1: cannot decode the response: JSON ",
      requests = 1,
    },
    {
      name = "a POST whose connection is reset after the server processed it is not replayed",
      fault = { type = "reset", processed = true, count = -1, match = "POST" },
      call = function(c) return c:create { name = "fault-post", remain_quota = 1 } end,
      kind = "network", pattern = "^cometkey: POST /api/token/: network error: ",
      requests = 1,
      check = function(info)
        assert.are.equal(1, info.attempts)
        local made = 0
        for _, row in ipairs(server:keys()) do
          if row.name == "fault-post" then made = made + 1 end
        end
        assert.are.equal(1, made) -- exactly one key, never a duplicate
      end,
    },
    {
      name = "slow headers beyond the timeout",
      fault = { type = "slow_headers", seconds = TIMEOUT + 2, count = -1 },
      kind = "timeout", pattern = "^cometkey: GET /api/token/1: timeout: ",
      min_elapsed = TIMEOUT * 0.9,
    },
    {
      name = "slow body beyond the timeout",
      fault = { type = "slow_body", seconds = TIMEOUT + 2, count = -1 },
      kind = "timeout", pattern = "^cometkey: GET /api/token/1: timeout: ",
      min_elapsed = TIMEOUT * 0.9,
    },
    {
      name = "a body that drips in slowly past the timeout",
      fault = { type = "chunked", chunks = 20, seconds = TIMEOUT / 4, count = -1 },
      kind = "timeout", pattern = "^cometkey: GET /api/token/1: timeout: ",
      min_elapsed = TIMEOUT * 0.9,
    },
    {
      name = "non-JSON 200",
      fault = { type = "nonjson" },
      kind = "decode", status = 200, pattern = "^cometkey: GET /api/token/1: cannot decode the response: ",
      requests = 1,
    },
    {
      name = "empty 200",
      fault = { type = "status", status = 200, body = "" },
      kind = "decode", status = 200, pattern = "empty body", requests = 1,
    },
    {
      name = "HTML 500 (not retried)",
      fault = { type = "html", status = 500, count = -1 },
      kind = "http", status = 500,
      pattern = "^cometkey: GET /api/token/1: server error %(HTTP 500%) with an HTML body$",
      requests = 1,
    },
    {
      name = "HTML 503 on every attempt (retried to the budget)",
      fault = { type = "html", status = 503, count = -1 },
      kind = "http", status = 503, pattern = "HTTP 503 with an HTML body", requests = RETRIES + 1,
      check = function(info) assert.are.equal(RETRIES + 1, info.attempts) end,
    },
    {
      name = "429 beyond the retry budget",
      fault = { type = "ratelimit", count = -1 },
      kind = "rate_limited", status = 429, pattern = "rate limited %(HTTP 429%)", requests = RETRIES + 1,
      check = function(info)
        assert.are.equal(RETRIES + 1, info.attempts)
        assert.is_true(info.retryable)
      end,
    },
    {
      name = "429 whose Retry-After is beyond the deadline: no wait, no retry",
      fault = { type = "ratelimit", count = -1, retry_after = 3600 },
      kind = "rate_limited", status = 429, pattern = "retry after 3600 s", requests = 1,
      max_elapsed = SLACK,
    },
    {
      name = "redirect to another host on GET (never followed)",
      fault = { type = "redirect", status = 301, location = "https://attacker.invalid/api/token/1" },
      kind = "http", status = 301, pattern = "never follows redirects; the exact path is /api/token/<id>",
      requests = 1,
    },
    {
      name = "redirect on the status PUT (never followed, body not re-sent)",
      fault = { type = "redirect", status = 307, location = "http://127.0.0.1:1/api/token/" },
      call = function(c) return c:update { id = 1, status = 2 } end,
      kind = "http", status = 307,
      pattern = "^cometkey: PUT /api/token/: redirect %(HTTP 307 to .*the exact path is /api/token/ ",
      requests = 1,
      check = function() assert.are.equal(1, server:key(1).status) end,
    },
    {
      name = "oversized body (max_body)",
      fault = { type = "big", bytes = 64 * MAX_BODY, count = -1 },
      kind = "too_large", pattern = "body exceeds max_body %(" .. MAX_BODY .. " bytes%)", requests = 1,
      check = function(info) assert.is_false(info.retryable) end,
    },
    {
      name = "invalid UTF-8 in a JSON string",
      fault = { type = "bad_utf8" },
      kind = "decode", status = 200, pattern = "JSON invalid UTF%-8", requests = 1,
    },
    {
      name = "JSON nested deeper than 32 levels (33 with the envelope)",
      fault = { type = "deep", depth = 32 },
      kind = "decode", status = 200, pattern = "JSON nested deeper than 32 levels", requests = 1,
    },
    {
      name = "JSON nested exactly 32 levels decodes (then is refused as not a record)",
      fault = { type = "deep", depth = 31 },
      kind = "decode", status = 200, pattern = "not a key record", requests = 1,
      check = function(_, message) assert.is_nil(message:find("nested", 1, true)) end,
    },
    {
      name = "JSON objects nested 600 deep (under max_body)",
      fault = { type = "status", status = 200, body = ('{"a":'):rep(600) .. "1" .. ("}"):rep(600) },
      kind = "decode", status = 200, pattern = "JSON nested deeper than 32 levels", requests = 1,
    },
    {
      name = "duplicate object keys",
      fault = { type = "dupkeys" },
      kind = "decode", status = 200, pattern = 'JSON duplicate object key "success"', requests = 1,
    },
    {
      name = "success:false with control characters and a 3 KB message",
      fault = { type = "status", status = 200,
        body = '{"success":false,"message":"line1\\r\\nline2\\tx\\u001b[31m\\u2028' .. ("z"):rep(3000) .. '"}' },
      kind = "api", status = 200, pattern = "server refused the request: line1 line2 x", requests = 1,
      check = function(info, message)
        assert.is_true(#message < 1024)
        assert.is_nil(info.message:find("[%c]"))
      end,
    },
    {
      name = "a NUL inside a JSON string",
      fault = { type = "status", status = 200, body = '{"success":false,"message":"a\\u0000b"}' },
      kind = "decode", status = 200, pattern = "NUL character", requests = 1,
    },
    {
      name = "status PUT fails after the field PUT landed: the partial application is reported",
      fault = {
        { type = "delay", seconds = 0, match = "PUT /api/token/" }, -- the field PUT passes
        { type = "reset", count = -1, match = "PUT /api/token/" },  -- the enabling PUT fails
      },
      call = function(c) return c:update { id = 3, expired_time = -1, status = 1 } end,
      kind = "network", pattern = "%(after 1 of 2 requests had been applied%)$",
      min_requests = 1 + 1 + RETRIES + 1,
      check = function(info)
        assert.are.equal(1, info.applied)
        local row = server:key(3)
        assert.are.equal(-1, row.expired_time) -- the first step landed
        assert.are.equal(3, row.status)        -- the second did not
      end,
    },
  }

  for _, case in ipairs(cases) do
    it(case.name, function()
      if type(case.fault) == "function" then
        case.fault()
      elseif case.fault then
        server:fault(case.fault)
      end
      local call = case.call or get1
      local t0 = socket.gettime()
      local ok, value, message, info = pcall(call, client)
      local elapsed = socket.gettime() - t0
      if case.after then case.after() end

      assert.is_true(ok, "the call raised: " .. tostring(value))
      assert.is_nil(value)
      assert.is_string(message)
      assert.is_nil(message:find("[\r\n%z]"), "message is not one line: " .. message)
      assert.matches("^cometkey: ", message)
      assert.matches(case.pattern, message)
      assert.is_table(info)
      assert.are.equal(case.kind, info.kind, message)
      assert.are.equal(case.status, info.status)
      assert.is_number(info.attempts)
      assert.is_boolean(info.retryable)
      assert.is_true(elapsed <= (case.max_elapsed or TIMEOUT + SLACK),
        string.format("took %.2f s (timeout %g s)", elapsed, TIMEOUT))
      if case.min_elapsed then assert.is_true(elapsed >= case.min_elapsed, string.format("%.2f s", elapsed)) end

      if not case.after then
        local log = logged()
        if case.requests then assert.are.equal(case.requests, #log) end
        if case.min_requests then assert.is_true(#log >= case.min_requests, #log .. " requests") end
      end
      if case.check then case.check(info, message) end

      -- The same client works right afterwards.
      server:clear_faults()
      local key, err = client:get(1)
      assert.is_nil(err)
      assert.are.equal(1, key.id)
      assert.are.equal("production", key.name)
    end)
  end

  it("every documented failure kind of the transport shows up in the matrix", function()
    local kinds = {}
    for _, case in ipairs(cases) do kinds[case.kind] = true end
    for _, kind in ipairs { "network", "timeout", "decode", "http", "rate_limited", "too_large", "api" } do
      assert.is_true(kinds[kind], kind)
    end
  end)

  it("the matrix leaves the server log with the client's requests only (no stray connections)", function()
    server:fault { type = "reset", count = 1 }
    local key = client:get(1) -- one reset, then the retry succeeds
    assert.are.equal(1, key.id)
    local log = logged()
    assert.is_true(#log >= 2)
    assert.are.equal("reset", log[1].fault)
    assert.are.equal(200, log[#log].status)
  end)
end)
