-- allowlist_spec.lua: the allow_ips parser, normaliser and matcher of cometkey.core
-- (core.allowlist_parse / allowlist_format / allowlist_compile and matcher:contains),
-- checked against the server's Go rules (net.ParseIP, net.ParseCIDR, IPNet.Contains).
local core = require "cometkey.core"

local parse, format, compile = core.allowlist_parse, core.allowlist_format, core.allowlist_compile
local char, concat = string.char, table.concat

-- Asserts that a call returned nil and a message containing every fragment.
local function assert_refused(fragments, result, message)
  assert.is_nil(result)
  assert.is_string(message)
  for _, fragment in ipairs(fragments) do
    assert.is_truthy(message:find(fragment, 1, true),
      ("message %q lacks %q"):format(message, fragment))
  end
end

-- Deterministic pseudo-random numbers, the same on every Lua version
-- (Park-Miller: products stay below 2^53, so doubles are exact).
local function prng(seed)
  local state = seed
  return function(n)
    state = (state * 48271) % 2147483647
    return state % n
  end
end

describe("core.allowlist_parse", function()
  it("splits strings on newlines, commas, spaces, tabs and CR, skipping empty pieces", function()
    assert.same({ "1.2.3.4", "5.6.7.8", "::1", "10.0.0.0/8" },
      parse("\n 1.2.3.4,,5.6.7.8\r\n\t::1 ,\n10.0.0.0/8\n\n"))
  end)

  it("normalises every entry", function()
    local cases = {
      { "1.2.3.4", "1.2.3.4" },
      { "10.1.2.3/8", "10.0.0.0/8" },
      { "192.168.1.77/24", "192.168.1.0/24" },
      { "10.0.0.0/08", "10.0.0.0/8" },
      { "1.2.3.4/0", "0.0.0.0/0" },
      { "2001:DB8::1", "2001:db8::1" },
      { "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1" },
      { "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
      { "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1" },
      { "fe80::1/64", "fe80::/64" },
      { "::ffff:1.2.3.4", "1.2.3.4" },
      { "::ffff:0102:0304", "1.2.3.4" },
      { "::1.2.3.4", "::102:304" },
      { "::ffff:1.2.3.4/120", "::ffff:1.2.3.0/120" },
      { "::ffff:1.2.3.4/90", "::ffc0:0:0/90" },
      { "::/0", "::/0" },
    }
    for _, case in ipairs(cases) do
      assert.same({ case[2] }, parse(case[1]), case[1])
    end
  end)

  it("drops later duplicates of the same normalised entry and keeps the order", function()
    assert.same({ "1.2.3.4", "10.0.0.0/8", "::ffff:10.0.0.0/104", "2001:db8::1" },
      parse("1.2.3.4 ::ffff:1.2.3.4 10.1.2.3/8 10.0.0.0/8 ::ffff:10.0.0.0/104 "
        .. "2001:db8::1 2001:DB8:0:0:0:0:0:1 1.2.3.4"))
  end)

  it("returns an empty array for no restriction", function()
    for _, value in ipairs({ "", " \n\t,\r ", core.null, {} }) do
      assert.same({}, parse(value))
    end
    assert.same({}, parse(nil))
    assert.same({}, parse())
  end)

  it("names the bad entry, its position and the reason", function()
    local cases = {
      { "1.2.3.4\n10.0.0.1:80", 2, "ports are not allowed" },
      { "01.2.3.4", 1, "leading zeros" },
      { "1.2.3.256", 1, "0-255" },
      { "1.2.3.4 10.0.0.0/33", 2, "0-32 for IPv4" },
      { "::/129", 1, "0-128 for IPv6" },
      { "10.0.0.0/", 1, "decimal digits" },
      { "10.0.0.0/+8", 1, "decimal digits" },
      { "fe80::1%eth0", 1, "zones" },
      { "[::1]", 1, "brackets" },
      { "10.0.0.1-10.0.0.9", 1, "ranges and wildcards" },
      { "10.0.0.*", 1, "ranges and wildcards" },
      { "localhost", 1, "host names" },
      { "::12345", 1, "at most 4 hex digits" },
      { "1:2:3:4:5:6:7:8:9", 1, "not an IP address or CIDR" },
      { "1::2::3", 1, "not an IP address or CIDR" },
    }
    for _, case in ipairs(cases) do
      local bad = case[1]:match("([^\n ]+)$")
      assert_refused({ ("entry %d (%q) is not an IP address or CIDR"):format(case[2], bad), case[3] },
        parse(case[1]))
    end
  end)

  it("matches the exact message shape", function()
    local result, message = parse("1.2.3.4\n10.0.0.1:80")
    assert.is_nil(result)
    assert.equal('entry 2 ("10.0.0.1:80") is not an IP address or CIDR (ports are not allowed)', message)
  end)

  it("quotes control characters and cuts long entries in messages", function()
    local _, message = parse("1.2.3.4\0")
    assert.equal('entry 1 ("1.2.3.4\\x00") is not an IP address or CIDR', message)
    _, message = parse(("9"):rep(500))
    assert.is_truthy(#message < 200 and message:find('...")', 1, true), message)
  end)

  it("reads arrays: one entry per item, blanks around it ignored, empty items skipped", function()
    assert.same({ "1.2.3.4", "5.6.7.8", "2001:db8::/32" },
      parse({ "1.2.3.4", "  5.6.7.8\n", "", " ", "2001:db8::/32" }))
  end)

  it("refuses array items with several entries, non-strings and non-arrays", function()
    assert_refused({ 'entry 2 ("1.2.3.4, 5.6.7.8")', "one entry per array item" },
      parse({ "::1", "1.2.3.4, 5.6.7.8" }))
    assert_refused({ "entry 3 is not a string (got number)" }, parse({ "::1", "1.2.3.4", 5 }))
    assert_refused({ "entry 1 is not a string (got table)" }, parse({ {} }))
    assert_refused({ "entry 2 (\"x\")" }, parse({ "::1", "x" }))
    assert_refused({ "non-array keys" }, parse({ "1.2.3.4", extra = "5.6.7.8" }))
    assert_refused({ "non-array keys" }, parse({ [1] = "1.2.3.4", [3] = "5.6.7.8" }))
  end)

  it("refuses other types without raising", function()
    for _, value in ipairs({ 42, true, print, coroutine.create(function() end) }) do
      local ok, result, message = pcall(parse, value)
      assert.is_true(ok)
      assert_refused({ "expected a string, an array of strings or null, got " .. type(value) },
        result, message)
    end
  end)

  it("accepts cjson.null as the null sentinel when lua-cjson is installed", function()
    local ok, cjson = pcall(require, "cjson")
    if not ok then return end
    assert.equal(core.null, cjson.null)
    assert.same({}, parse(cjson.null))
  end)
end)

describe("core.allowlist_format", function()
  it("joins normalised entries with newlines, the server's separator", function()
    assert.equal("10.0.0.0/8\n1.2.3.4\n2001:db8::1",
      format("10.1.2.3/8, ::ffff:1.2.3.4 2001:DB8::1\n1.2.3.4"))
    assert.equal("10.0.0.0/8\n::1", format({ "10.0.0.0/8", "::1" }))
  end)

  it("gives an empty string for no restriction", function()
    assert.equal("", format(""))
    assert.equal("", format(nil))
    assert.equal("", format(core.null))
    assert.equal("", format({}))
  end)

  it("is a fixed point and agrees with parse", function()
    local value = "192.168.7.9/16 ::ffff:1.2.3.4/127 2001:db8:0:0::1 fe80::/10 8.8.8.8 8.8.8.8"
    local once = format(value)
    assert.equal(once, format(once))
    assert.equal(once, concat(parse(value), "\n"))
  end)

  it("refuses what parse refuses, with the same message", function()
    local _, parse_message = parse("1.2.3.4 1.2.3")
    local result, message = format("1.2.3.4 1.2.3")
    assert.is_nil(result)
    assert.equal(parse_message, message)
  end)
end)

describe("core.allowlist_compile", function()
  -- { list, client, admitted? } as the server's Go code decides
  local membership = {
    { "1.2.3.4", "1.2.3.4", true },
    { "1.2.3.4", "::ffff:1.2.3.4", true },
    { "::ffff:1.2.3.4", "1.2.3.4", true },
    { "1.2.3.4", "::1.2.3.4", false },
    { "::1.2.3.4", "1.2.3.4", false },
    { "::1.2.3.4", "::102:304", true },
    { "1.2.3.4", "1.2.3.5", false },
    { "::1", "0:0:0:0:0:0:0:1", true },
    { "10.0.0.0/8", "10.255.255.255", true },
    { "10.0.0.0/8", "11.0.0.0", false },
    { "10.1.2.3/8", "10.200.0.1", true },
    { "10.0.0.0/8", "::ffff:10.1.1.1", true },
    { "10.0.0.0/8", "::10.1.1.1", false },
    { "1.2.3.4/32", "1.2.3.4", true },
    { "1.2.3.4/32", "1.2.3.5", false },
    { "0.0.0.0/0", "203.0.113.9", true },
    { "0.0.0.0/0", "::1", false },
    { "::/0", "2001:db8::1", true },
    { "::/0", "1.2.3.4", false },
    { "::/0", "::ffff:1.2.3.4", false },
    { "2001:db8::/32", "2001:db8:ffff::1", true },
    { "2001:db8::/32", "2001:db9::1", false },
    { "2001:db8::1/128", "2001:db8::1", true },
    { "2001:db8::1/128", "2001:db8::2", false },
    -- Go's networkNumberAndMask turns an IPv4-mapped network into an IPv4 one
    { "::ffff:0:0/96", "1.2.3.4", true },
    { "::ffff:1.2.3.0/120", "1.2.3.200", true },
    { "::ffff:1.2.3.0/120", "1.2.4.1", false },
    { "::ffff:0:0/95", "1.2.3.4", false },
    { "::/80", "::ffff:1.2.3.4", false },
    -- unparsable clients are never admitted
    { "0.0.0.0/0 ::/0", "1.2.3.4:80", false },
    { "0.0.0.0/0 ::/0", "01.2.3.4", false },
    { "0.0.0.0/0 ::/0", "fe80::1%eth0", false },
    { "0.0.0.0/0 ::/0", " 1.2.3.4", false },
    { "0.0.0.0/0 ::/0", "", false },
    { "0.0.0.0/0 ::/0", "localhost", false },
  }

  it("admits clients exactly as the server does", function()
    for _, case in ipairs(membership) do
      local m = assert(compile(case[1]))
      assert.equal(case[3], m:contains(case[2]), case[1] .. " contains " .. case[2])
      assert.equal(case[3], m:contains(case[2], "text"), case[1] .. " contains text " .. case[2])
    end
  end)

  it("matches binary addresses (nginx $binary_remote_addr)", function()
    local m = assert(compile("10.0.0.0/8 2001:db8::/32"))
    assert.is_true(m:contains(char(10, 1, 2, 3)))
    assert.is_false(m:contains(char(11, 1, 2, 3)))
    assert.is_true(m:contains(char(10, 1, 2, 3), "binary"))
    local mapped = char(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 9, 9, 9)
    assert.is_true(m:contains(mapped))
    assert.is_true(m:contains(mapped, "binary"))
    local v6 = char(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
    assert.is_true(m:contains(v6))
    assert.is_false(m:contains(char(0x20, 0x01, 0x0d, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)))
    assert.is_false(m:contains(char(10, 1, 2), "binary"))
    assert.is_false(m:contains(char(10, 1, 2, 3, 4), "binary"))
  end)

  it("tells text from binary by length when no form is given", function()
    local m = assert(compile("12.34.5.6 ::1"))
    -- 16 characters that parse as an address are text
    assert.equal(16, #"::ffff:12.34.5.6")
    assert.is_true(m:contains("::ffff:12.34.5.6"))
    assert.is_false(m:contains("::ffff:12.34.5.6", "binary"))
    -- 4 bytes are always binary IPv4: "1::2" is the address 49.58.58.50
    local four = assert(compile("49.58.58.50 1::2"))
    assert.is_true(four:contains("1::2"))
    assert.is_false(compile("1::2"):contains("1::2"))
    assert.is_true(compile("1::2"):contains("1::2", "text"))
    -- other lengths are text
    assert.is_true(m:contains("12.34.5.6"))
    assert.is_true(m:contains("::1"))
  end)

  it("admits everything when the list is empty", function()
    for _, value in ipairs({ "", " \n ", core.null, {} }) do
      local m = assert(compile(value))
      assert.is_true(m:contains("1.2.3.4"))
      assert.is_true(m:contains("2001:db8::1"))
      assert.is_true(m:contains("not an address"))
      assert.equal(0, m:count())
    end
    assert.is_true(assert(compile(nil)):contains("::1"))
  end)

  it("takes arrays", function()
    local m = assert(compile({ "10.0.0.0/8", " ::1 " }))
    assert.is_true(m:contains("10.9.8.7"))
    assert.is_true(m:contains("::1"))
    assert.is_false(m:contains("::2"))
  end)

  it("returns nil and the parse message for a bad value", function()
    assert_refused({ 'entry 2 ("10.0.0.1:80")', "ports are not allowed" }, compile("::1 10.0.0.1:80"))
    assert_refused({ "got boolean" }, compile(false))
  end)

  it("counts merged ranges and prints them", function()
    local m = assert(compile("10.0.0.0/9 10.128.0.0/9 1.2.3.4 1.2.3.5 2001:db8::1 ::ffff:0:0/96"))
    -- ::ffff:0:0/96 is every IPv4 address: one IPv4 range, one IPv6 range
    assert.equal(2, m:count())
    assert.equal(2, #m)
    assert.equal("cometkey.allowlist (2 ranges)", tostring(m))
    m = assert(compile("10.0.0.0/9 10.128.0.0/9 1.2.3.4 1.2.3.5 2001:db8::1"))
    assert.equal(3, m:count())
  end)

  it("raises for a non-string address, a bad form or a wrong self", function()
    local m = assert(compile("::1"))
    assert.has_error(function() m:contains(42) end)
    assert.has_error(function() m:contains(nil) end)
    assert.has_error(function() m:contains("::1", "hex") end)
    assert.has_error(function() m:contains("::1", 4) end)
    assert.has_error(function() m.contains({}, "::1") end)
    assert.has_error(function() m.contains(io.stdout, "::1") end)
    assert.equal("cometkey.allowlist", getmetatable(m))
  end)

  -- A plain Lua reference for IPv4 lists: every entry as [lo, hi] integers.
  local function v4_number(a, b, c, d) return ((a * 256 + b) * 256 + c) * 256 + d end

  it("agrees with a plain reference on 10 000 random IPv4 entries", function()
    local random = prng(20240901)
    -- reference: each CIDR (prefix >= 16) as [lo, hi], filed under its /16
    local entries, by16 = {}, {}
    for i = 1, 10000 do
      local a, b, c, d = 10 + random(4), random(256), random(256), random(256)
      local prefix = 20 + random(13)
      local size = 2 ^ (32 - prefix)
      local lo = v4_number(a, b, c, d)
      lo = lo - lo % size
      local key = math.floor(lo / 65536)
      by16[key] = by16[key] or {}
      by16[key][#by16[key] + 1] = { lo, lo + size - 1 }
      entries[i] = ("%d.%d.%d.%d/%d"):format(a, b, c, d, prefix)
    end
    local m = assert(compile(concat(entries, "\n")))
    local admitted, clients = 0, 5000
    for _ = 1, clients do
      local a, b, c, d = 10 + random(4), random(256), random(256), random(256)
      local x, want = v4_number(a, b, c, d), false
      for _, range in ipairs(by16[math.floor(x / 65536)] or {}) do
        if range[1] <= x and x <= range[2] then want = true break end
      end
      local text = ("%d.%d.%d.%d"):format(a, b, c, d)
      assert.equal(want, m:contains(text), text)
      assert.equal(want, m:contains(char(a, b, c, d)), text)
      if want then admitted = admitted + 1 end
    end
    assert.is_true(admitted > clients / 50 and admitted < clients - clients / 50,
      "too one-sided: " .. admitted)
  end)

  it("admits the same clients after normalisation", function()
    local random = prng(7)
    local parts = {}
    for i = 1, 300 do
      local kind = random(4)
      if kind == 0 then
        parts[i] = ("10.%d.%d.%d/%d"):format(random(4), random(256), random(256), 20 + random(13))
      elseif kind == 1 then
        parts[i] = ("::ffff:10.%d.%d.%d/%d"):format(random(4), random(256), random(256), 112 + random(17))
      elseif kind == 2 then
        parts[i] = ("2001:DB8:0:%x::%x/%d"):format(random(4), random(65536), 100 + random(29))
      else
        parts[i] = ("::FFFF:10.%d.%d.%d"):format(random(4), random(256), random(256))
      end
    end
    local original = assert(compile(parts))
    local normalised = assert(compile(format(parts)))
    for _ = 1, 2000 do
      local client
      if random(2) == 0 then
        client = ("10.%d.%d.%d"):format(random(4), random(256), random(256))
      else
        client = ("2001:db8:0:%x::%x"):format(random(4), random(65536))
      end
      assert.equal(original:contains(client), normalised:contains(client), client)
    end
  end)

  it("frees matchers when they are collected", function()
    for _ = 1, 200 do compile("10.0.0.0/8 2001:db8::/32 1.2.3.4") end
    collectgarbage()
    collectgarbage()
    local m = assert(compile("1.2.3.4"))
    assert.is_true(m:contains("1.2.3.4"))
  end)
end)
