-- spec/cli_spec.lua - the cometkey command-line tool (bin/cometkey) end to end
-- against the local mock server, plus its pure helpers (cometkey.cli.values and
-- cometkey.cli.format) in-process. The tool runs as `lua5.4 bin/cometkey`
-- with the Lua 5.4 build (CK_CLI_BUILD, default build/5.4: run `make build-5.4`
-- first), so this spec runs unchanged under lua5.4, lua5.1 and luajit busted.
-- CK_CLI_LUA / CK_CLI_BUILD run the tool under another interpreter and build.

local mock = require "spec.support.mock"
local sys = require "spec.support.sys"
local cjson = require "cjson"
local values = require "cometkey.cli.values"
local fmt = require "cometkey.cli.format"

local CLI_BUILD = os.getenv("CK_CLI_BUILD") or "build/5.4"
local CLI_LUA = os.getenv("CK_CLI_LUA") or "lua5.4" -- e.g. CK_CLI_LUA=luajit CK_CLI_BUILD=build/luajit
local DAY = 86400

---------------------------------------------------------------- helpers

local shell_quote, read_file, write_file = sys.quote, sys.read_file, sys.write_file

local ROOT = sys.capture("pwd")
local TMP = sys.temp_dir("cometkey-cli-spec")

local m -- the mock server

-- run(args [, opts]) --> { code = exit status, stdout = text, stderr = text }
-- Runs `lua5.4 bin/cometkey args...` with stdin from /dev/null (not a terminal),
-- the mock's URL, token and user id in the environment unless opts.env overrides them
-- (a value of false removes the variable). opts.tty runs it under script(1) on a
-- pseudo-terminal with opts.input typed in; stdout and stderr are then merged.
local function run(args, opts)
  opts = opts or {}
  local env = { CK_BUILD = CLI_BUILD, COMETAPI_ACCESS_TOKEN = m.token, COMETAPI_BASE_URL = m.url,
    COMETAPI_USER_ID = tostring(m.user_id), XDG_CONFIG_HOME = TMP .. "/no-config", NO_COLOR = false }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local parts = { "env", "-u", "COMETAPI_ACCESS_TOKEN", "-u", "COMETAPI_BASE_URL", "-u", "COMETAPI_USER_ID",
    "-u", "COMETKEY_PROFILE", "-u", "NO_COLOR" }
  for k, v in pairs(env) do
    if v then parts[#parts + 1] = shell_quote(k .. "=" .. v) end
  end
  parts[#parts + 1] = CLI_LUA .. " bin/cometkey"
  for _, a in ipairs(args) do parts[#parts + 1] = shell_quote(a) end
  local cmd = table.concat(parts, " ")
  local out, err, rc = TMP .. "/stdout", TMP .. "/stderr", TMP .. "/rc"
  if opts.tty then
    write_file(TMP .. "/input", opts.input or "")
    cmd = "script -qec " .. shell_quote(cmd) .. " /dev/null <" .. shell_quote(TMP .. "/input")
  else
    cmd = cmd .. " </dev/null"
  end
  os.execute("cd " .. shell_quote(ROOT) .. " && " .. cmd .. " >" .. out .. " 2>" .. err .. "; echo $? >" .. rc)
  return {
    code = tonumber((read_file(rc) or ""):match("%d+")),
    stdout = read_file(out) or "",
    stderr = read_file(err) or "",
  }
end


-- call(args [, opts]) --> { code, stdout, stderr }: cometkey.cli.main in this process,
-- with captured streams and an environment of its own (opts.env: false removes a
-- variable; opts.tty: every stream is a terminal; opts.input: what stdin answers).
local cli = require "cometkey.cli"

local function buffer()
  local parts = {}
  return {
    write = function(self, ...)
      for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
      return self
    end,
    flush = function() end,
    text = function() return table.concat(parts) end,
  }
end

local function call(args, opts)
  opts = opts or {}
  local env = { COMETAPI_ACCESS_TOKEN = m.token, COMETAPI_BASE_URL = m.url, COMETAPI_USER_ID = tostring(m.user_id),
    XDG_CONFIG_HOME = TMP .. "/no-config", HOME = TMP .. "/no-home" }
  for k, v in pairs(opts.env or {}) do env[k] = v or nil end
  local out, err = buffer(), buffer()
  local code = cli.main(args, {
    stdout = out, stderr = err, stdin = { read = function() return opts.input end },
    getenv = function(name) return env[name] end,
    isatty = function() return opts.tty == true end,
    now = opts.now,
  })
  return { code = code, stdout = out:text(), stderr = err:text() }
end

local function lines(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

-- Asserts a failure: the exit status, one stderr line starting "cometkey: " holding every fragment.
local function assert_fails(r, code, ...)
  assert.are.equal(code, r.code, "exit status; stderr: " .. r.stderr)
  local l = lines(r.stderr)
  assert.are.equal(1, #l, "exactly one stderr line: " .. r.stderr)
  assert.is_truthy(l[1]:find("^cometkey: "), l[1])
  for i = 1, select("#", ...) do
    local fragment = select(i, ...)
    assert.is_truthy(r.stderr:find(fragment, 1, true), ("%q not in stderr: %s"):format(fragment, r.stderr))
  end
end

local function assert_ok(r)
  assert.are.equal(0, r.code, "exit status; stderr: " .. r.stderr .. "; stdout: " .. r.stdout)
end

local function sent(method)
  local n = 0
  for _, e in ipairs(m:requests()) do
    if method == nil or e.method == method then n = n + 1 end
  end
  return n
end

local function absent(v) return v == nil or v == mock.null end

local function deleted(id) return not absent(m:key(id).deleted_at) end

-- The caller's live rows, newest first, as the mock stores them.
local function live_keys()
  local rows = {}
  for _, row in ipairs(m:keys()) do
    if row.user_id == m.user_id and absent(row.deleted_at) then rows[#rows + 1] = row end
  end
  table.sort(rows, function(a, b) return a.id > b.id end)
  return rows
end

local function decode(text)
  local ok, v = pcall(cjson.decode, text)
  assert.is_true(ok, "stdout is not one JSON document: " .. text)
  return v
end

local EDITABLE = { "name", "status", "expired_time", "remain_quota", "unlimited_quota", "model_limits_enabled",
  "model_limits", "allow_ips", "group", "cross_group_retry", "key", "used_quota", "created_time" }

-- Asserts that after differs from before exactly in the fields of changed (field -> value).
local function assert_only_changed(before, after, changed)
  for _, f in ipairs(EDITABLE) do
    if changed[f] ~= nil then
      assert.are.equal(changed[f], after[f], f)
    else
      assert.are.same(before[f], after[f], f .. " must not change")
    end
  end
end

---------------------------------------------------------------- pure helpers

describe("cometkey.cli.values", function()
  local function utc_midnight(date) return tonumber((sys.capture("date -u -d " .. date .. " +%s"))) end

  it("reads --expires forms", function()
    assert.are.equal(-1, values.expires("never", "--expires"))
    assert.are.equal(1700000000, values.expires("1700000000", "--expires"))
    for _, date in ipairs { "1970-01-01", "2024-02-29", "2030-01-02", "2100-03-01", "2399-12-31" } do
      assert.are.equal(utc_midnight(date), values.expires(date, "--expires"), date)
    end
    assert.are.equal(1000 + 30 * DAY, values.expires("+30d", "--expires", 1000))
    assert.are.equal(1000 + 12 * 3600, values.expires("+12h", "--expires", 1000))
    for _, bad in ipairs { "2023-02-29", "2024-13-01", "2024-00-10", "1969-12-31", "30d", "+3w", "", "soon" } do
      local v, message = values.expires(bad, "--expires")
      assert.is_nil(v, bad)
      assert.is_truthy(message:find("--expires", 1, true), message)
    end
  end)

  it("reads integers exactly and refuses the rest", function()
    assert.are.equal(500000000000000, values.quota("500000000000000", "--quota"))
    if math.type then
      assert.are.equal("integer", math.type(values.quota("123456789012345678", "--quota")))
      assert.are.equal(123456789012345678, values.quota("123456789012345678", "--quota"))
    end
    for _, bad in ipairs { "1e3", "1.5", "0x10", "", "12a", "1234567890123456789012" } do
      assert.is_nil(values.quota(bad, "--quota"), bad)
    end
    assert.are.equal(12, values.id("12"))
    assert.is_nil(values.id("0"))
    assert.is_nil(values.id("-3"))
  end)

  it("reads statuses, booleans and --expect pairs by field type", function()
    assert.are.equal(2, values.status("Disabled", "--status"))
    assert.are.equal(4, values.status("4", "--status"))
    assert.is_nil(values.status("5", "--status"))
    assert.is_false(values.bool("off", "x"))
    assert.is_true(values.bool("TRUE", "x"))
    assert.is_nil(values.bool("maybe", "x"))
    local e = assert(values.expect { "status=enabled", "quota=5", "unlimited=off", "name=a=b", "expires=never" })
    assert.are.same({ status = 1, remain_quota = 5, unlimited_quota = false, name = "a=b", expired_time = -1 }, e)
    local v, message = values.expect { "stauts=1" }
    assert.is_nil(v)
    assert.is_truthy(message:find("unknown field", 1, true))
    assert.is_nil((values.expect { "status=1", "status=2" }))
    assert.is_nil((values.expect { "remain_quota=lots" }))
  end)
end)

describe("cometkey.cli.format", function()
  it("truncates long names on character boundaries with an ellipsis", function()
    local name = ("é"):rep(40)
    local t = fmt.truncate(name, 10)
    assert.are.equal(10, fmt.width(t))
    assert.are.equal(("é"):rep(9) .. "…", t)
    assert.are.equal("short", fmt.truncate("short", 10))
    assert.are.equal("a\\x0ab", fmt.truncate("a\nb", 10))
  end)

  it("aligns table columns", function()
    local text = fmt.table({ { "1", "a", "x" }, { "1234", "ééé", "y" } }, { "ID", "NAME", "Z" })
    local l = lines(text)
    assert.are.equal(3, #l)
    local col = { l[1]:find("NAME", 1, true), l[2]:find("a", 1, true) }
    assert.are.equal(col[1], col[2])
    assert.are.equal(fmt.width(l[1]:match("^(.-)Z")), fmt.width(l[3]:match("^(.-)y")))
  end)

  it("counts allowlist entries as the server reads them", function()
    assert.are.equal(0, #fmt.allowlist_entries(""))
    assert.are.equal(0, #fmt.allowlist_entries(nil))
    assert.are.same({ "1.2.3.4", "10.0.0.0/8" }, fmt.allowlist_entries(" 1.2.3.4 \r\n\n10.0.0.0/8\n"))
    assert.are.same({ "1.2.3.45.6.7.8" }, fmt.allowlist_entries("1.2.3.4, 5.6.7.8"))
  end)
end)

---------------------------------------------------------------- the tool

describe("bin/cometkey", function()
  setup(function()
    assert(read_file(CLI_BUILD .. "/cometkey/core.so"), "run `make build-5.4` first (" .. CLI_BUILD .. " missing)")
    m = mock.start {}
  end)

  teardown(function()
    if m then m:stop() end
    sys.remove_dir(TMP)
  end)

  before_each(function() m:reset() end)

  describe("help", function()
    it("describes the tool and every command", function()
      local r = run { "--help" }
      assert_ok(r)
      for _, c in ipairs { "list", "get", "search", "create", "update", "enable", "disable", "delete",
        "check-ip", "mock" } do
        assert.is_truthy(r.stdout:find("\n  " .. c .. " ", 1, true), c)
        local h = run { c, "--help" }
        assert_ok(h)
        assert.is_truthy(h.stdout:find("usage: cometkey " .. c, 1, true), h.stdout)
      end
      assert.is_truthy(run({ "update", "--help" }).stdout:find("--expect FIELD=VALUE", 1, true))
      assert.are.equal(0, sent())
    end)

    it("exits 2 without a command or with an unknown one", function()
      assert_fails(run {}, 2, "no command")
      assert_fails(run { "lsit" }, 2, "unknown command")
    end)
  end)

  describe("list", function()
    it("prints every key as an aligned table", function()
      local r = run { "list" }
      assert_ok(r)
      local l = lines(r.stdout)
      local rows = live_keys()
      assert.are.equal(#rows + 1, #l)
      assert.is_truthy(l[1]:find("^ID%s+NAME%s+STATUS%s+QUOTA%s+EXPIRES %(UTC%)%s+IPS$"), l[1])
      local name_col = l[1]:find("NAME", 1, true)
      for i, row in ipairs(rows) do
        local line = l[i + 1]
        assert.are.equal(tostring(row.id), line:match("^(%d+)"))
        assert.are.equal(name_col, line:find(row.name, 1, true), line)
        assert.is_truthy(line:find(fmt.status(row.status), 1, true), line)
        assert.is_truthy(line:find(row.unlimited_quota and "unlimited" or string.format("%d", row.remain_quota),
          1, true), line)
        assert.is_truthy(line:find(row.expired_time == -1 and "never" or os.date("!%Y-%m-%d", row.expired_time),
          1, true), line)
        assert.are.equal(tostring(#fmt.allowlist_entries(row.allow_ips)), line:match("(%d+)$"))
      end
    end)

    it("reads every page", function()
      local rows = {}
      for i = 1, 230 do rows[i] = { name = "k" .. i, remain_quota = i } end
      m:set_keys(rows)
      local r = run { "list", "--json" }
      assert_ok(r)
      assert.are.equal(230, #decode(r.stdout))
      assert.are.equal(3, sent("GET"))
    end)

    it("truncates long names with an ellipsis", function()
      m:set_keys { { name = ("n"):rep(50) } }
      local r = run { "list" }
      assert_ok(r)
      assert.is_truthy(r.stdout:find(("n"):rep(fmt.NAME_WIDTH - 1) .. "…", 1, true), r.stdout)
      assert.is_falsy(r.stdout:find(("n"):rep(fmt.NAME_WIDTH), 1, true))
    end)

    it("--json prints the stored records with exact integers, keys masked", function()
      local r = run { "list", "--json" }
      assert_ok(r)
      local keys = decode(r.stdout)
      local rows = live_keys()
      assert.are.equal(#rows, #keys)
      for i, row in ipairs(rows) do
        for _, f in ipairs(EDITABLE) do
          local want = row[f]
          if want == mock.null then want = nil end
          if f == "key" then want = want:sub(1, 4) .. "**********" .. want:sub(-4) end -- masked (2026)
          local have = keys[i][f]
          if have == cjson.null then have = nil end
          if f == "key" and want then want = fmt.mask(want) end
          assert.are.equal(want, have, f .. " of key " .. row.id)
        end
      end
      assert.is_truthy(r.stdout:find('"remain_quota":123456789012345,', 1, true), "exact big integer")
    end)

    it("prints an empty JSON array for no keys", function()
      m:set_keys {}
      local r = run { "list", "--json" }
      assert_ok(r)
      assert.are.equal("[]\n", r.stdout)
    end)
  end)

  describe("get", function()
    it("shows one key field by field, its secret masked", function()
      local row = m:key(5)
      local r = run { "get", "5" }
      assert_ok(r)
      assert.is_truthy(r.stdout:find("\nname%s+ci%-runner\n"), r.stdout)
      assert.is_truthy(r.stdout:find("\nstatus%s+enabled %(1%)\n"), r.stdout)
      assert.is_truthy(r.stdout:find("\nallow_ips%s+10%.0%.0%.0/8\n%s+192%.168%.1%.10\n"), r.stdout)
      assert.is_truthy(r.stdout:find("\nmodel_limits%s+gpt%-4o,claude"), r.stdout)
      assert.is_falsy(r.stdout:find(row.key, 1, true), "secret masked")
      assert.is_truthy(r.stdout:find(row.key:sub(1, 4) .. "**********" .. row.key:sub(-4), 1, true))
      m:config { masked_keys = false } -- a 2025 server: the record carries the full key
      local shown = run { "get", "5", "--show-key" }
      assert.is_truthy(shown.stdout:find(row.key, 1, true))
    end)

    it("--json prints the record", function()
      local r = run { "get", "6", "--json" }
      assert_ok(r)
      local key = decode(r.stdout)
      assert.are.equal("big-budget", key.name)
      assert.is_truthy(r.stdout:find('"remain_quota":123456789012345', 1, true))
    end)

    it("exits 1 for a key that does not exist", function()
      assert_fails(run { "get", "999" }, 1, "not_found")
    end)
  end)

  describe("search", function()
    it("finds keys by name, with wildcards", function()
      local r = run { "search", "production" }
      assert_ok(r)
      local l = lines(r.stdout)
      assert.are.equal(2, #l)
      assert.are.equal("1", l[2]:match("^(%d+)"))
      local j = run { "search", "%-key", "--json" }
      assert_ok(j)
      local ids = {}
      for _, k in ipairs(decode(j.stdout)) do ids[#ids + 1] = k.id end
      table.sort(ids)
      assert.are.same({ 3, 4 }, ids)
    end)
  end)

  describe("search on old servers", function()
    it("reads the bare array they answer", function()
      m:config { search_style = "array" }
      local r = run { "search", "key", "--json" }
      assert_ok(r)
      local ids = {}
      for _, k in ipairs(decode(r.stdout)) do ids[#ids + 1] = k.id end
      table.sort(ids)
      assert.are.same({ 3, 4 }, ids)
    end)
  end)

  describe("create", function()
    it("creates a key with the flags' fields and prints it", function()
      local r = run { "create", "--name", "new-key", "--quota", "5000", "--models", "gpt-4o,claude-x",
        "--allow-ip", "10.0.0.0/8", "--allow-ip", "1.2.3.4", "--expires", "2030-01-02", "--group", "auto",
        "--cross-group-retry", "on", "--json" }
      assert_ok(r)
      local printed = decode(r.stdout)
      local found
      for _, row in ipairs(live_keys()) do if row.name == "new-key" then found = row end end
      assert.is_table(found, "record created")
      assert.are.equal(found.id, printed.id)
      assert.are.equal(5000, found.remain_quota)
      assert.is_false(found.unlimited_quota)
      assert.are.equal("gpt-4o,claude-x", found.model_limits)
      assert.is_true(found.model_limits_enabled)
      assert.are.equal("10.0.0.0/8\n1.2.3.4", found.allow_ips)
      assert.are.equal(1893542400, found.expired_time)
      assert.are.equal("auto", found.group)
      assert.is_true(found.cross_group_retry)
    end)

    it("needs --name", function()
      assert_fails(run { "create", "--quota", "5" }, 2, "--name")
      assert.are.equal(0, sent())
    end)
  end)

  describe("update", function()
    it("changes only the named fields", function()
      local before = m:key(5)
      local r = run { "update", "5", "--name", "renamed", "--quota", "777", "--no-allow-ips", "--group", "vip" }
      assert_ok(r)
      assert.is_truthy(r.stdout:find("\nname%s+renamed\n"), r.stdout)
      assert_only_changed(before, m:key(5), { name = "renamed", remain_quota = 777, allow_ips = "", group = "vip" })
    end)

    it("maps the model, quota and allowlist flags", function()
      local before = m:key(1)
      assert_ok(run { "update", "1", "--models", "a,b", "--unlimited", "--allow-ip", "::1", "--group", "auto",
        "--cross-group-retry", "on" })
      local mid = m:key(1)
      assert_only_changed(before, mid, { model_limits = "a,b", model_limits_enabled = true,
        unlimited_quota = true, allow_ips = "::1", group = "auto", cross_group_retry = true })
      assert_ok(run { "update", "1", "--no-models", "--limited", "--cross-group-retry", "off" })
      assert_only_changed(mid, m:key(1), { model_limits = "", model_limits_enabled = false,
        unlimited_quota = false, cross_group_retry = false })
    end)

    it("reads every --expires form", function()
      local cases = {
        { "never", function(t) return t == -1 end },
        { "1893456000", function(t) return t == 1893456000 end },
        { "2030-01-02", function(t) return t == 1893542400 end },
        { "+30d", function(t) return math.abs(t - (os.time() + 30 * DAY)) <= 60 end },
        { "+12h", function(t) return math.abs(t - (os.time() + 12 * 3600)) <= 60 end },
      }
      for _, c in ipairs(cases) do
        local before = m:key(1)
        assert_ok(run { "update", "1", "--expires", c[1] })
        local after = m:key(1)
        assert.is_true(c[2](after.expired_time), c[1] .. " -> " .. tostring(after.expired_time))
        assert_only_changed(before, after, { expired_time = after.expired_time })
      end
    end)

    it("takes status names and numbers", function()
      assert_ok(run { "update", "1", "--status", "disabled" })
      assert.are.equal(2, m:key(1).status)
      assert_ok(run { "update", "1", "--status", "1" })
      assert.are.equal(1, m:key(1).status)
      assert_ok(run { "update", "2", "--status", "Enabled" })
      assert.are.equal(1, m:key(2).status)
      m:clear_requests()
      assert_fails(run { "update", "1", "--status", "paused" }, 2, "--status")
      assert.are.equal(0, sent())
    end)

    it("re-enables an expired key with a new expiry in one command", function()
      assert_ok(run { "update", "3", "--expires", "+30d", "--status", "enabled" })
      local row = m:key(3)
      assert.are.equal(1, row.status)
      assert.is_true(row.expired_time > os.time())
    end)

    it("refuses with a conflict when --expect does not match", function()
      local before = m:key(1)
      local r = run { "update", "1", "--name", "x", "--expect", "name=wrong" }
      assert_fails(r, 1, "conflict", "name")
      assert.are.equal(0, sent("PUT"))
      assert.are.same(before, m:key(1))
      assert_ok(run { "update", "1", "--name", "x", "--expect", "name=production", "--expect", "status=enabled",
        "--expect", "remain_quota=500000", "--expect", "unlimited_quota=off" })
      assert.are.equal("x", m:key(1).name)
    end)

    it("--dry-run prints the diff and the plan and writes nothing", function()
      local before = m:key(1)
      local r = run { "update", "1", "--name", "dry", "--quota", "42", "--status", "disabled", "--dry-run" }
      assert_ok(r)
      assert.is_truthy(r.stdout:find('name%s+"production" %-> "dry"'), r.stdout)
      assert.is_truthy(r.stdout:find("remain_quota%s+500000 %-> 42"), r.stdout)
      assert.is_truthy(r.stdout:find("status%s+1 %(enabled%) %-> 2 %(disabled%)"), r.stdout)
      assert.is_truthy(r.stdout:find("PUT /api/token/?status_only=1", 1, true), r.stdout)
      assert.is_truthy(r.stdout:find('PUT /api/token/ {', 1, true), r.stdout)
      assert.are.equal(0, sent("PUT"))
      assert.are.equal(sent(), sent("GET"))
      assert.are.same(before, m:key(1))

      local j = run { "update", "1", "--name", "dry", "--dry-run", "--json" }
      assert_ok(j)
      local plan = decode(j.stdout)
      assert.is_true(plan.dry_run)
      assert.are.equal("production", plan.diff.name.from)
      assert.are.equal("dry", plan.diff.name.to)
      assert.are.equal("PUT", plan.requests[1].method)
      assert.are.equal("dry", plan.requests[1].body.name)
      assert.are.equal(0, sent("PUT"))
    end)

    it("needs at least one field", function()
      assert_fails(run { "update", "1" }, 2, "nothing to change")
      assert_fails(run { "update", "1", "--expect", "name=production" }, 2, "nothing to change")
      assert.are.equal(0, sent())
    end)
  end)

  describe("enable and disable", function()
    it("change the status of several keys", function()
      local r = run { "disable", "1", "5", "6" }
      assert_ok(r)
      for _, id in ipairs { 1, 5, 6 } do
        assert.are.equal(2, m:key(id).status, "key " .. id)
        assert.is_truthy(r.stdout:find(id .. " disabled\n", 1, true), r.stdout)
      end
      assert.are.equal(2, m:key(2).status) -- untouched keys keep theirs
      assert.are.equal(3, m:key(3).status)
      assert.is_falsy(r.stderr:find("\r", 1, true), "no progress bar without a terminal")
      assert_ok(run { "enable", "1", "5", "6", "2" })
      for _, id in ipairs { 1, 2, 5, 6 } do assert.are.equal(1, m:key(id).status, "key " .. id) end
    end)

    it("report each failed key and exit 1", function()
      local r = run { "enable", "3", "1", "999" }
      assert.are.equal(1, r.code)
      assert.are.equal(1, m:key(1).status)
      assert.are.equal(3, m:key(3).status)
      assert.is_truthy(r.stderr:find("key 3: ", 1, true), r.stderr)
      assert.is_truthy(r.stderr:find("key 999: ", 1, true), r.stderr)
      assert.are.equal(3, #lines(r.stderr))
      local j = run { "disable", "1", "999", "--json" }
      local report = decode(j.stdout)
      assert.is_true(report[1].ok)
      assert.is_false(report[2].ok)
    end)

    it("draw a progress bar when stderr is a terminal", function()
      local r = run({ "disable", "1", "5" }, { tty = true })
      assert.are.equal(0, r.code, r.stdout)
      assert.is_truthy(r.stdout:find("] 2/2", 1, true), r.stdout)
      assert.are.equal(2, m:key(5).status)
    end)

    it("show the wait in the progress bar when the client is paced (rate_limit from the profile)", function()
      local dir = TMP .. "/paced"
      os.execute("mkdir -p " .. shell_quote(dir .. "/cometkey"))
      write_file(dir .. "/cometkey/config", "[default]\nrate_limit = 2/1\n")
      local r = run({ "disable", "1", "2", "3", "5", "6" }, { tty = true, env = { XDG_CONFIG_HOME = dir } })
      assert.are.equal(0, r.code, r.stdout)
      assert.is_truthy(r.stdout:find("s left (paced to the server's rate limit)", 1, true), r.stdout)
      assert.is_truthy(r.stdout:find("] 5/5", 1, true), r.stdout)
    end)

    it("refuse bad ids before sending anything", function()
      assert_fails(run { "disable", "1", "x" }, 2, "positive integer")
      assert.are.equal(0, sent())
    end)
  end)

  describe("delete", function()
    it("deletes with --yes", function()
      local r = run { "delete", "1", "2", "--yes" }
      assert_ok(r)
      assert.is_true(deleted(1))
      assert.is_true(deleted(2))
      assert.is_false(deleted(3))
    end)

    it("refuses without a terminal unless --yes", function()
      assert_fails(run { "delete", "1" }, 2, "--yes")
      assert.are.equal(0, sent())
      assert.is_false(deleted(1))
    end)

    it("asks y/N on a terminal", function()
      local no = run({ "delete", "1" }, { tty = true, input = "n\n" })
      assert.are.equal(1, no.code, no.stdout)
      assert.is_truthy(no.stdout:find("production", 1, true), no.stdout)
      assert.is_false(deleted(1))
      assert.are.equal(0, sent("DELETE"))
      local yes = run({ "delete", "1" }, { tty = true, input = "y\n" })
      assert.are.equal(0, yes.code, yes.stdout)
      assert.is_true(deleted(1))
    end)
  end)

  describe("check-ip", function()
    it("prints allowed (exit 0) or denied (exit 3)", function()
      local a = run { "check-ip", "5", "10.1.2.3" }
      assert.are.equal(0, a.code, a.stderr)
      assert.are.equal("allowed\n", a.stdout)
      local b = run { "check-ip", "5", "192.168.1.10" }
      assert.are.equal("allowed\n", b.stdout)
      local d = run { "check-ip", "5", "8.8.8.8" }
      assert.are.equal(3, d.code, d.stderr)
      assert.are.equal("denied\n", d.stdout)
      local v6 = run { "check-ip", "5", "::ffff:10.9.9.9" }
      assert.are.equal("allowed\n", v6.stdout)
    end)

    it("treats an empty allowlist as no restriction", function()
      for _, id in ipairs { "1", "2" } do -- "" and null
        local r = run { "check-ip", id, "203.0.113.7" }
        assert.are.equal(0, r.code, r.stderr)
        assert.are.equal("allowed\n", r.stdout)
      end
    end)

    it("ignores invalid stored entries but stays restricted", function()
      m:set_keys { { id = 9, name = "odd", allow_ips = "1.2.3.4:80\n10.0.0.1" } }
      assert.are.equal("allowed\n", run({ "check-ip", "9", "10.0.0.1" }).stdout)
      local d = run { "check-ip", "9", "1.2.3.4" }
      assert.are.equal(3, d.code)
      assert.is_truthy(d.stderr:find("1.2.3.4:80", 1, true), d.stderr)
    end)

    it("refuses a bad address before sending anything", function()
      assert_fails(run { "check-ip", "5", "10.0.0.0/8" }, 2, "not an IP address")
      assert_fails(run { "check-ip", "5", "300.1.1.1" }, 2, "not an IP address")
      assert.are.equal(0, sent())
    end)
  end)

  describe("bad input", function()
    it("exits 2 and sends nothing", function()
      local cases = {
        { { "list", "--frobnicate" }, "unknown flag --frobnicate" },
        { { "--name", "x", "list" }, "before the command" },
        { { "get", "abc" }, "positive integer" },
        { { "get" }, "missing ID" },
        { { "get", "1", "2" }, "unexpected argument" },
        { { "update", "1", "--quota", "lots" }, "--quota" },
        { { "update", "1", "--quota", "-5" }, "remain_quota" },
        { { "update", "1", "--expires", "tomorrow" }, "--expires" },
        { { "update", "1", "--expires", "0" }, "expired_time" },
        { { "update", "1", "--name", ("x"):rep(51) }, "50 bytes" },
        { { "update", "1", "--models", "a,,b" }, "model_limits" },
        { { "update", "1", "--allow-ip", "1.2.3.999" }, "allow_ips" },
        { { "update", "1", "--unlimited", "--limited" }, "cannot be combined" },
        { { "update", "1", "--models", "a", "--no-models" }, "cannot be combined" },
        { { "update", "1", "--cross-group-retry", "maybe" }, "on or off" },
        { { "update", "1", "--name", "a", "--name", "b" }, "given twice" },
        { { "update", "1", "--name", "a", "--expect", "stauts=1" }, "unknown field" },
        { { "update", "1", "--name", "a", "--expect", "remain_quota=x" }, "remain_quota" },
        { { "update", "1", "--dry-run=yes", "--name", "a" }, "takes no value" },
        { { "create", "--name", "" }, "name" },
        { { "--timeout", "0", "list" }, "--timeout" },
        { { "--user-id", "bob", "list" }, "--user-id" },
      }
      for _, c in ipairs(cases) do
        local r = run(c[1])
        assert.are.equal(2, r.code, table.concat(c[1], " "))
        assert_fails(r, 2, c[2])
        assert.are.equal(0, sent(), table.concat(c[1], " ") .. " sent a request")
      end
    end)

    it("exits 2 without a token", function()
      local r = run({ "list" }, { env = { COMETAPI_ACCESS_TOKEN = false } })
      assert_fails(r, 2, "COMETAPI_ACCESS_TOKEN", "--token-file")
      assert.are.equal(0, sent())
    end)

    it("refuses --token without echoing its value", function()
      for _, args in ipairs { { "--token", "sekrit-value-123", "list" }, { "list", "--token=sekrit-value-123" } } do
        local r = run(args)
        assert_fails(r, 2, "--token", "COMETAPI_ACCESS_TOKEN")
        assert.is_falsy(r.stderr:find("sekrit-value-123", 1, true))
      end
      assert.are.equal(0, sent())
    end)
  end)

  describe("credentials", function()
    local path = TMP .. "/token"

    it("reads the token from --token-file (first line, trimmed)", function()
      write_file(path, "  " .. m.token .. "  \nsecond line\n")
      os.execute("chmod 600 " .. shell_quote(path))
      local r = run({ "--token-file", path, "list" }, { env = { COMETAPI_ACCESS_TOKEN = false } })
      assert_ok(r)
      assert.are.equal("", r.stderr)
      assert.are.equal(#live_keys() + 1, #lines(r.stdout))
      -- the file wins over the environment
      local r2 = run({ "list", "--token-file", path }, { env = { COMETAPI_ACCESS_TOKEN = "wrong-token" } })
      assert_ok(r2)
    end)

    it("refuses a token file others can read or write, also through a symlink, before sending", function()
      write_file(path, m.token .. "\n")
      local link = TMP .. "/token-link"
      os.remove(link)
      assert(sys.execute("ln -s " .. shell_quote(path) .. " " .. shell_quote(link)))
      for _, mode in ipairs { "644", "640", "604", "620", "660" } do
        os.execute("chmod " .. mode .. " " .. shell_quote(path))
        for _, p in ipairs { path, link } do
          local r = run({ "--token-file", p, "get", "1" }, { env = { COMETAPI_ACCESS_TOKEN = false } })
          assert_fails(r, 2, "chmod 600", "refusing")
          assert.is_truthy(r.stderr:find("mode " .. mode, 1, true), r.stderr)
        end
      end
      os.execute("chmod 600 " .. shell_quote(path))
      assert_ok(run({ "--token-file", link, "get", "1" }, { env = { COMETAPI_ACCESS_TOKEN = false } }))
      assert.are.equal(1, sent())
    end)

    it("refuses a token file owned by another user", function()
      if not sys.is_root() then return pending("needs root to give a file away") end
      write_file(path, m.token .. "\n")
      os.execute("chmod 600 " .. shell_quote(path) .. " && chown 12345 " .. shell_quote(path))
      local r = run({ "--token-file", path, "get", "1" }, { env = { COMETAPI_ACCESS_TOKEN = false } })
      os.execute("chown 0 " .. shell_quote(path))
      assert_fails(r, 2, "uid 12345", "not to you")
      assert.are.equal(0, sent())
    end)

    it("exits 2 for a missing or empty token file", function()
      assert_fails(run { "--token-file", TMP .. "/nope", "list" }, 2, "token file")
      write_file(path, "\n")
      os.execute("chmod 600 " .. shell_quote(path))
      assert_fails(run { "--token-file", path, "list" }, 2, "empty")
      assert.are.equal(0, sent())
    end)

    it("exits 1 when the server refuses the token", function()
      assert_fails(run({ "list" }, { env = { COMETAPI_ACCESS_TOKEN = "not-the-token" } }), 1, "auth")
    end)

    it("-v shows request lines and never the token", function()
      write_file(path, m.token .. "\n")
      os.execute("chmod 600 " .. shell_quote(path))
      local runs = {
        run { "-v", "list" },
        run { "update", "1", "--name", "v", "-v" },
        run({ "--verbose", "--token-file", path, "get", "1" }, { env = { COMETAPI_ACCESS_TOKEN = false } }),
        run { "-v", "get", "999" },
      }
      for i, r in ipairs(runs) do
        assert.is_truthy(r.stderr:find("GET /api/token/", 1, true), "run " .. i .. ": " .. r.stderr)
        assert.is_falsy((r.stdout .. r.stderr):find(m.token, 1, true), "token shown in run " .. i)
      end
      assert.is_truthy(runs[2].stderr:find("PUT /api/token/", 1, true))
      assert.are.equal("", run({ "list" }).stderr, "no request lines without -v")
    end)
  end)

  describe("connection", function()
    it("accepts global flags before and after the command", function()
      local env = { env = { COMETAPI_BASE_URL = false } }
      assert_ok(run({ "--base-url", m.url, "get", "1" }, env))
      assert_ok(run({ "get", "1", "--base-url=" .. m.url, "--timeout", "5" }, env))
    end)

    it("exits 1 on a network failure", function()
      local closed = { env = { COMETAPI_BASE_URL = "http://127.0.0.1:" .. sys.free_port() } }
      local r = run({ "--timeout", "5", "list" }, closed)
      assert_fails(r, 1, "network")
      local g = run({ "get", "1" }, { env = { COMETAPI_BASE_URL = "http://127.0.0.1:" .. sys.free_port() } })
      assert_fails(g, 1, "network")
    end)

    it("sends the user id from --user-id or COMETAPI_USER_ID", function()
      m:config { require_user_header = true }
      assert_fails(run({ "get", "1" }, { env = { COMETAPI_USER_ID = false } }), 1, "auth")
      assert_ok(run({ "--user-id", tostring(m.user_id), "get", "1" }, { env = { COMETAPI_USER_ID = false } }))
      assert_ok(run({ "get", "1" }, { env = { COMETAPI_USER_ID = tostring(m.user_id) } }))
      local headers = m:requests()[#m:requests()].headers
      assert.are.equal(tostring(m.user_id), headers["new-api-user"])
    end)

    it("--insecure turns TLS verification off, with a warning", function()
      local r = run { "--insecure", "get", "1" }
      assert_ok(r)
      assert.is_truthy(r.stderr:find("TLS verification is disabled", 1, true), r.stderr)
      assert.are.equal("", run({ "get", "1" }).stderr)
    end)

    it("exits 2 for a base URL the library refuses", function()
      assert_fails(run({ "list" }, { env = { COMETAPI_BASE_URL = "http://example.com" } }), 2, "http://")
    end)
  end)


  describe("in process (cometkey.cli.main)", function()
    it("returns exit statuses instead of exiting", function()
      assert.are.equal(0, call({ "--help" }).code)
      assert.are.equal(2, call({}).code)
      local r = call { "get", "1", "--json" }
      assert_ok(r)
      assert.are.equal(1, decode(r.stdout).id)
      assert.are.equal(1, call({ "get", "999999" }).code)
    end)

    it("--help and --version work without the C modules", function()
      local saved = package.cpath
      package.cpath = ""
      local loaded_core = package.loaded["cometkey.core"]
      local ok, r, v = pcall(function()
        return call { "--help" }, call { "--version" }
      end)
      package.cpath = saved
      assert.is_true(ok, tostring(r))
      assert_ok(r)
      assert.is_truthy(r.stdout:find("usage: cometkey", 1, true))
      assert.is_truthy(v.stdout:match("^cometkey %d+%.%d+%.%d+\n$"), v.stdout)
      assert.are.equal(loaded_core, package.loaded["cometkey.core"])
    end)

    it("says which build to make when the C modules are for another Lua", function()
      local luajit_build = "build/5.4"
      local p = io.popen("cd " .. shell_quote(ROOT) .. " && CK_BUILD=" .. luajit_build .. " COMETAPI_ACCESS_TOKEN=x "
        .. "luajit bin/cometkey list 2>&1; echo rc=$?")
      local text = p:read("*a")
      p:close()
      assert.is_truthy(text:find("built for Lua 5.4", 1, true), text)
      assert.is_truthy(text:find("make build-luajit", 1, true), text)
      assert.is_truthy(text:find("rc=1", 1, true), text)
      assert.are.equal(0, sent())
    end)
  end)

  describe("secrets in output", function()
    it("--json masks keys in list, get, search, create and update unless --show-key", function()
      local row = m:key(5)
      for _, args in ipairs {
        { "list", "--json" }, { "get", "5", "--json" }, { "search", row.name, "--json" },
        { "update", "5", "--quota", "7", "--json" },
      } do
        local r = call(args)
        assert_ok(r)
        assert.is_falsy(r.stdout:find(row.key, 1, true), table.concat(args, " ") .. " leaked the key")
        assert.is_truthy(r.stdout:find(fmt.mask(row.key), 1, true), table.concat(args, " "))
      end
      local c = call { "create", "--name", "fresh", "--json" }
      assert_ok(c)
      local created = decode(c.stdout)
      assert.is_truthy(created.key:find("*", 1, true), c.stdout)
      local shown = call { "get", "5", "--json", "--show-key" }
      assert_ok(shown)
      assert.are.equal(row.key, decode(shown.stdout).key)
      local listed = call { "list", "--json", "--show-key" }
      assert.is_truthy(listed.stdout:find(row.key, 1, true))
    end)

    it("--show-key reveals a key the server masks (or says it cannot)", function()
      local row = m:key(5)
      m:config { masked_keys = true }
      local r = call { "get", "5", "--show-key" }
      local Client = require "cometkey.client"
      if type(Client.reveal) == "function" then
        assert_ok(r)
        assert.is_truthy(r.stdout:find(row.key, 1, true), r.stdout)
      else
        assert_fails(r, 1, "masks keys", "reveal")
      end
      local masked = call { "get", "5" }
      assert_ok(masked)
      assert.is_falsy(masked.stdout:find(row.key, 1, true))
    end)

    it("reveals through client:reveal when the key came masked", function()
      local lib = require "cometkey.cli.lib"
      local asked = {}
      local client = { reveal = function(_, id) asked[#asked + 1] = id return "sk-full-secret-1234" end }
      assert.are.equal("sk-full-secret-1234", lib.reveal(client, { id = 7, key = "sk-f**********1234" }))
      assert.are.same({ 7 }, asked)
      assert.are.equal("sk-plain-0123456789", lib.reveal(client, { id = 8, key = "sk-plain-0123456789" }))
      assert.are.same({ 7 }, asked, "an unmasked key needs no request")
    end)
  end)

  describe("terminal injection", function()
    local EVIL = { "\27]0;owned\7", "\27[2J", "\194\155" .. "31m", "\226\128\174" .. "gnp.exe", "\226\129\166x" }

    local function assert_clean(text, what)
      for i = 1, #text do
        local b = text:byte(i)
        assert.is_false((b < 32 and b ~= 10) or b == 127, what .. ": raw control character in " .. text)
      end
      assert.is_falsy(text:find("\194[\128-\159]"), what .. ": raw C1 control")
      assert.is_falsy(text:find("\226\128[\170-\174]"), what .. ": raw bidi override")
      assert.is_falsy(text:find("\226\129[\166-\169]"), what .. ": raw bidi isolate")
    end

    it("escapes server text in the table, the key view and the delete prompt", function()
      local keys = {}
      for i, e in ipairs(EVIL) do
        keys[i] = { id = 40 + i, name = "n" .. e, group = "g" .. e, model_limits = "m" .. e, allow_ips = "1.2.3.4" }
      end
      m:set_keys(keys)
      for _, args in ipairs { { "list" }, { "get", "41" }, { "get", "44" } } do
        local r = call(args)
        assert_ok(r)
        assert_clean(r.stdout, table.concat(args, " "))
        assert_clean(r.stderr, table.concat(args, " "))
      end
      assert.is_truthy(call({ "get", "41" }).stdout:find("n\\x1b]0;owned\\x07", 1, true))
      assert.is_truthy(call({ "get", "44" }).stdout:find("n\\u202egnp.exe", 1, true))
      local d = call({ "delete", "41", "42", "43", "44", "45" }, { tty = true, input = "n" })
      assert.are.equal(1, d.code)
      assert.is_truthy(d.stderr:find("nothing deleted", 1, true))
      assert_clean(d.stderr, "delete prompt")
      assert.is_truthy(d.stderr:find("n\\x1b[2J", 1, true), d.stderr)
    end)

    it("escapes server error messages", function()
      m:fault { type = "status", status = 200,
        body = '{"success":false,"message":"x\\u001b]0;owned\\u0007\\u009b31m\\u202eevil"}' }
      local r = call { "get", "3" }
      assert.are.equal(1, r.code)
      assert_clean(r.stderr, "error")
      assert.are.equal(1, #lines(r.stderr))
    end)

    it("refuses control characters in a name before sending", function()
      for _, name in ipairs { "a\27b", "tab\there", "a\127" } do
        assert_fails(call { "create", "--name", name }, 2, "name", "control characters")
        assert_fails(call { "update", "1", "--name", name }, 2, "name", "control characters")
      end
      assert.are.equal(0, sent())
    end)
  end)

  describe("errors", function()
    it("list and search failures keep their kind and request id, like get", function()
      local bad = { env = { COMETAPI_ACCESS_TOKEN = "not-the-token" } }
      for _, args in ipairs { { "list" }, { "get", "1" }, { "search", "x" } } do
        local r = call(args, bad)
        assert_fails(r, 1, "auth: ", "(request id ")
      end
      local closed = { env = { COMETAPI_BASE_URL = "http://127.0.0.1:" .. sys.free_port() } }
      assert_fails(call({ "--timeout", "2", "list" }, closed), 1, "network: ")
    end)

    it("suggests --allow-http, and --allow-http reaches the library", function()
      local r = call({ "list" }, { env = { COMETAPI_BASE_URL = "http://example.com" } })
      assert_fails(r, 2, "--allow-http")
      assert.is_falsy(r.stderr:find("allow_http = true", 1, true))
      local conf = cli.settings({ getenv = function() end }, { allow_http = true, base_url = "http://example.com" })
      assert.is_true(conf.allow_http)
      conf.token = "t0ken-for-options-only"
      local client = require("cometkey").new(conf) -- sends nothing
      client:close()
      assert.are.equal(0, sent())
    end)

    it("an --expect conflict names no request, since none was sent", function()
      local r = call { "update", "1", "--quota", "5", "--expect", "remain_quota=999999" }
      assert_fails(r, 1, "conflict: ", "remain_quota", "nothing was sent")
      assert.is_falsy(r.stderr:find("PUT", 1, true), r.stderr)
      assert.are.equal(0, sent("PUT"))
    end)

    it("a wrong route (bare 404) is kind http with the base_url hint, not a missing key", function()
      local r = call({ "get", "1" }, { env = { COMETAPI_BASE_URL = m.url .. "/not-the-api" } })
      assert_fails(r, 1, "http: ", "HTTP 404", "check base_url")
      assert.is_falsy(r.stderr:find("not_found", 1, true), r.stderr)
      assert_fails(call { "get", "999999" }, 1, "not_found: ")
    end)

    it("-v shows the query of status-only requests in response lines", function()
      local r = call { "-v", "disable", "1" }
      assert_ok(r)
      assert.is_truthy(r.stderr:find("<- PUT /api/token/?status_only=1 (HTTP 200", 1, true), r.stderr)
    end)
  end)

  describe("profiles", function()
    local dir = TMP .. "/xdg"
    local function config(text)
      os.execute("mkdir -p " .. shell_quote(dir .. "/cometkey"))
      write_file(dir .. "/cometkey/config", text)
    end
    local no_env = { COMETAPI_BASE_URL = false, COMETAPI_ACCESS_TOKEN = false, COMETAPI_USER_ID = false,
      XDG_CONFIG_HOME = dir }

    it("reads base_url, user_id and token_file from [default], --profile or COMETKEY_PROFILE", function()
      write_file(TMP .. "/ptoken", m.token .. "\n")
      os.execute("chmod 600 " .. shell_quote(TMP .. "/ptoken"))
      config("# cometkey profiles\n[default]\nbase_url = " .. m.url .. "\nuser_id = " .. m.user_id
        .. "\ntoken_file = " .. TMP .. "/ptoken\n\n[broken]\nuser_id = " .. m.user_id
        .. "\nbase_url = http://127.0.0.1:"
        .. sys.free_port()
        .. "\ntoken_file = " .. TMP .. "/ptoken\n")
      m:config { require_user_header = true }
      assert_ok(call({ "get", "1" }, { env = no_env }))
      assert.are.equal(tostring(m.user_id), m:requests()[#m:requests()].headers["new-api-user"])
      assert_fails(call({ "--timeout", "2", "--profile", "broken", "get", "1" }, { env = no_env }), 1, "network")
      local env = {}
      for k, v in pairs(no_env) do env[k] = v end
      env.COMETKEY_PROFILE = "broken"
      assert_fails(call({ "--timeout", "2", "get", "1" }, { env = env }), 1, "network")
      -- flags and the environment win over the profile
      env.COMETAPI_BASE_URL = m.url
      assert_ok(call({ "get", "1" }, { env = env }))
    end)

    it("never takes the token from the config file", function()
      config("[default]\nbase_url = " .. m.url .. "\ntoken = " .. m.token .. "\n")
      local r = call({ "get", "1" }, { env = no_env })
      assert_fails(r, 2, "config:3", "never read from the config file", "token_file")
      assert.is_falsy(r.stderr:find(m.token, 1, true))
      assert.are.equal(0, sent())
    end)

    it("names unknown profiles and keys, with suggestions", function()
      config("[staging]\nbase_url = " .. m.url .. "\n[prod]\nbase_url = x\n")
      assert_fails(call({ "--profile", "stagign", "list" }, { env = no_env }), 2, "did you mean staging?")
      config("[prod]\nbsae_url = x\n")
      assert_fails(call({ "--profile", "prod", "list" }, { env = no_env }), 2, "config:2", "unknown key", "base_url?")
      config("[x]\nrate_limit = fast\n")
      assert_fails(call({ "--profile", "x", "list" }, { env = no_env }), 2, "rate_limit", "180/180")
      assert.are.equal(0, sent())
    end)

    it("reads rate_limit as requests/seconds", function()
      local profile = require "cometkey.cli.profile"
      assert.are.same({ requests = 180, seconds = 180 }, profile.rate_limit("180/180"))
      assert.are.same({ requests = 10, seconds = 60 }, profile.rate_limit("10 / 60s"))
      assert.is_nil(profile.rate_limit("0/10"))
      config("[default]\nrate_limit = 180/180\n")
      local conf = cli.settings({ getenv = function(n) return ({ XDG_CONFIG_HOME = dir })[n] end }, {})
      assert.are.same({ requests = 180, seconds = 180 }, conf.rate_limit)
    end)
  end)

  describe("completion", function()
    local function complete(words, cword)
      local script = call({ "completion", "bash" }).stdout
      write_file(TMP .. "/complete.bash", script)
      local quoted = {}
      for i, w in ipairs(words) do quoted[i] = shell_quote(w) end
      local cmd = "source " .. shell_quote(TMP .. "/complete.bash") .. "; COMP_WORDS=(" .. table.concat(quoted, " ")
        .. "); COMP_CWORD=" .. cword .. "; _cometkey; printf '%s\\n' \"${COMPREPLY[@]}\""
      local p = io.popen("XDG_CONFIG_HOME=" .. shell_quote(TMP .. "/xdg") .. " bash -c " .. shell_quote(cmd))
      local out = p:read("*a")
      p:close()
      local set = {}
      for w in out:gmatch("[^\n]+") do set[w] = true end
      return set
    end

    it("bash completes commands, flags and values", function()
      local c = complete({ "cometkey", "" }, 1)
      for _, name in ipairs(cli.commands.list) do assert.is_true(c[name], name) end
      assert.is_true(complete({ "cometkey", "up" }, 1).update)
      local f = complete({ "cometkey", "update", "12", "--ex" }, 3)
      assert.is_true(f["--expect"])
      assert.is_true(f["--expires"])
      assert.is_nil(f["--yes"], "delete's flag is not update's")
      assert.is_true(complete({ "cometkey", "delete", "--" }, 2)["--yes"])
      local s = complete({ "cometkey", "update", "1", "--status", "e" }, 4)
      assert.is_true(s.enabled)
      assert.is_true(s.expired)
      assert.is_nil(s.disabled)
      assert.is_true(complete({ "cometkey", "--base-url", "http://x", "ch" }, 3)["check-ip"])
      assert.is_true(complete({ "cometkey", "completion", "" }, 2).fish)
      os.execute("mkdir -p " .. shell_quote(TMP .. "/xdg/cometkey"))
      write_file(TMP .. "/xdg/cometkey/config", "[default]\n[staging]\nbase_url = https://x\n")
      local p = complete({ "cometkey", "--profile", "" }, 2)
      assert.is_true(p.staging)
      assert.is_true(p.default)
    end)

    it("zsh and fish scripts name every command and flag", function()
      local zsh, fish = call({ "completion", "zsh" }), call({ "completion", "fish" })
      assert_ok(zsh)
      assert_ok(fish)
      assert.is_truthy(zsh.stdout:find("^#compdef cometkey\n"))
      for _, name in ipairs(cli.commands.list) do
        assert.is_truthy(zsh.stdout:find("'" .. name .. ":", 1, true), name)
        assert.is_truthy(fish.stdout:find(" -a " .. name .. " ", 1, true), name)
        for _, f in ipairs(cli.commands.by_name[name].flags) do
          assert.is_truthy(zsh.stdout:find(f[#f], 1, true), f[#f])
          if f[#f]:sub(1, 2) == "--" then assert.is_truthy(fish.stdout:find("-l " .. f[#f]:sub(3), 1, true)) end
        end
      end
      assert_fails(call { "completion", "tcsh" }, 2, "bash, zsh or fish")
    end)
  end)

  describe("niceties", function()
    it("suggests commands and flags", function()
      assert_fails(call { "lsit" }, 2, "did you mean list?")
      assert_fails(call { "udpate", "1" }, 2, "did you mean update?")
      assert_fails(call { "update", "1", "--quotta", "5" }, 2, "did you mean --quota?")
      assert_fails(call { "help", "serch" }, 2, "did you mean search?")
      assert_fails(call { "--verbsoe", "list" }, 2, "did you mean --verbose?")
      assert.are.equal(0, sent())
    end)

    it("--json on every data command, check-ip and delete included", function()
      local ok = call { "check-ip", "5", "10.1.2.3", "--json" }
      assert_ok(ok)
      assert.are.same({ id = 5, ip = "10.1.2.3", allowed = true, restricted = true, ignored = {} }, decode(ok.stdout))
      local no = call { "check-ip", "5", "8.8.8.8", "--json" }
      assert.are.equal(3, no.code)
      assert.is_false(decode(no.stdout).allowed)
      local d = call { "delete", "3", "--yes", "--json" }
      assert_ok(d)
      assert.are.same({ { id = 3, ok = true } }, decode(d.stdout))
      for _, name in ipairs(cli.commands.list) do
        local def = cli.commands.by_name[name]
        if not def.no_client then
          local has = false
          for _, f in ipairs(def.flags) do if f[1] == "--json" then has = true end end
          assert.is_true(has, name .. " has --json")
        end
      end
    end)

    it("merges repeated ids", function()
      assert_ok(call { "disable", "1", "2", "1", "01" })
      assert.are.equal(2, sent("PUT"))
      m:reset()
      local r = call { "delete", "3", "3", "--yes" }
      assert_ok(r)
      assert.are.equal("3 deleted\n", r.stdout)
      assert.are.equal(1, sent("DELETE") + sent("POST"))
    end)

    it("warns on a past expiry and on enabling what would be expired or exhausted", function()
      local now = os.time()
      local r = call({ "update", "1", "--expires", "2001-01-01", "--dry-run" }, { now = function() return now end })
      assert_ok(r)
      assert.is_truthy(r.stderr:find("warning: --expires 2001-01-01 00:00:00 UTC is in the past", 1, true), r.stderr)
      local e = call { "update", "1", "--status", "enabled", "--quota", "0", "--dry-run" }
      assert.is_truthy(e.stderr:find("exhausted", 1, true), e.stderr)
      local quiet = call { "update", "1", "--status", "enabled", "--expires", "+30d", "--dry-run" }
      assert.are.equal("", quiet.stderr)
      assert.are.equal(0, sent("PUT"))
    end)

    it("marks times as UTC and says when no key matches", function()
      local r = call { "list" }
      assert.is_truthy(r.stdout:find("EXPIRES (UTC)", 1, true))
      assert.is_truthy(call({ "get", "5" }).stdout:find(" UTC)\n", 1, true))
      assert.are.equal("no keys match\n", call({ "search", "no-such-key-anywhere" }).stdout)
      m:set_keys {}
      assert.are.equal("no keys match\n", call({ "list" }).stdout)
      assert.are.equal("[]\n", call({ "list", "--json" }).stdout)
    end)

    it("colours statuses on a terminal only, and never with NO_COLOR", function()
      local tty = call({ "list" }, { tty = true })
      assert.is_truthy(tty.stdout:find("\27[32menabled\27[0m", 1, true), tty.stdout)
      assert.is_falsy(call({ "list" }).stdout:find("\27", 1, true))
      assert.is_falsy(call({ "list" }, { tty = true, env = { NO_COLOR = "1" } }).stdout:find("\27", 1, true))
      assert.is_falsy(call({ "list" }, { tty = true, env = { TERM = "dumb" } }).stdout:find("\27", 1, true))
    end)

    it("has a man page naming every command and flag", function()
      local page = assert(read_file("docs/cometkey.1"), "docs/cometkey.1")
      assert.is_truthy(page:find('\n%.TH COMETKEY 1 '))
      for _, name in ipairs(cli.commands.list) do
        assert.is_truthy(page:find("\n.SS " .. name, 1, true) or page:find("\n.B " .. name, 1, true), name)
        for _, f in ipairs(cli.commands.by_name[name].flags) do
          assert.is_truthy(page:find(f[#f]:gsub("%-", "\\-"), 1, true), name .. " " .. f[#f])
        end
      end
      for _, f in ipairs(require("cometkey.cli.args").GLOBAL_FLAGS) do
        assert.is_truthy(page:find(f[#f]:gsub("%-", "\\-"), 1, true), f[#f])
      end
      if os.execute("command -v groff >/dev/null 2>&1") then
        local p = io.popen("groff -man -Tutf8 -ww -z docs/cometkey.1 2>&1")
        local warnings = p:read("*a")
        p:close()
        assert.are.equal("", warnings)
      end
    end)
  end)

  describe("mock", function()
    it("is only available in a source checkout", function()
      local dir = TMP .. "/installed/bin"
      os.execute("mkdir -p " .. shell_quote(dir) .. " && cp bin/cometkey " .. shell_quote(dir))
      -- An installed copy: no tools/ beside it; the library comes from this checkout.
      os.execute("cd " .. shell_quote(ROOT) .. " && CK_BUILD=" .. CLI_BUILD
        .. " " .. CLI_LUA .. " -e 'package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path' "
        .. shell_quote(dir .. "/cometkey")
        .. " mock >" .. TMP .. "/out 2>" .. TMP .. "/err; echo $? >" .. TMP .. "/rc")
      assert.are.equal("2", read_file(TMP .. "/rc"):match("%d+"))
      assert.is_truthy(read_file(TMP .. "/err"):find("source checkout", 1, true))
    end)
  end)
end)
