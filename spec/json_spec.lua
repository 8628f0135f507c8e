-- spec/json_spec.lua - the wire JSON codec of cometkey.core (src/ck_json.c):
-- json_decode / json_encode on libjansson with exact 64-bit integers.
-- Runs on Lua 5.4, 5.1 and LuaJIT; integer semantics branch on math.type.

local core = require "cometkey.core"

local decode, encode = core.json_decode, core.json_encode
local has_integers = math.type ~= nil -- Lua 5.3+: integers are a subtype of number
local null = decode("null")

-- Calls fn(input) and asserts it failed: nil plus a one-line message that starts
-- with "JSON " and contains every given plain fragment; returns the message.
local function fails(fn, input, ...) -- not "arg": Lua 5.1 shadows it in vararg functions
  local v, msg = fn(input)
  assert.is_nil(v)
  assert.is_string(msg)
  assert.is_truthy(msg:find("^JSON "), "message should start with 'JSON ': " .. msg)
  assert.is_falsy(msg:find("%c"), "message should be one line: " .. msg)
  for i = 1, select("#", ...) do
    local fragment = select(i, ...)
    assert.is_truthy(msg:find(fragment, 1, true), ("%q not in %q"):format(fragment, msg))
  end
  return msg
end

local function nested_arrays(levels)
  return ("["):rep(levels) .. "1" .. ("]"):rep(levels)
end

local function nested_objects(levels)
  return ('{"a":'):rep(levels) .. "1" .. ("}"):rep(levels)
end

local function nested_tables(levels)
  local t = { 1 }
  for _ = 2, levels do
    t = { t }
  end
  return t
end

describe("json_decode", function()
  it("decodes objects, arrays, strings, booleans and numbers", function()
    local v = decode('{"s":"x\\n\\u00e9\\ud83d\\ude00","t":true,"f":false,"a":[1,2.5,"z"],"o":{}}')
    assert.same({ s = "x\n\195\169\240\159\152\128", t = true, f = false, a = { 1, 2.5, "z" }, o = {} }, v)
    assert.is_nil(getmetatable(v.a)) -- arrays are plain sequences
  end)

  it("decodes any value at the top level", function()
    assert.equal(1, decode("1"))
    assert.equal(-0.5, decode(" -0.5 "))
    assert.equal("s", decode('"s"'))
    assert.is_true(decode("true"))
    assert.is_false(decode("false"))
    assert.equal(null, decode("null"))
    assert.same({}, decode("[]"))
  end)

  it("decodes null as the NULL lightuserdata", function()
    assert.equal("userdata", type(null))
    if core.null ~= nil then
      assert.equal(core.null, null)
    end
    local v = decode('{"a":null,"b":[null]}')
    assert.equal(null, v.a)
    assert.equal(null, v.b[1])
  end)

  it("leaves out null object members with null_as_nil, keeps nulls in arrays", function()
    local v = decode('{"a":null,"b":1,"c":[1,null,3],"d":{"e":null}}', true)
    assert.is_nil(v.a)
    assert.equal(1, v.b)
    assert.equal(3, #v.c)
    assert.equal(null, v.c[2])
    assert.same({}, v.d)
    assert.equal(null, decode("null", true))
    assert.equal(null, decode('{"a":null}', false).a)
  end)

  it("decodes 15 to 19 digit integers exactly", function()
    assert.equal(123456789012345, decode("123456789012345"))
    assert.equal(500000000000000, decode('{"q":500000000000000}').q)
    assert.equal(-9007199254740992, decode("-9007199254740992"))
    assert.equal(9007199254740992, decode("9007199254740992"))
    if has_integers then
      assert.equal("integer", math.type(decode("123456789012345")))
      assert.equal("integer", math.type(decode('{"id":42}').id))
      assert.equal("float", math.type(decode("1.0")))
      assert.equal(math.tointeger("9007199254740993"), decode("9007199254740993"))
      assert.equal("9007199254740993", tostring(decode("9007199254740993")))
      assert.equal(math.maxinteger, decode("9223372036854775807"))
      assert.equal(math.mininteger, decode("-9223372036854775808"))
    end
  end)

  it("refuses integers beyond 2^53 on a Lua without integers, naming the path", function()
    local text = '{"data":{"remain_quota":9007199254740993}}'
    if has_integers then
      assert.equal("9007199254740993", tostring(decode(text).data.remain_quota))
    else
      fails(decode, text, 'JSON integer 9007199254740993 at "data.remain_quota" exceeds 2^53')
      fails(decode, "[-9007199254740993]", '"[1]"', "2^53")
      fails(decode, "12345678901234567", "at the top level")
    end
  end)

  it("refuses integers that do not fit in 64 bits and reals beyond a double", function()
    fails(decode, "9223372036854775808",
      "9223372036854775808", "does not fit in 64 bits")
    fails(decode, "1e400", "1e400", "out of range")
    fails(decode, "[-1E400]", "-1E400", "out of range")
  end)

  it("decodes big and small reals", function()
    assert.equal(1e300, decode("1e300"))
    assert.equal(-2.5e-300, decode("-2.5e-300"))
    assert.equal(0.1, decode("0.1"))
    assert.equal(0, decode("1e-400")) -- underflow rounds to zero, as strtod does
  end)

  it("refuses invalid UTF-8", function()
    for _, text in ipairs { '"a\255"', '"\192\175"', '"\237\160\128"', '"\244\144\128\128"', '"\226\130"' } do
      fails(decode, text, "invalid UTF-8")
    end
    fails(decode, '{"k\255":1}', "invalid UTF-8")
  end)

  it("refuses a NUL character in strings and keys", function()
    fails(decode, '"a\\u0000b"', "NUL")
    fails(decode, '{"a\\u0000":1}', "NUL")
    fails(decode, '"a\0b"', "syntax error")
  end)

  it("refuses duplicate object keys, naming the key", function()
    fails(decode, '{"id":1,"id":2}', 'JSON duplicate object key "id"')
    local text = '{"a":{"x\\"y":1,\n"x\\"y":2}}'
    fails(decode, text, 'duplicate object key "x\\"y"', "line 2")
    text = '{"id":1,"\\u0069d":2}' -- equal once unescaped
    fails(decode, text, "duplicate object key")
    assert.same({ a = { id = 1 }, b = { id = 2 } }, decode('{"a":{"id":1},"b":{"id":2}}'))
  end)

  it("accepts 32 levels of nesting and refuses 33", function()
    assert.is_table(decode(nested_arrays(32)))
    assert.is_table(decode(nested_objects(32)))
    fails(decode, nested_arrays(33), "JSON nested deeper than 32 levels")
    fails(decode, nested_objects(33), "nested deeper than 32 levels")
    fails(decode, nested_arrays(5000), "nested deeper than 32 levels")
  end)

  it("refuses empty input, trailing garbage and syntax errors with a position", function()
    fails(decode, "", "JSON empty input")
    fails(decode, " \n\t", "JSON empty input")
    for _, text in ipairs { "[1] x", "{} {}", "1 2" } do
      fails(decode, text, "JSON syntax error", "trailing")
    end
    fails(decode, "[1,,2]", "JSON syntax error at line 1 column 4")
    fails(decode, "[1,2", "end of input")
    fails(decode, "{'a':1}", "syntax error")
    fails(decode, "\1", "\\x01")
    fails(decode, "NaN", "syntax error")
  end)

  it("raises on a non-string text or a non-boolean flag", function()
    assert.error_matches(function() decode(nil) end, "bad argument #1 to '%w+' %(string expected, got nil%)")
    assert.error_matches(function() decode({}) end, "bad argument #1 to '%w+' %(string expected, got table%)")
    assert.error_matches(function() decode(1) end, "bad argument #1 to '%w+' %(string expected, got number%)")
    assert.error_matches(function() decode("1", "yes") end, "bad argument #2 to '%w+' %(boolean expected")
  end)
end)

describe("json_encode", function()
  it("writes compact JSON with sorted keys", function()
    assert.equal('{"a":2,"b":1,"c":{"x":true,"y":false}}', encode { b = 1, a = 2, c = { y = false, x = true } })
    assert.equal('{"B":1,"_":2,"a":3}', encode { a = 3, B = 1, _ = 2 }) -- byte order
    assert.equal('[1,"two",[3]]', encode { 1, "two", { 3 } })
  end)

  it("writes top-level scalars", function()
    assert.equal("1", encode(1))
    assert.equal('"s\\"\\n"', encode('s"\n'))
    assert.equal("true", encode(true))
    assert.equal("null", encode(nil))
    assert.equal("null", encode(null))
  end)

  it("writes null for the null sentinel inside tables", function()
    assert.equal('{"a":null,"b":[1,null]}', encode { a = null, b = { 1, null } })
  end)

  it("writes 15 to 19 digit integers exactly", function()
    assert.equal("123456789012345", encode(123456789012345))
    assert.equal('{"remain_quota":500000000000000}', encode { remain_quota = 500000000000000 })
    assert.equal("9007199254740992", encode(2 ^ 53)) -- a float with an integral value
    assert.equal("-9007199254740992", encode(-2 ^ 53))
    assert.equal("1000000000000000", encode(1e15))
    assert.equal("0", encode(-0.0))
    if has_integers then
      assert.equal("9007199254740993", encode(math.tointeger("9007199254740993")))
      assert.equal("9223372036854775807", encode(math.maxinteger))
      assert.equal("-9223372036854775808", encode(math.mininteger))
    end
  end)

  it("writes other floats as reals that read back exactly", function()
    for _, x in ipairs { 0.1, 1 / 3, math.pi, -2.5e-300, 1e300, 5e-324, 2 ^ 60, 2 ^ 53 + 2, 1.5 } do
      local text = encode(x)
      assert.is_truthy(text:find("[%.e]"), text)
      assert.equal(x, decode(text))
      if has_integers then
        assert.equal("float", math.type(decode(text)))
      end
    end
  end)

  it("refuses NaN and infinities, naming the path", function()
    fails(encode, 0 / 0, "NaN", "the top level")
    fails(encode, { x = math.huge }, 'inf at "x"')
    fails(encode, { { -math.huge } }, '-inf at "[1][1]"')
  end)

  it("refuses invalid UTF-8 and NUL in strings and keys, naming the path", function()
    assert.equal('"\226\130\172\240\159\152\128"', encode("\226\130\172\240\159\152\128"))
    fails(encode, { name = "a\255" }, 'string at "name"', "invalid UTF-8")
    fails(encode, { "\237\160\128" }, '"[1]"', "invalid UTF-8")
    fails(encode, { ["k\192\175"] = 1 }, "object key", "invalid UTF-8")
    fails(encode, "a\0b", "NUL")
    fails(encode, { ["a\0"] = 1 }, "object key", "NUL")
  end)

  it("tells arrays from objects", function()
    assert.equal("{}", encode {})
    assert.equal('{"1":"a"}', encode { ["1"] = "a" })
    assert.equal("[1,2,3]", encode { [3] = 3, [1] = 1, [2] = 2 })
    local t = { 1, 2 }
    t.x = 1
    fails(encode, t, "mixes array and object keys")
    fails(encode, { a = { [1] = 1, [3] = 3 } }, '"a"', "1..n")
    fails(encode, { [0] = 1 }, "non-string key 0")
    fails(encode, { [1.5] = 1 }, "non-string key 1.5")
    fails(encode, { [true] = 1 }, "non-string key of type boolean")
  end)

  it("honours __jsontype in the metatable", function()
    local array_mt = { __jsontype = "array" }
    assert.equal("[]", encode(setmetatable({}, array_mt)))
    assert.equal('{"a":[]}', encode { a = setmetatable({}, array_mt) })
    assert.equal("[1,2]", encode(setmetatable({ 1, 2 }, array_mt)))
    assert.equal("{}", encode(setmetatable({}, { __jsontype = "object" })))
    local bad = setmetatable({ x = 1 }, array_mt)
    fails(encode, bad, "__jsontype")
    bad = setmetatable({ 1 }, { __jsontype = "object" })
    fails(encode, bad, "__jsontype")
  end)

  it("reads tables raw, without calling metamethods", function()
    local proxy = setmetatable({}, { __index = function() error("must not be called") end,
      __pairs = function() error("must not be called") end })
    assert.equal("{}", encode(proxy))
  end)

  it("accepts 32 levels of nesting and refuses 33", function()
    assert.equal(nested_arrays(32), encode(nested_tables(32)))
    fails(encode, nested_tables(33), "JSON nested deeper than 32 levels")
  end)

  it("refuses cycles but accepts shared tables", function()
    local t = {}
    t[1] = t
    fails(encode, t, "cycle")
    local a = { b = {} }
    a.b.c = { a }
    fails(encode, a, '"b.c[1]"', "cycle")
    local shared = { 1 }
    assert.equal('{"x":[1],"y":[1]}', encode { x = shared, y = shared })
  end)

  it("refuses functions, threads and userdata, naming the path", function()
    fails(encode, { f = print }, 'function value at "f"')
    local co = coroutine.create(function() end)
    fails(encode, { a = { co } }, 'thread value at "a[1]"')
    fails(encode, io.stdout, "userdata value at the top level")
    fails(encode, { ["odd key"] = print }, "\"['odd key']\"")
  end)

  it("keeps long messages bounded, on one line and cut between UTF-8 characters", function()
    local key = ("\195\169"):rep(30) -- 60 bytes, shown cut to about 40
    for shift = 0, 1 do
      local t = { f = print }
      for _ = 1, 12 do
        t = { [("a"):rep(shift) .. key] = t }
      end
      local msg = fails(encode, t, "JSON cannot encode a function value at \"['")
      assert.is_true(#msg <= 255)
      assert.is_truthy(msg:find("...", 1, true))
      if utf8 then
        assert.is_number(utf8.len(msg))
      end
      assert.is_falsy(msg:find("[\192-\255]$")) -- no lead byte cut from its continuation
    end
  end)

  it("raises when called without a value", function()
    assert.error_matches(function() encode() end, "bad argument #1 to '%w+' %(value expected%)")
  end)
end)

describe("json round trips", function()
  it("keeps values through encode then decode", function()
    local values = {
      { id = 7, name = "caf\195\169", status = 1, remain_quota = 500000000000000, unlimited_quota = false,
        allow_ips = "10.0.0.0/8\n::1", model_limits = "", expired_time = -1 },
      { 1, 2, 3, { 4, { 5 } } },
      { a = { b = { c = { "deep" } } } },
      "", 0, -1, 123456789012345, 1.25, true, false,
    }
    for _, v in ipairs(values) do
      assert.same(v, decode(encode(v)))
    end
  end)

  it("keeps canonical text through decode then encode", function()
    local texts = {
      '{"a":[1,2,{"b":null}],"c":"d"}', "[true,false,null]", '"\\\\ \\" \\/ \\b"',
      "123456789012345", "-9007199254740992", '{"":1," ":2}', "[[],{}]", "0.5",
    }
    for _, text in ipairs(texts) do
      local back = encode(decode(text))
      if text == "[[],{}]" then
        assert.equal("[{},{}]", back) -- an empty array has no marker once decoded
      elseif text == '"\\\\ \\" \\/ \\b"' then
        assert.equal('"\\\\ \\" / \\b"', back)
      else
        assert.equal(text, back)
      end
    end
  end)

  it("survives many calls and collections (leak check under valgrind)", function()
    local text = encode { items = nested_tables(20), n = 123456789012345, s = ("x"):rep(1000) }
    for _ = 1, 200 do
      assert.equal(text, encode(decode(text)))
      assert.is_nil(decode(text .. "x"))
      assert.is_nil(encode { f = print, t = decode(text) })
    end
    collectgarbage()
    collectgarbage()
  end)
end)
