-- cometkey.errors: the kinds, labels and message format, the one curl-code
-- classification (libcurl and Neovim transports), and programmer errors as data.
local errors = require "cometkey.errors"
local cometkey = require "cometkey"

describe("cometkey.errors", function()
  it("formats a transport failure as one line with METHOD /path and the kind's label", function()
    local value, message, info = errors.failure("GET /api/token/5", { kind = "tls", text = "bad cert",
      retryable = false, sent = true, code = 60 })
    assert.is_nil(value)
    assert.are.equal("cometkey: GET /api/token/5: TLS error: bad cert", message)
    assert.are.same({ kind = "tls", retryable = false, sent = true, curl_code = 60 }, info)
    for kind, label in pairs(errors.LABELS) do
      assert.is_true(errors.is_kind[kind])
      local _, m = errors.failure("X /", { kind = kind, text = "t" })
      assert.are.equal("cometkey: X /: " .. label .. ": t", m)
    end
  end)

  it("classifies curl codes once: timeout, too_large, TLS, permanent, not sent", function()
    local cases = {
      { 28, "timeout", true }, { 63, "too_large", false }, { 60, "tls", false }, { 35, "tls", false },
      { 7, "network", true }, { 6, "network", true }, { 56, "network", true }, { 52, "network", true },
      { 3, "network", false }, { 1, "network", false }, { 47, "network", false },
    }
    for _, c in ipairs(cases) do
      local kind, retryable = errors.curl_kind(c[1])
      assert.are.equal(c[2], kind, c[1])
      assert.are.equal(c[3], retryable, c[1])
    end
    local _, message, info = errors.curl_failure("POST /api/token/", { code = 7, text = "Failed to connect",
      sent = true })
    assert.are.equal("cometkey: POST /api/token/: network error: Failed to connect", message)
    assert.is_false(info.sent) -- nothing can have reached the server
    assert.are.equal(7, info.curl_code)
    _, _, info = errors.curl_failure("GET /", { code = 56, text = "x", kind = "too_large", sent = true })
    assert.are.equal("too_large", info.kind)
    assert.is_false(info.retryable)
  end)

  it("gives validation problems back as data, and the message without a position", function()
    local client = cometkey.new { token = "t", base_url = "http://127.0.0.1:1" }
    local ok, err = pcall(function() client:update { id = 1, name = ("x"):rep(51), stauts = 2 } end)
    assert.is_false(ok)
    assert.matches("^[^:]*errors_spec.lua:%d+: cometkey.update: ", err)
    local obj = errors.raised(err)
    assert.are.equal("update", obj.api)
    assert.are.equal(obj.message, errors.clean(err))
    assert.are.equal("cometkey.update: " .. obj.rule, obj.message)
    assert.are.equal(2, #obj.problems)
    local fields = {}
    for _, p in ipairs(obj.problems) do fields[p.field] = true end
    assert.is_true(fields.name and fields.stauts)
    local caught, o2 = errors.catch(client.update, client, { id = 1, stauts = 2 })
    assert.is_false(caught)
    assert.are.equal("stauts", o2.problems[1].field)
    assert.are.equal("boom", errors.clean("boom")) -- not cometkey's: unchanged
    assert.are.same({ true, 1, 2 }, { errors.catch(function() return 1, 2 end) })
    client:close()
  end)

  it("lists every kind the codec reports", function()
    local core = require "cometkey.core"
    local seen = {}
    local bodies = { "", "<html></html>", "not json", '{"success":false,"message":"record not found"}',
      '{"success":false,"message":"Unauthorized, invalid access token"}', '{"success":false,"message":"x"}',
      '{"success":true,"data":5}' }
    for _, status in ipairs({ 200, 301, 401, 404, 429, 500, 502, 418 }) do
      for _, body in ipairs(bodies) do
        local value, _, info = core.response("get", { status = status, body = body })
        if value == nil then
          assert.is_true(errors.is_kind[info.kind], info.kind)
          seen[info.kind] = true
        end
      end
    end
    for _, kind in ipairs({ "http", "decode", "api", "auth", "not_found", "rate_limited" }) do
      assert.is_true(seen[kind], kind)
    end
  end)
end)
