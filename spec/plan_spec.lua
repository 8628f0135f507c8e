-- spec/plan_spec.lua - the pure update planner (cometkey.plan.update): which requests an
-- update sends and in which order, as data; no server, no client, no I/O.
local plan = require "cometkey.plan"
local core = require "cometkey.core"

local null = core.null

-- A stored record of status s that can be echoed unchanged.
local function stored(s, extra)
  local r = {
    id = 7, name = "k", status = s, expired_time = -1, remain_quota = 100, unlimited_quota = false,
    model_limits_enabled = false, model_limits = "", allow_ips = null, group = "", cross_group_retry = false,
  }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

-- "op:status op:status ...": each request's op and the status its body carries ("-": none).
local function shape(reqs)
  local out = {}
  for i, r in ipairs(reqs) do out[i] = r.op .. ":" .. tostring(r.body.status or "-") end
  return table.concat(out, " ")
end

-- stored status x target status (nil: unchanged) x fields named -> requests in order.
-- Enabling goes after the full PUT (new expiry/quota first); disabling/expiring goes
-- before it (cut access first); the full PUT echoes the stored (or new) status.
local ORDER = {
  { 1, nil, false, "" },
  { 1, nil, true, "update:1" },
  { 1, 1, false, "status:1" },
  { 1, 1, true, "update:1" },
  { 1, 2, false, "status:2" },
  { 1, 2, true, "status:2 update:2" },
  { 1, 3, false, "status:3" },
  { 1, 3, true, "status:3 update:3" },
  { 1, 4, false, "status:4" },
  { 1, 4, true, "status:4 update:4" },
  { 2, nil, false, "" },
  { 2, nil, true, "update:2" },
  { 2, 1, false, "status:1" },
  { 2, 1, true, "update:2 status:1" },
  { 2, 2, false, "status:2" },
  { 2, 2, true, "update:2" },
  { 2, 3, false, "status:3" },
  { 2, 3, true, "status:3 update:3" },
  { 2, 4, false, "status:4" },
  { 2, 4, true, "status:4 update:4" },
  { 3, nil, false, "" },
  { 3, nil, true, "update:3" },
  { 3, 1, false, "status:1" },
  { 3, 1, true, "update:3 status:1" },
  { 3, 2, false, "status:2" },
  { 3, 2, true, "status:2 update:2" },
  { 3, 3, false, "status:3" },
  { 3, 3, true, "update:3" },
  { 3, 4, false, "status:4" },
  { 3, 4, true, "status:4 update:4" },
  { 4, nil, false, "" },
  { 4, nil, true, "update:4" },
  { 4, 1, false, "status:1" },
  { 4, 1, true, "update:4 status:1" },
  { 4, 2, false, "status:2" },
  { 4, 2, true, "status:2 update:2" },
  { 4, 3, false, "status:3" },
  { 4, 3, true, "status:3 update:3" },
  { 4, 4, false, "status:4" },
  { 4, 4, true, "update:4" },
}

-- No read: status only, and replace (all nine fields given) with or without a status.
local NO_READ = {
  { nil, false, nil }, -- nothing to plan
  { 1, false, "status:1" },
  { 2, false, "status:2" },
  { 4, false, "status:4" },
  { nil, true, "update:-" },
  { 1, true, "update:- status:1" },
  { 2, true, "status:2 update:2" },
  { 3, true, "status:3 update:3" },
}

local FULL = {
  name = "r", expired_time = -1, remain_quota = 5, unlimited_quota = false, model_limits_enabled = false,
  model_limits = "", allow_ips = "", group = "", cross_group_retry = false,
}

describe("plan.update ordering", function()
  for _, row in ipairs(ORDER) do
    local s, t, named, want = row[1], row[2], row[3], row[4]
    it(("stored %d, target %s, %s"):format(s, tostring(t), named and "fields" or "no fields"), function()
      local fields = { id = 7, status = t, name = named and "new" or nil }
      local reqs = assert(plan.update(stored(s), fields))
      assert.are.equal(want, shape(reqs))
      for _, r in ipairs(reqs) do
        assert.are.equal(7, r.body.id)
        if r.op == "status" then
          assert.are.same({ id = 7, status = t }, r.body)
        else
          assert.are.equal("new", r.body.name)
          for _, f in ipairs(plan.EDITABLE) do
            assert.is_not_nil(r.body[f], f) -- a full PUT carries all nine
          end
          assert.are.equal(100, r.body.remain_quota) -- echoed, not reset
          assert.are.equal(null, r.body.allow_ips)   -- a stored NULL stays NULL
        end
      end
    end)
  end

  for _, row in ipairs(NO_READ) do
    local t, replace, want = row[1], row[2], row[3]
    it(("no stored record: target %s, %s"):format(tostring(t), replace and "replace" or "status only"), function()
      local fields = { id = 7, status = t }
      if replace then for k, v in pairs(FULL) do fields[k] = v end end
      local reqs = assert(plan.update(nil, fields, { replace = replace }))
      assert.are.equal(want or "", shape(reqs))
      if replace then
        local put
        for _, r in ipairs(reqs) do if r.op == "update" then put = r.body end end
        for k, v in pairs(FULL) do assert.are.equal(v, put[k], k) end
      end
    end)
  end

  it("replace with a stored record orders the status change by the stored status", function()
    local fields = { id = 7, status = 1 }
    for k, v in pairs(FULL) do fields[k] = v end
    assert.are.equal("update:3 status:1", shape(assert(plan.update(stored(3), fields, { replace = true }))))
    fields.status = 2
    assert.are.equal("status:2 update:2", shape(assert(plan.update(stored(1), fields, { replace = true }))))
  end)

  it("leaves out a stored status outside 1..4 from the full PUT", function()
    assert.are.equal("update:-", shape(assert(plan.update(stored(9), { id = 7, name = "x" }))))
  end)

  it("raises when a field update is planned without the stored record (programmer error)", function()
    assert.has_error(function() plan.update(nil, { id = 7, name = "x" }) end)
  end)
end)

describe("plan.update conflicts and hostile records", function()
  local CONFLICT = {
    { "negative quota on a limited key", { remain_quota = -5 }, { name = "x" }, "conflict", "remain_quota" },
    { "quota above the maximum", { remain_quota = plan.MAX_QUOTA + 1 }, { name = "x" }, "conflict", "remain_quota" },
    { "models enabled with none", { model_limits_enabled = false }, { model_limits_enabled = true }, "conflict",
      "model_limits_enabled" },
    { "stored name over 50 bytes", { name = ("n"):rep(51) }, { group = "g" }, "conflict", "name" },
    { "float quota", { remain_quota = 1.5 }, { name = "x" }, "decode", "remain_quota" },
    { "boolean group", { group = true }, { name = "x" }, "decode", "group" },
    { "numeric allow_ips", { allow_ips = 5 }, { name = "x" }, "decode", "allow_ips" },
    { "string expiry", { expired_time = "soon" }, { name = "x" }, "decode", "expired_time" },
    { "string unlimited flag", { unlimited_quota = "yes" }, { name = "x" }, "decode", "unlimited_quota" },
    { "table name", { name = {} }, { group = "x" }, "decode", "name" },
    { "string id", { id = "7" }, { name = "x" }, "decode", "id" },
    { "string id, status only with a read", { id = "7" }, { status = 2 }, "decode", "id" },
    { "float id", { id = 7.5 }, { name = "x" }, "decode", "id" },
  }
  for _, row in ipairs(CONFLICT) do
    it(row[1] .. ": " .. row[4] .. " naming " .. row[5], function()
      local fields = { id = 7 }
      for k, v in pairs(row[3]) do fields[k] = v end
      local reqs, message, info = plan.update(stored(2, row[2]), fields)
      assert.is_nil(reqs)
      assert.are.equal(row[4], info.kind)
      assert.are.equal(row[5], info.field)
      assert.is_false(info.retryable)
      assert.is_truthy(message:find(row[5], 1, true), message)
      assert.is_nil(message:find("[\r\n]"))
    end)
  end

  it("setting the field fixes a stored value that cannot be echoed", function()
    assert(plan.update(stored(2, { remain_quota = -5 }), { id = 7, remain_quota = 1 }))
    assert(plan.update(stored(2, { group = true }), { id = 7, group = "g" }))
    assert(plan.update(stored(2, { remain_quota = -5 }), { id = 7, unlimited_quota = true }))
  end)

  it("is pure: the stored record and the fields are not changed", function()
    local s, f = stored(3), { id = 7, status = 1, name = "x" }
    local s_copy, f_copy = stored(3), { id = 7, status = 1, name = "x" }
    plan.update(s, f)
    assert.are.same(s_copy, s)
    assert.are.same(f_copy, f)
  end)
end)
