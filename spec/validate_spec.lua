-- core.check(fields [, mode]): the field rules, their messages and the normalised output.
local core = require "cometkey.core"

local null = core.null
local has_integers = math.type ~= nil and math.type(1) == "integer"

-- exact integer check on every Lua: a Lua integer on 5.3+, an integral number on 5.1
local function is_integer(v)
  if has_integers then return math.type(v) == "integer" end
  return type(v) == "number" and v % 1 == 0
end

-- runs check and insists that it succeeded
local function accepted(fields, mode)
  local out, problems = core.check(fields, mode)
  assert.is_nil(problems, problems and problems[1] and problems[1].message)
  assert.is_table(out)
  return out
end

-- runs check and insists on failure; returns the problems
local function refused(fields, mode)
  local out, problems = core.check(fields, mode)
  assert.is_nil(out)
  assert.is_table(problems)
  assert.is_true(#problems > 0)
  return problems
end

-- the one problem a call must report
local function one_problem(fields, mode)
  local problems = refused(fields, mode)
  assert.are.equal(1, #problems, problems[1].message .. (problems[2] and (" | " .. problems[2].message) or ""))
  return problems[1]
end

-- every problem names its field first
local function assert_named(problem)
  assert.are.equal(problem.field .. ": ", problem.message:sub(1, #problem.field + 2))
end

-- update mode needs an id; field tests add id = 1 to what they check
local function with_id(fields)
  fields.id = 1
  return fields
end

-- the nine editable fields, all valid
local function all_nine()
  return {
    name = "production", expired_time = -1, remain_quota = 100000, unlimited_quota = false,
    model_limits_enabled = false, model_limits = "", allow_ips = "", group = "",
    cross_group_retry = false,
  }
end

describe("core.check", function()
  describe("arguments", function()
    it("raises when fields is not a table", function()
      assert.has_error(function() core.check("name") end)
      assert.has_error(function() core.check(nil) end)
    end)

    it("raises on an unknown mode", function()
      assert.has_error(function() core.check({ id = 1 }, "upsert") end)
    end)

    it("defaults to update mode (id required)", function()
      local p = one_problem({ name = "x" })
      assert.are.equal("id", p.field)
      assert.matches("required", p.message)
    end)

    it("returns only the fields given, normalised", function()
      local out = accepted({ id = 7, status = "disabled" })
      assert.are.same({ id = 7, status = 2 }, out)
    end)
  end)

  describe("id", function()
    it("accepts a positive integer in update mode", function()
      local out = accepted({ id = 42 })
      assert.are.equal(42, out.id)
      assert.is_true(is_integer(out.id))
    end)

    it("accepts an integral float and returns an integer", function()
      local out = accepted({ id = 42.0 })
      assert.is_true(is_integer(out.id))
    end)

    for _, bad in ipairs({ 0, -1, 1.5, "1", true }) do
      it("refuses " .. tostring(bad) .. " (" .. type(bad) .. ")", function()
        local p = one_problem({ id = bad })
        assert.are.equal("id", p.field)
        assert.matches("^id: must be a positive integer", p.message)
      end)
    end

    it("refuses null by name", function()
      local p = one_problem({ id = null })
      assert.are.equal("id: must be a positive integer (null is not allowed)", p.message)
    end)

    it("is refused when creating (the server assigns ids)", function()
      local p = one_problem({ id = 5, name = "a" }, "create")
      assert.are.equal("id", p.field)
      assert.matches("server assigns ids", p.message, 1, true)
    end)

    it("is refused in expect mode", function()
      local p = one_problem({ id = 5 }, "expect")
      assert.are.equal("id", p.field)
    end)
  end)

  describe("name", function()
    it("accepts 50 ASCII bytes", function()
      local name = ("a"):rep(50)
      assert.are.equal(name, accepted(with_id({ name = name })).name)
    end)

    it("refuses 51 ASCII bytes with the byte count", function()
      local p = one_problem(with_id({ name = ("a"):rep(51) }))
      assert.are.equal("name: must be at most 50 bytes (got 51)", p.message)
    end)

    it("counts bytes, not characters: 16 CJK characters (48 bytes) pass, 17 (51 bytes) fail", function()
      local cjk = "\228\187\164" -- U+4EE4, 3 bytes
      assert.are.equal(48, #cjk:rep(16))
      accepted(with_id({ name = cjk:rep(16) }))
      local p = one_problem(with_id({ name = cjk:rep(17) }))
      assert.are.equal("name: must be at most 50 bytes (got 51)", p.message)
    end)

    it("refuses invalid UTF-8", function()
      local p = one_problem(with_id({ name = "ok\255" }))
      assert.are.equal("name: must be valid UTF-8 (invalid byte at offset 2)", p.message)
      one_problem(with_id({ name = "\237\160\128" })) -- a UTF-16 surrogate
      one_problem(with_id({ name = "\192\175" }))     -- an overlong "/"
    end)

    it("refuses NUL bytes (the wire JSON cannot carry them)", function()
      assert.are.equal("name: must not contain NUL bytes", one_problem(with_id({ name = "a\0b" })).message)
    end)

    it("refuses control characters, as in group (a name is shown on terminals)", function()
      assert.are.equal("name: must not contain control characters (byte 0x1b at offset 2)",
        one_problem(with_id({ name = "ab\27]0;x" })).message)
      for _, bad in ipairs { "a\nb", "tab\t", "del\127" } do one_problem(with_id({ name = bad })) end
      accepted(with_id({ name = "caf\195\169 ok" }))
    end)

    it("must be a string", function()
      local p = one_problem(with_id({ name = 12 }))
      assert.are.equal("name: must be a string (got 12)", p.message)
      p = one_problem(with_id({ name = null }))
      assert.are.equal("name: must be a string (null is not allowed)", p.message)
    end)

    it("may be empty in update mode but not when creating", function()
      assert.are.equal("", accepted(with_id({ name = "" })).name)
      local p = one_problem({ name = "" }, "create")
      assert.are.equal("name", p.field)
      assert.matches("must not be empty", p.message)
    end)

    it("is required when creating", function()
      local p = one_problem({ remain_quota = 5 }, "create")
      assert.are.equal("name", p.field)
      assert.matches("^name: required", p.message)
    end)
  end)

  describe("status", function()
    local names = { enabled = 1, disabled = 2, expired = 3, exhausted = 4 }
    for word, n in pairs(names) do
      it("maps " .. word .. " to " .. n, function()
        local out = accepted(with_id({ status = word }))
        assert.are.equal(n, out.status)
        assert.is_true(is_integer(out.status))
      end)
    end

    it("accepts 1 to 4", function()
      for n = 1, 4 do assert.are.equal(n, accepted(with_id({ status = n })).status) end
    end)

    for _, bad in ipairs({ 0, 5, 1.5, "Enabled", "enable", true, "1" }) do
      it("refuses " .. tostring(bad), function()
        local p = one_problem(with_id({ status = bad }))
        assert.are.equal("status", p.field)
        assert.matches("^status: must be 1%-4 or one of", p.message)
      end)
    end

    it("refuses null", function()
      assert.matches("null is not allowed", one_problem(with_id({ status = null })).message)
    end)
  end)

  describe("expired_time", function()
    it("accepts -1 (never) and a positive Unix time", function()
      assert.are.equal(-1, accepted(with_id({ expired_time = -1 })).expired_time)
      assert.are.equal(1798761600, accepted(with_id({ expired_time = 1798761600 })).expired_time)
      assert.are.equal(1, accepted(with_id({ expired_time = 1 })).expired_time)
    end)

    it("refuses 0 and says why (the zero-value trap)", function()
      local p = one_problem(with_id({ expired_time = 0 }))
      assert.are.equal("expired_time", p.field)
      assert.matches("already expired", p.message, 1, true)
      assert.matches("-1", p.message, 1, true)
    end)

    it("refuses -2", function()
      local p = one_problem(with_id({ expired_time = -2 }))
      assert.are.equal("expired_time: must be -1 (never) or a positive Unix time in seconds (got -2)", p.message)
    end)

    it("refuses a fraction, a string and a boolean", function()
      assert.matches("got 1.5", one_problem(with_id({ expired_time = 1.5 })).message, 1, true)
      assert.matches("^expired_time: must be an integer", one_problem(with_id({ expired_time = "-1" })).message)
      assert.matches("got true", one_problem(with_id({ expired_time = true })).message, 1, true)
    end)

    it("allows any stored integer in expect mode", function()
      assert.are.equal(0, accepted({ expired_time = 0 }, "expect").expired_time)
    end)
  end)

  describe("remain_quota", function()
    it("accepts 0 and 500000000000000", function()
      assert.are.equal(0, accepted(with_id({ remain_quota = 0 })).remain_quota)
      local out = accepted(with_id({ remain_quota = 500000000000000 }))
      assert.are.equal(500000000000000, out.remain_quota)
      assert.is_true(is_integer(out.remain_quota))
    end)

    it("refuses 500000000000001 and -1 on a limited key", function()
      local p = one_problem(with_id({ remain_quota = 500000000000001 }))
      assert.are.equal("remain_quota: must be between 0 and 500000000000000 unless unlimited_quota is true "
        .. "(got 500000000000001)", p.message)
      p = one_problem(with_id({ remain_quota = -1, unlimited_quota = false }))
      assert.matches("(got -1)", p.message, 1, true)
    end)

    it("accepts any integer when unlimited_quota is true", function()
      local out = accepted(with_id({ remain_quota = -1, unlimited_quota = true }))
      assert.are.equal(-1, out.remain_quota)
      out = accepted(with_id({ remain_quota = 500000000000001, unlimited_quota = true }))
      assert.are.equal(500000000000001, out.remain_quota)
    end)

    it("keeps the range when unlimited_quota is truthy but not the boolean true", function()
      local problems = refused(with_id({ remain_quota = -1, unlimited_quota = 1 }))
      assert.are.equal(2, #problems)
      assert.are.equal("remain_quota", problems[1].field)
      assert.are.equal("unlimited_quota", problems[2].field)
    end)

    it("refuses fractions and strings", function()
      assert.are.equal("remain_quota: must be an integer (got 1.5)",
        one_problem(with_id({ remain_quota = 1.5 })).message)
      assert.are.equal('remain_quota: must be an integer (got "100")',
        one_problem(with_id({ remain_quota = "100" })).message)
    end)

    it("keeps a 15-digit quota exact", function()
      local out = accepted(with_id({ remain_quota = 123456789012345 }))
      assert.are.equal(123456789012345, out.remain_quota)
      assert.are.equal("123456789012345", string.format("%d", out.remain_quota))
    end)

    if has_integers then
      it("keeps 2^53 + 1 exact on an unlimited key (Lua integers)", function()
        local v = math.tointeger(9007199254740993)
        local out = accepted(with_id({ remain_quota = v, unlimited_quota = true }))
        assert.are.equal(v, out.remain_quota)
        assert.is_true(math.type(out.remain_quota) == "integer")
      end)

      it("refuses a float beyond 2^53 (it is not exact)", function()
        local p = one_problem(with_id({ remain_quota = 2.0 ^ 60, unlimited_quota = true }))
        assert.matches("beyond 2^53", p.message, 1, true)
      end)
    else
      it("refuses numbers beyond 2^53 on Lua 5.1 / LuaJIT instead of rounding", function()
        local p = one_problem(with_id({ remain_quota = 2 ^ 53 + 2, unlimited_quota = true }))
        assert.are.equal("remain_quota", p.field)
        assert.matches("beyond 2^53", p.message, 1, true)
      end)
    end
  end)

  describe("booleans", function()
    for _, field in ipairs({ "unlimited_quota", "model_limits_enabled", "cross_group_retry" }) do
      it(field .. " accepts true and false", function()
        assert.is_true(accepted(with_id({ [field] = true, model_limits = "m" }))[field])
        assert.is_false(accepted(with_id({ [field] = false }))[field])
      end)

      for _, bad in ipairs({ 1, 0, "true", "false" }) do
        it(field .. " refuses " .. string.format("%q", bad), function()
          local p = one_problem(with_id({ [field] = bad }))
          assert.are.equal(field, p.field)
          assert.matches("^" .. field .. ": must be a boolean %(got ", p.message)
        end)
      end

      it(field .. " refuses null", function()
        assert.are.equal(field .. ": must be a boolean (null is not allowed)",
          one_problem(with_id({ [field] = null })).message)
      end)
    end
  end)

  describe("model_limits", function()
    it("trims, removes duplicates (keeping the first) and joins with commas", function()
      assert.are.equal("gpt-4o,claude-x",
        accepted(with_id({ model_limits = " gpt-4o ,claude-x,\tgpt-4o " })).model_limits)
      assert.are.equal("b,a", accepted(with_id({ model_limits = { " b", "a", "b" } })).model_limits)
    end)

    it("normalises empty forms to the empty string", function()
      assert.are.equal("", accepted(with_id({ model_limits = "" })).model_limits)
      assert.are.equal("", accepted(with_id({ model_limits = null })).model_limits)
      assert.are.equal("", accepted(with_id({ model_limits = {} })).model_limits)
    end)

    it("refuses an empty entry in a string", function()
      local p = one_problem(with_id({ model_limits = "a,,b" }))
      assert.are.equal("model_limits", p.field)
      assert.matches("entry 2 is empty", p.message, 1, true)
      one_problem(with_id({ model_limits = "a," }))
    end)

    it("refuses blanks inside an entry", function()
      local p = one_problem(with_id({ model_limits = "gpt 4o" }))
      assert.matches('entry 1 ("gpt 4o") must not contain blanks', p.message, 1, true)
      one_problem(with_id({ model_limits = { "a\nb" } }))
    end)

    it("refuses a comma inside an array item", function()
      local p = one_problem(with_id({ model_limits = { "a", "b,c" } }))
      assert.matches('entry 2 ("b,c") must not contain commas', p.message, 1, true)
    end)

    it("refuses empty and non-string array items", function()
      assert.matches("entry 1 is empty", one_problem(with_id({ model_limits = { "  " } })).message, 1, true)
      assert.matches("entry 2 must be a string (got 5)",
        one_problem(with_id({ model_limits = { "a", 5 } })).message, 1, true)
    end)

    it("refuses tables that are not arrays and other types", function()
      one_problem(with_id({ model_limits = { a = "x" } }))
      one_problem(with_id({ model_limits = 5 }))
      one_problem(with_id({ model_limits = true }))
    end)

    it("reports every bad entry", function()
      local problems = refused(with_id({ model_limits = "a b,,c d" }))
      assert.are.equal(3, #problems)
    end)

    it("refuses model_limits_enabled = true with no models (it would block every model)", function()
      for _, empty in ipairs({ "", {}, null }) do
        local p = one_problem(with_id({ model_limits_enabled = true, model_limits = empty }))
        assert.are.equal("model_limits", p.field)
        assert.matches("block every model", p.message, 1, true)
      end
    end)

    it("leaves the enabled-without-models case to the facade when only one is given", function()
      accepted(with_id({ model_limits_enabled = true }))
      accepted(with_id({ model_limits = "" }))
      accepted(with_id({ model_limits_enabled = false, model_limits = "" }))
    end)
  end)

  describe("allow_ips", function()
    it("normalises through the allowlist parser and accepts the empty forms", function()
      assert.are.equal("", accepted(with_id({ allow_ips = "" })).allow_ips)
      assert.are.equal("", accepted(with_id({ allow_ips = null })).allow_ips)
      assert.are.equal("1.2.3.4", accepted(with_id({ allow_ips = "1.2.3.4" })).allow_ips)
    end)

    it("reports the allowlist's entry message under allow_ips", function()
      local p = one_problem(with_id({ allow_ips = "10.0.0.1\n1.2.3" }))
      assert.are.equal("allow_ips", p.field)
      assert.matches('^allow_ips: entry 2 %("1%.2%.3"%)', p.message)
    end)

    it("refuses other types", function()
      assert.matches("^allow_ips: must be a string", one_problem(with_id({ allow_ips = 5 })).message)
    end)
  end)

  describe("group", function()
    it("accepts a string and maps null to the empty string", function()
      assert.are.equal("vip", accepted(with_id({ group = "vip" })).group)
      assert.are.equal("", accepted(with_id({ group = null })).group)
    end)

    it("refuses control characters and non-strings", function()
      assert.matches("control characters", one_problem(with_id({ group = "a\nb" })).message, 1, true)
      assert.matches("control characters", one_problem(with_id({ group = "a\0" })).message, 1, true)
      assert.are.equal("group: must be a string (got false)", one_problem(with_id({ group = false })).message)
    end)
  end)

  describe("unknown fields", function()
    it("suggests the closest known name", function()
      local p = one_problem(with_id({ stauts = 1 }))
      assert.are.equal("stauts", p.field)
      assert.are.equal("stauts: unknown field (did you mean status?)", p.message)
      assert.are.equal("allow_ip: unknown field (did you mean allow_ips?)",
        one_problem(with_id({ allow_ip = "x" })).message)
      assert.are.equal("Name: unknown field (did you mean name?)", one_problem(with_id({ Name = "x" })).message)
    end)

    it("suggests nothing when no name is close", function()
      assert.are.equal("colour: unknown field", one_problem(with_id({ colour = "red" })).message)
      assert.are.equal("x: unknown field", one_problem(with_id({ x = 1 })).message)
    end)

    it("reports non-string keys", function()
      local p = one_problem(with_id({ [1] = "a" }))
      assert.are.equal("[1]: unknown field (field names are strings)", p.message)
    end)

    it("sorts unknown fields after the known ones", function()
      local problems = refused({ zeta = 1, alpha = 2, id = 0, name = 5 })
      local order = {}
      for i, p in ipairs(problems) do order[i] = p.field end
      assert.are.same({ "id", "name", "alpha", "zeta" }, order)
    end)

    it("keeps messages on one line for odd keys", function()
      local p = one_problem(with_id({ ["bad\nkey"] = 1 }))
      assert.are.equal("bad\nkey", p.field)
      assert.is_nil(p.message:find("\n", 1, true))
    end)
  end)

  describe("all problems", function()
    it("reports every problem in the canonical field order", function()
      local problems = refused({
        id = -3, name = ("x"):rep(51), status = "on", expired_time = 0, remain_quota = -1,
        unlimited_quota = "yes", model_limits_enabled = 1, model_limits = "a b", allow_ips = 7,
        group = "a\tb", cross_group_retry = 0, stauts = 1,
      })
      local order = {}
      for i, p in ipairs(problems) do
        order[i] = p.field
        assert_named(p)
      end
      assert.are.same({ "id", "name", "status", "expired_time", "remain_quota", "unlimited_quota",
        "model_limits_enabled", "model_limits", "allow_ips", "group", "cross_group_retry", "stauts" }, order)
    end)

    it("is deterministic", function()
      local fields = { b = 1, a = 2, c = 3, d = 4, id = 1 }
      local first = refused(fields)
      for _ = 1, 5 do assert.are.same(first, refused(fields)) end
    end)
  end)

  describe("modes", function()
    it("create: no id, name required, other fields optional", function()
      local out = accepted({ name = "ci" }, "create")
      assert.are.same({ name = "ci" }, out)
    end)

    it("replace: id and all nine editable fields are required, status optional", function()
      local fields = all_nine()
      fields.id = 9
      local out = accepted(fields, "replace")
      assert.are.equal(9, out.id)
      assert.is_nil(out.status)
      fields.status = "enabled"
      assert.are.equal(1, accepted(fields, "replace").status)
    end)

    it("replace: names each missing field", function()
      local problems = refused({ id = 9, name = "only" }, "replace")
      assert.are.equal(8, #problems)
      for _, p in ipairs(problems) do
        assert.matches("required in replace mode", p.message, 1, true)
        assert_named(p)
      end
      assert.are.equal("expired_time", problems[1].field)
      assert.are.equal("cross_group_retry", problems[8].field)
    end)

    it("replace: id is required", function()
      local p = one_problem(all_nine(), "replace")
      assert.are.equal("id", p.field)
    end)

    it("expect: any subset, no id, same type rules", function()
      assert.are.same({ status = 3 }, accepted({ status = "expired" }, "expect"))
      assert.are.same({}, accepted({}, "expect"))
      one_problem({ status = "nope" }, "expect")
      -- a stored quota can be negative after usage: comparable in expect
      assert.are.equal(-20, accepted({ remain_quota = -20 }, "expect").remain_quota)
    end)
  end)
end)
