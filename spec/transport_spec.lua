-- spec/transport_spec.lua - the transport contract: a user-supplied function as
-- `transport`, called as transport(req[, callback]) with req = {method, url,
-- headers, body, timeout}, answering res = {status, headers, body} or nil, err
-- (or calling callback(err, res)); and the automatic choice of transport.
local cometkey = require "cometkey"
local auto = require "cometkey.transport.auto"

local TOKEN = "tok-transport-spec-7c1e"

local RECORD = '{"id":5,"user_id":1,"key":"abcd**********wxyz","status":1,"name":"web",'
  .. '"created_time":1766102400,"accessed_time":1766102400,"expired_time":-1,'
  .. '"remain_quota":123456789012345,"used_quota":0,"unlimited_quota":false,'
  .. '"model_limits_enabled":false,"model_limits":"","allow_ips":null,"group":"",'
  .. '"cross_group_retry":false,"DeletedAt":null}'

local function ok_body(data) return '{"success":true,"message":"","data":' .. data .. "}" end

-- A transport that records each request and answers from a script of responses.
local function scripted(responses)
  local calls = {}
  local fn = function(req, callback)
    calls[#calls + 1] = req
    local r = responses[math.min(#calls, #responses)]
    local res, err
    if type(r) == "table" then res = r else err = r end
    if callback then return callback(err, res) end
    return res, err
  end
  return fn, calls
end

local function client_with(fn, extra)
  local opts = { token = TOKEN, base_url = "https://api.example.test", transport = fn, retries = 2 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return cometkey.new(opts)
end

describe("a function as transport", function()
  it("receives method, exact url, headers with the raw token, body and a timeout", function()
    local fn, calls = scripted { { status = 200, headers = {}, body = ok_body(RECORD) } }
    local c = client_with(fn, { user_id = 7, timeout = 5 })
    local key = assert(c:update { id = 5, status = "disabled" })
    assert.are.equal(5, key.id)
    assert.are.equal(1, #calls)
    local req = calls[1]
    assert.are.equal("PUT", req.method)
    assert.are.equal("https://api.example.test/api/token/?status_only=1", req.url)
    assert.are.equal(TOKEN, req.headers.Authorization)
    assert.are.equal("7", tostring(req.headers["New-Api-User"]))
    assert.are.equal("application/json", req.headers["Content-Type"])
    assert.are.equal('{"id":5,"status":2}', req.body)
    assert.is_true(type(req.timeout) == "number" and req.timeout > 0 and req.timeout <= 5)
    assert.is_nil(req.headers.authorization) -- exactly one spelling
  end)

  it("matches response header names case-insensitively", function()
    local fn = scripted { { status = 404, headers = { ["X-Oneapi-Request-Id"] = "req-42" }, body = "" } }
    local key, err, info = client_with(fn):get(5)
    assert.is_nil(key)
    assert.are.equal("http", info.kind) -- a bare 404: a wrong route
    assert.are.equal("req-42", info.request_id)
    assert.is_string(err)
  end)

  it("turns nil, err into kind network and retries idempotent requests", function()
    local fn, calls = scripted { nil, { status = 200, headers = {}, body = ok_body(RECORD) } }
    local key = assert(client_with(fn):get(5))
    assert.are.equal("web", key.name)
    assert.are.equal(2, #calls)
  end)

  it("retries 502 and gives up after `retries` extra attempts", function()
    local fn, calls = scripted { { status = 502, headers = {}, body = "<html>bad gateway</html>" } }
    local key, err, info = client_with(fn, { retries = 1 }):get(5)
    assert.is_nil(key)
    assert.are.equal("http", info.kind)
    assert.are.equal(502, info.status)
    assert.are.equal(2, info.attempts)
    assert.are.equal(2, #calls)
    assert.is_nil(err:find("\n"))
  end)

  it("does not retry a POST whose request may have been sent", function()
    local fn, calls = scripted { "connection reset by peer" }
    local key, _, info = client_with(fn):create { name = "x" }
    assert.is_nil(key)
    assert.are.equal("network", info.kind)
    assert.are.equal(1, #calls)
  end)

  it("treats a malformed result as a network failure, never a crash", function()
    for _, bad in ipairs { { status = "200" }, { headers = {} }, 42 } do
      local fn = function() return bad end
      local key, err, info = client_with(fn, { retries = 0 }):get(5)
      assert.is_nil(key)
      assert.are.equal("network", info.kind)
      assert.is_string(err)
    end
  end)

  it("with a callback: calls back once, err-first, whether the function calls back or returns", function()
    local fn = scripted { { status = 200, headers = {}, body = ok_body(RECORD) } }
    local got = {}
    client_with(fn):get(5, function(err, key, info) got[#got + 1] = { err, key, info } end)
    assert.are.equal(1, #got)
    assert.is_nil(got[1][1])
    assert.are.equal(5, got[1][2].id)

    local returning = function() return { status = 200, headers = {}, body = ok_body(RECORD) } end
    local n = 0
    client_with(returning):get(5, function(err, key) n = n + 1; assert.is_nil(err); assert.are.equal(5, key.id) end)
    assert.are.equal(1, n)

    local failing = scripted { { status = 200, headers = {}, body = '{"success":false,"message":"record not found"}' } }
    local e, i
    client_with(failing):get(5, function(err, _, info) e, i = err, info end)
    assert.matches("key not found", e, 1, true)
    assert.are.equal("not_found", i.kind)
  end)

  it("an asynchronous function can complete later (the host's loop)", function()
    local pending, methods = {}, {}
    local fn = function(req, callback)
      methods[#methods + 1] = req.method
      pending[#pending + 1] = function() callback(nil, { status = 200, headers = {}, body = ok_body(RECORD) }) end
    end
    local done
    client_with(fn):update({ id = 5, name = "renamed" }, function(err, key) done = { err, key } end)
    assert.is_nil(done)
    table.remove(pending, 1)() -- the GET completes; the PUT is now pending
    assert.is_nil(done)
    assert.are.equal(1, #pending)
    table.remove(pending, 1)()
    assert.is_not_nil(done)
    assert.is_nil(done[1])
    assert.are.same({ "GET", "PUT" }, methods)
  end)
end)

describe("transport choice", function()
  it("picks curl in plain Lua, and honours an explicit name or function", function()
    assert.are.equal("curl", auto.pick {})
    assert.are.equal("resty", auto.pick { transport = "resty" })
    assert.are.equal("function", auto.pick { transport = print })
  end)

  it("picks resty inside nginx (but not in init) and nvim inside Neovim", function()
    local saved_ngx, saved_vim = rawget(_G, "ngx"), rawget(_G, "vim")
    finally(function() rawset(_G, "ngx", saved_ngx); rawset(_G, "vim", saved_vim) end)
    rawset(_G, "ngx", { get_phase = function() return "content" end })
    assert.are.equal("resty", auto.pick {})
    rawset(_G, "ngx", { get_phase = function() return "init" end })
    assert.are.equal("curl", auto.pick {})
    rawset(_G, "ngx", nil)
    rawset(_G, "vim", { loop = {} })
    assert.are.equal("nvim", auto.pick {})
  end)

  it("refuses an unknown transport name", function()
    assert.has_error(function() cometkey.new { token = TOKEN, transport = "carrier-pigeon" } end)
  end)
end)
