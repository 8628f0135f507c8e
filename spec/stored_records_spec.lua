-- spec/stored_records_spec.lua - hostile stored records (issue 15, item 3): a record whose
-- editable field has an unexpected type is world data, never a programmer error: update
-- returns nil, message, info (kind decode, naming the field) and writes nothing.
local helpers = require "spec.support.helpers"

local env = helpers.use_mock_env()
local routes = helpers.routes

-- A GET of key 1 answered with a crafted record (data merged over a normal record).
local function crafted(data)
  local record = {
    id = 1, user_id = 1, key = "sk-abcd**********wxyz", status = 1, name = "k", created_time = 1700000000,
    accessed_time = 0, expired_time = -1, remain_quota = 10, unlimited_quota = false,
    model_limits_enabled = false, model_limits = "", allow_ips = "", group = "", cross_group_retry = false,
    used_quota = 0,
  }
  for k, v in pairs(data) do record[k] = v end
  local json = require("cjson").encode({ success = true, message = "", data = record })
  env.m:fault { type = "status", status = 200, body = json, match = "GET /api/token/1" }
end

describe("update of a hostile stored record", function()
  local CASES = {
    { "a float quota", { remain_quota = 1.5 }, "remain_quota" },
    { "group = true", { group = true }, "group" },
    { "allow_ips = 5", { allow_ips = 5 }, "allow_ips" },
    { "a string id", { id = "1" }, "id" },
    { "a string expiry", { expired_time = "2030-01-01" }, "expired_time" },
    { "an object name", { name = { x = 1 } }, "name" },
  }
  for _, case in ipairs(CASES) do
    it(case[1] .. ": nil, message, info (decode, " .. case[3] .. "), nothing written", function()
      local before = env.m:keys()
      crafted(case[2])
      local c = env.client { retries = 0 }
      local ok, message, info = c:update { id = 1, model_limits = "gpt-4o" }
      assert.is_nil(ok)
      assert.is_true(helpers.one_line(message), message)
      assert.are.equal("decode", info.kind)
      assert.are.equal(case[3], info.field)
      assert.is_truthy(message:find(case[3], 1, true), message)
      assert.is_nil(message:find("bad argument", 1, true), message)
      assert.are.same({ "GET /api/token/1" }, routes(env.m))
      assert.are.same(before, env.m:keys())
    end)
  end

  it("the same through update_many and a callback", function()
    crafted { group = true }
    local c = env.client { retries = 0 }
    local results = c:update_many { { id = 1, name = "x" } }
    assert.is_false(results[1].ok)
    assert.are.equal("decode", results[1].info.kind)
    assert.are.equal("group", results[1].info.field)
    crafted { remain_quota = 2.5 }
    local got
    c:update({ id = 1, name = "y" }, function(err, key, info) got = { err, key, info } end)
    assert.is_nil(got[2])
    assert.are.equal("remain_quota", got[3].field)
    assert.are.same({ "GET /api/token/1", "GET /api/token/1" }, routes(env.m))
  end)
end)
