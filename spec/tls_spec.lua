-- spec/tls_spec.lua - TLS in cometkey.curl against mock servers with certificates
-- made at test time (spec/support/certs.lua): verification is on by default,
-- ca_file trusts a private CA, the host name is checked, verify = false skips both.
local curl = require "cometkey.curl"
local mock = require "spec.support.mock"
local certs_support = require "spec.support.certs"
local core = require "cometkey.core"
local cjson = require "cjson"

describe("cometkey.curl over TLS", function()
  local certs, self_signed, trusted, wrong_host

  lazy_setup(function()
    certs = certs_support.generate()
    self_signed = mock.start { tls = certs.self_signed }
    trusted = mock.start { tls = certs.server }
    wrong_host = mock.start { tls = certs.wrong_host }
  end)

  lazy_teardown(function()
    for _, m in ipairs { self_signed, trusted, wrong_host } do m:stop() end
    certs:cleanup()
  end)

  local function client(server, opts)
    opts = opts or {}
    opts.token = core.secret(server.token)
    opts.timeout = opts.timeout or 5
    return curl.new(opts)
  end

  local function get(h, server, path)
    return h:perform { method = "GET", url = (server.url:gsub("/$", "")) .. (path or "/api/token/1"),
      headers = { ["New-Api-User"] = tostring(server.user_id) } } -- the mock requires it
  end

  local function assert_tls_failure(server, res, err, info)
    assert.is_nil(res)
    assert.are.equal("tls", info.kind)
    assert.is_false(info.retryable)
    assert.is_false(info.sent) -- the handshake failed: no byte of the request left
    assert.is_number(info.curl_code)
    assert.matches("^cometkey: GET /api/token/1: TLS error: ", err)
    assert.is_nil(err:find("[\r\n]"))
    assert.is_nil(err:find(server.token, 1, true))
  end

  local function assert_success(res, err)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    assert.is_true(cjson.decode(res.body).success)
  end

  it("serves https URLs", function()
    assert.matches("^https://127%.0%.0%.1:%d+", self_signed.url)
    assert.matches("^https://", trusted.url)
  end)

  it("verifies by default: a self-signed server is refused", function()
    local h = client(self_signed)
    local before = self_signed:stats().requests
    assert_tls_failure(self_signed, get(h, self_signed))
    assert.are.equal(before, self_signed:stats().requests)
    h:close()
  end)

  it("verifies by default: a server signed by an unknown CA is refused", function()
    local h = client(trusted)
    assert_tls_failure(trusted, get(h, trusted))
    h:close()
  end)

  it("ca_file trusts the private CA and keeps the connection alive", function()
    local h = client(trusted, { ca_file = certs.ca })
    local before = trusted:stats().connections
    for _ = 1, 5 do assert_success(get(h, trusted)) end
    assert.are.equal(1, trusted:stats().connections - before)
    assert.are.equal(1, h:stats().connects)
    h:close()
  end)

  it("ca_file trusts only that CA: the self-signed server is still refused", function()
    local h = client(self_signed, { ca_file = certs.ca })
    assert_tls_failure(self_signed, get(h, self_signed))
    h:close()
  end)

  it("checks the host name: a CA-signed certificate for another name is refused", function()
    local h = client(wrong_host, { ca_file = certs.ca })
    local res, err, info = get(h, wrong_host)
    assert_tls_failure(wrong_host, res, err, info)
    assert.matches("127.0.0.1", err, 1, true)
    h:close()
  end)

  it("accepts the certificate's DNS name (localhost)", function()
    local h = client(trusted, { ca_file = certs.ca })
    local url = trusted.url:gsub("127%.0%.0%.1", "localhost")
    assert_success(h:perform { method = "GET", url = url .. "/api/token/1", headers = { ["New-Api-User"] = "1" } })
    h:close()
  end)

  it("verify = false accepts a self-signed certificate and a wrong host name", function()
    local h = client(self_signed, { verify = false })
    assert_success(get(h, self_signed))
    h:close()
    h = client(wrong_host, { verify = false })
    assert_success(get(h, wrong_host))
    h:close()
  end)

  it("verifies in the multi interface too", function()
    local h = client(trusted, { ca_file = certs.ca })
    local base = trusted.url:gsub("/$", "")
    h:multi_add(1, { method = "GET", url = base .. "/api/token/1", headers = { ["New-Api-User"] = "1" } })
    h:multi_add(2, { method = "GET", url = (self_signed.url:gsub("/$", "")) .. "/api/token/1",
      headers = { ["New-Api-User"] = "1" } })
    local results = {}
    while h:multi_pending() > 0 do
      for _, d in ipairs(h:multi_wait(5)) do results[d.tag] = d end
    end
    assert.are.equal(200, results[1].res.status)
    assert.are.equal("tls", results[2].info.kind)
    h:close()
  end)
end)

describe("the client over TLS", function()
  local cometkey = require "cometkey"
  local auto = require "cometkey.transport.auto"
  local certs, self_signed, trusted

  lazy_setup(function()
    certs = certs_support.generate()
    self_signed = mock.start { tls = certs.self_signed }
    trusted = mock.start { tls = certs.server }
  end)

  lazy_teardown(function()
    for _, m in ipairs { self_signed, trusted } do m:stop() end
    certs:cleanup()
  end)

  -- warn_once remembers lines for the whole process; start each test afresh.
  local function forget_warnings()
    for n = 1, 20 do
      local name, v = debug.getupvalue(auto.warn_once, n)
      if name == nil then break end
      if name == "warned" then for k in pairs(v) do v[k] = nil end end
    end
  end

  it("fails with kind tls against a self-signed server, and works with ca_file", function()
    local c = cometkey.new { token = self_signed.token, base_url = self_signed.url, user_id = 1, timeout = 5,
      retries = 0 }
    local key, err, info = c:get(1)
    assert.is_nil(key)
    assert.are.equal("tls", info.kind)
    assert.matches("TLS error", err)
    c:close()
    c = cometkey.new { token = trusted.token, base_url = trusted.url, user_id = trusted.user_id,
      ca_file = certs.ca, timeout = 5 }
    assert.are.equal(1, assert(c:get(1)).id)
    c:close()
  end)

  it("verify = false connects to a self-signed server and warns once per process", function()
    forget_warnings()
    local lines = {}
    local function warn(line) lines[#lines + 1] = line end
    for _ = 1, 2 do
      local c = cometkey.new { token = self_signed.token, base_url = self_signed.url, user_id = self_signed.user_id,
        verify = false, warn = warn }
      assert.are.equal(1, assert(c:get(1)).id)
      c:close()
    end
    assert.are.equal(1, #lines)
    assert.matches("TLS verification is disabled", lines[1])
    assert.is_nil(lines[1]:find(self_signed.token, 1, true))
  end)
end)
