-- spec/secrets_spec.lua - the access token never shows: a distinctive token is
-- driven through every failure path reachable from the public client (faults,
-- echoing servers, option and validation errors, auth failures, a closed
-- client, tostring, the debug and warn hooks, dry_run plans, update_many and
-- async results), and everything those paths produce is walked for it. Also:
-- CR/LF/NUL refused in header-bound options, http:// only to loopback, and the
-- mock's log shows the Authorization header as sent but redacted.
local cometkey = require "cometkey"
local mock = require "spec.support.mock"

local TOKEN = "tok-SECRET-4f1c9a7e2b5d8c03"
local OTHER = "tok-OTHER-77aa0c1d9e"

-- ------------------------------------------------------------------ the walker

-- Every place under `value` the token shows: strings, table keys and values,
-- metatables, tostring() of tables and userdata, function upvalues (not _ENV),
-- userdata user values. The global table and the loaded modules are not
-- entered (they hold this spec, whose source names the token). Returns a list of paths.
local function leaks(value, where)
  local found = {}
  local seen = { [_G] = true, [package] = true, [package.loaded] = true }
  local function text(s, path)
    if type(s) == "string" and s:find(TOKEN, 1, true) then found[#found + 1] = path end
  end
  local function walk(v, path, depth)
    local t = type(v)
    if t == "string" then return text(v, path) end
    if t ~= "table" and t ~= "function" and t ~= "userdata" and t ~= "thread" then return end
    if seen[v] or depth > 40 then return end
    seen[v] = true
    if t == "table" or t == "userdata" then
      local ok, s = pcall(tostring, v)
      if ok then text(s, "tostring(" .. path .. ")") end
    end
    if t == "table" then
      for k, x in pairs(v) do
        walk(k, path .. "[key " .. tostring(k) .. "]", depth + 1)
        walk(x, path .. "." .. tostring(k), depth + 1)
      end
    end
    if t == "table" or t == "userdata" then
      local mt = debug.getmetatable(v)
      if mt then walk(mt, "getmetatable(" .. path .. ")", depth + 1) end
    end
    if t == "userdata" and debug.getuservalue then
      for n = 1, 8 do
        local uv, present = debug.getuservalue(v, n)
        if present == false then break end
        walk(uv, path .. ".<uservalue " .. n .. ">", depth + 1)
        if present == nil then break end -- 5.2/5.3: one user value
      end
    end
    if t == "function" then
      for n = 1, 255 do
        local name, uv = debug.getupvalue(v, n)
        if name == nil then break end
        if name ~= "_ENV" then walk(uv, path .. ".<upvalue " .. name .. ">", depth + 1) end
      end
    end
  end
  walk(value, where or "value", 0)
  return found
end

local function assert_clean(value, where)
  local found = leaks(value, where)
  assert.are.same({}, found, "the token leaked at: " .. table.concat(found, ", "))
end

-- ------------------------------------------------------------------ the spec

describe("the access token never shows", function()
  local server, client, debug_lines, warn_lines
  local outputs -- everything a failure path handed back, walked at the end of each test

  local function new_client(opts)
    opts = opts or {}
    opts.token = opts.token or TOKEN
    opts.base_url = opts.base_url or server.url
    -- the mock requires New-Api-User, as upstream servers do (false: send none)
    if opts.user_id == false then opts.user_id = nil else opts.user_id = opts.user_id or server.user_id end
    opts.timeout = opts.timeout or 1
    opts.retries = opts.retries or 1
    opts.max_body = opts.max_body or 4096
    opts.debug = opts.debug or function(line) debug_lines[#debug_lines + 1] = line end
    opts.warn = opts.warn or function(line) warn_lines[#warn_lines + 1] = line end
    return cometkey.new(opts)
  end

  -- Runs fn(...) protected and keeps every result (and the raise message) for the walk.
  local function run(fn, ...)
    local r = { pcall(fn, ...) }
    outputs[#outputs + 1] = r
    return r
  end

  lazy_setup(function()
    server = mock.start { token = TOKEN, other_token = OTHER }
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  before_each(function()
    server:reset()
    debug_lines, warn_lines, outputs = {}, {}, {}
    client = new_client()
  end)

  after_each(function()
    assert_clean(outputs, "results")
    assert_clean(debug_lines, "debug lines")
    assert_clean(warn_lines, "warn lines")
    assert_clean(client, "client")
    client:close()
    assert_clean(client, "closed client")
  end)

  it("is sent (the server accepts it) and the mock's log shows it only as redacted", function()
    local r = run(client.get, client, 1)
    assert.is_true(r[1])
    assert.are.equal(1, r[2].id)
    local log = server:requests()
    assert.are.equal(1, #log)
    assert.is_true(log[1].auth_present)
    assert.are.equal("<redacted>", log[1].headers.authorization)
    assert_clean(log, "mock request log")
    assert.is_nil(server:error_log():find(TOKEN, 1, true))
  end)

  local faults = {
    { type = "reset", count = -1 }, { type = "truncate", count = -1 },
    { type = "slow_headers", seconds = 3, count = -1 }, { type = "slow_body", seconds = 3, count = -1 },
    { type = "nonjson" }, { type = "html", status = 500 }, { type = "html", status = 502, count = -1 },
    { type = "ratelimit", count = -1 }, { type = "ratelimit", retry_after = 60 },
    { type = "redirect" }, { type = "big", bytes = 100000 }, { type = "bad_utf8" },
    { type = "deep", depth = 40 }, { type = "dupkeys" },
    { type = "status", status = 500, body = '{"error":{"message":"boom","type":"new_api_panic"}}' },
  }
  for _, fault in ipairs(faults) do
    it("stays out of every output of the fault " .. fault.type .. (fault.status and (" " .. fault.status) or ""),
      function()
        server:fault(fault)
        local r = run(client.get, client, 1)
        assert.is_true(r[1])
        assert.is_nil(r[2])
        assert.is_string(r[3])
        assert.is_table(r[4])
        assert.is_true(#debug_lines >= 2) -- the hook saw the request and the failure
        server:clear_faults()
      end)
  end

  it("stays out when the server is down (connection refused)", function()
    local c = new_client { base_url = "http://127.0.0.1:1" }
    local r = run(c.get, c, 1)
    assert.is_nil(r[2])
    assert.are.equal("network", r[4].kind)
    assert_clean(c, "refused client")
    c:close()
  end)

  -- A server or proxy that echoes the Authorization header back must not make us print it.
  local echoes = {
    { type = "status", status = 401, body = "bad token: " .. TOKEN },
    { type = "status", status = 200, body = '{"success":false,"message":"invalid access token ' .. TOKEN .. '"}' },
    { type = "status", status = 500, body = '{"error":{"message":"' .. TOKEN .. '","code":"' .. TOKEN .. '"}}' },
    { type = "status", status = 403, body = '{"success":false,"message":"' .. ("x"):rep(490) .. TOKEN .. '"}' },
    { type = "nonjson", body = "Authorization: " .. TOKEN .. " rejected" },
    { type = "redirect", location = "https://attacker.invalid/?t=" .. TOKEN },
    { type = "html", status = 503, count = -1, body = "<html><pre>Authorization: " .. TOKEN .. "</pre></html>" },
  }
  for i, fault in ipairs(echoes) do
    it("is cut out of what an echoing server answers (case " .. i .. ", " .. fault.type .. ")", function()
      server:fault(fault)
      local r = run(client.get, client, 1)
      assert.is_nil(r[2])
      assert.is_string(r[3])
      assert.is_nil(r[3]:find("[\r\n]"))
      server:clear_faults()
    end)
  end

  it("is cut out of an echo through each(), update(), update_many() and an async callback", function()
    local echo = { type = "status", status = 200, count = -1,
      body = '{"success":false,"message":"no such user for ' .. TOKEN .. '"}' }
    server:fault(echo)
    local r = run(function()
      for _ in client:each() do end
    end)
    assert.is_false(r[1])
    assert.matches("server refused the request", r[2])
    run(client.update, client, { id = 1, name = "renamed" })
    run(client.update, client, { id = 1, status = 2 })
    run(client.delete, client, 1)
    run(client.create, client, { name = "new" })
    run(client.list, client, { page = 1 })
    run(client.search, client, { keyword = "prod" })
    local results = client:update_many({ { id = 1, status = 2 }, { id = 5, name = "x" } }, { concurrency = 2 })
    outputs[#outputs + 1] = results
    assert.is_false(results[1].ok)
    local got
    client:get(1, function(err, value, info) got = { err, value, info } end)
    outputs[#outputs + 1] = got
    assert.is_string(got[1])
    server:clear_faults()
  end)

  it("stays out of auth failures (wrong token, missing or wrong New-Api-User)", function()
    server:config { token = OTHER }
    local r = run(client.get, client, 1)
    assert.are.equal("auth", r[4].kind)
    server:config { token = TOKEN, require_user_header = true }
    local bare = new_client { user_id = false }
    r = run(bare.get, bare, 1) -- no New-Api-User
    assert.are.equal("auth", r[4].kind)
    assert_clean(bare, "client without user_id")
    bare:close()
    local c = new_client { user_id = 99 }
    r = run(c.get, c, 1)
    assert.are.equal("auth", r[4].kind)
    assert_clean(c, "client with user_id")
    c:close()
  end)

  it("stays out of option errors", function()
    local bad = {
      { base_url = "ftp://x" }, { base_url = "http://example.invalid" }, { timeout = -1 },
      { retries = 99 }, { user_id = "abc" }, { verify = "no" }, { max_body = 1 }, { transport = "carrier-pigeon" },
      { debug = "yes" }, { typo_option = 1 }, { allow_http = "yes" }, { ca_file = "" },
      { user_agent = "" }, { base_url = "https://" .. TOKEN .. "@api.cometapi.com" },
    }
    for _, extra in ipairs(bad) do
      local opts = { token = TOKEN }
      for k, v in pairs(extra) do opts[k] = v end
      local r = run(cometkey.new, opts)
      assert.is_false(r[1])
      assert.matches("^.-cometkey%.new: ", r[2])
    end
  end)

  it("is refused with CR, LF, NUL or blanks, and the raise does not quote it", function()
    local tokens = {
      TOKEN .. "\r\nX-Injected: 1", TOKEN .. "\n", "\r" .. TOKEN, TOKEN .. "\0", TOKEN .. "\0tail",
      "Bearer " .. TOKEN, TOKEN .. " ", TOKEN .. "\t", TOKEN .. "\127",
    }
    for _, bad in ipairs(tokens) do
      local r = run(cometkey.new, { token = bad, base_url = server.url })
      assert.is_false(r[1])
      assert.matches("token contains control characters or blanks", r[2])
      assert.is_nil(r[2]:find("X-Injected", 1, true))
    end
  end)

  it("refuses CR, LF and NUL in user_id and user_agent without quoting the token", function()
    local bad = {
      { user_id = "1\r\nX-Injected: 1" }, { user_id = "1\n" }, { user_id = "1\0" },
      { user_agent = "ua\r\nX-Injected: 1" }, { user_agent = "ua\n" }, { user_agent = "ua\0x" },
      { user_agent = "ua\r" }, { base_url = server.url .. "/\r\nX-Injected: 1" },
    }
    for _, extra in ipairs(bad) do
      local opts = { token = TOKEN, base_url = server.url }
      for k, v in pairs(extra) do opts[k] = v end
      local r = run(cometkey.new, opts)
      assert.is_false(r[1])
      local name = next(extra)
      assert.matches(name, r[2], 1, true)
      assert.is_nil(r[2]:find("X-Injected", 1, true))
    end
    assert.are.equal(0, #server:requests())
  end)

  it("stays out of validation errors and of raises on a closed client", function()
    run(client.update, client, { id = 1, stauts = 2 })
    run(client.update, client, { id = 1, name = ("n"):rep(51) })
    run(client.update, client, { id = 1, remain_quota = -5 })
    run(client.create, client, { name = "x", allow_ips = "not-an-ip" })
    run(client.get, client, "1")
    run(client.list, client, { page = 0 })
    run(client.update, client, { id = 1, name = "x" }, { bogus = true })
    run(cometkey.validate, { stauts = 1, name = 5 })
    for _, r in ipairs(outputs) do
      assert.is_true(r[1] == false or r[2] == nil)
    end
    client:close()
    local r = run(client.get, client, 1)
    assert.is_false(r[1])
    assert.matches("client is closed", r[2])
    assert.matches("closed", tostring(client))
  end)

  it("stays out of tostring of the client and of everything reachable from it", function()
    assert.matches("^cometkey%.client %(", tostring(client))
    assert.is_nil(tostring(client.conf.secret):find(TOKEN, 1, true))
    assert.are.equal("cometkey.secret (hidden)", tostring(client.conf.secret))
    assert.are.equal("hidden", getmetatable(client.conf.secret))
    -- the walker itself must be able to fail: a planted copy is found
    assert.are.same({ "value.x.<upvalue probe>" }, leaks({ x = (function()
      local probe = TOKEN
      return function() return probe end
    end)() }))
  end)

  it("stays out of dry_run plans", function()
    local r = run(client.update, client, { id = 5, name = "renamed", status = 2 }, { dry_run = true })
    assert.is_true(r[1])
    assert.is_true(r[2].dry_run)
    assert.is_true(#r[2].requests >= 2)
    r = run(client.update, client, { id = 5, name = "renamed" }, { dry_run = true, expect = { status = 1 } })
    assert.is_true(r[2].dry_run)
  end)

  it("stays out of the warn hook (verify = false warns once per process)", function()
    -- warn_once remembers lines process-wide; forget them so this test sees its warning.
    local auto = require "cometkey.transport.auto"
    for n = 1, 255 do
      local name, v = debug.getupvalue(auto.warn_once, n)
      if name == nil then break end
      if name == "warned" then
        for k in pairs(v) do v[k] = nil end
      end
    end
    local c = new_client { verify = false }
    assert.is_true(#warn_lines >= 1)
    assert.matches("verify = false", warn_lines[1])
    assert_clean(c, "verify=false client")
    c:close()
  end)
end)

describe("http:// is refused unless the host is loopback or allow_http = true", function()
  local function try(url, allow)
    return pcall(cometkey.new, { token = TOKEN, base_url = url, allow_http = allow })
  end

  for _, url in ipairs {
    "http://example.invalid", "http://api.cometapi.com", "http://10.0.0.1", "http://127.0.0.1.nip.io",
    "http://localhost.attacker.invalid", "http://0x7f000001", "http://2130706433", "http://127.1",
    "http://[::ffff:127.0.0.1]", "http://[::2]", "HTTP://EXAMPLE.INVALID:80",
  } do
    it("refuses " .. url, function()
      local ok, err = try(url)
      assert.is_false(ok)
      assert.matches("http://", err, 1, true)
      assert.matches("allow_http", err, 1, true)
      assert.is_nil(err:find(TOKEN, 1, true))
    end)
  end

  for _, url in ipairs {
    "http://127.0.0.1", "http://127.0.0.1:8080", "http://127.9.8.7:1", "http://localhost:9",
    "http://LOCALHOST", "http://[::1]:9", "https://example.invalid",
  } do
    it("accepts " .. url, function()
      local ok, c = try(url)
      assert.is_true(ok, c)
      c:close()
    end)
  end

  it("accepts a non-loopback http:// host with allow_http = true", function()
    local ok, c = try("http://example.invalid", true)
    assert.is_true(ok, c)
    c:close()
  end)

  it("refuses credentials, a query or a fragment that would hide the real host", function()
    for _, url in ipairs { "http://evil.invalid#@127.0.0.1", "http://127.0.0.1@evil.invalid",
      "http://evil.invalid?@127.0.0.1", "http://127.0.0.1:80@evil.invalid" } do
      local ok, err = try(url)
      assert.is_false(ok, url)
      assert.matches("base_url", err, 1, true)
    end
  end)
end)
