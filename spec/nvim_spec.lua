-- spec/nvim_spec.lua: cometkey inside Neovim without blocking the editor. Starts the
-- mock server with delays, runs `nvim --headless` on spec/support/nvim/run.lua (the
-- Neovim side: asynchronous calls through the nvim transport, a 50 ms ticker on the
-- main loop, a scan of curl's command lines) and checks the JSON it writes, and the
-- mock's stored records. Needs nvim (0.7+) and curl; builds build/luajit if missing.
-- The busted side uses only os, io, luasocket (through the mock) and lua-cjson.
local cjson = require "cjson.safe"
local mock = require "spec.support.mock"
local certs_lib = require "spec.support.certs"
local sys = require "spec.support.sys"

local read_file, shell_quote, execute, process_alive = sys.read_file, sys.quote, sys.execute, sys.process_alive

local REPO = sys.capture("pwd")
local BUILD = os.getenv("CK_NVIM_BUILD") or (REPO .. "/build/luajit") -- LuaJIT build of cometkey.core
local SCRIPTS = "spec/support/nvim/"
local CURL_ARGV = "curl\0-q\0--config\0-\0" -- the transport's whole command line

-- Those of pids that are still running the transport's curl command line.
local function running_curls(pids)
  local found = {}
  for _, pid in ipairs(pids) do
    pid = string.format("%d", pid)
    if read_file("/proc/" .. pid .. "/cmdline") == CURL_ARGV and process_alive(pid) then
      found[#found + 1] = pid
    end
  end
  return found
end

local function number(v) return tonumber(v) end

-- The shell command that runs one headless script (input file in dir, output in dir/log).
local function nvim_command(dir, script, log)
  return "cd " .. shell_quote(REPO) .. " && CK_NVIM_INPUT=" .. shell_quote(dir .. "/input.json")
    .. " timeout -k 5 30 nvim --headless --clean -u NONE -i NONE -n -c "
    .. shell_quote("luafile " .. SCRIPTS .. script) .. " </dev/null >" .. shell_quote(dir .. "/" .. log) .. " 2>&1"
end

describe("Neovim transport (nvim --headless, async on the editor's loop)", function()
  local m, m_tls, certs, dir, result, log, before, after, rows, exit_ok
  local plugin, plugin_log, plugin_after, plugin_exit_ok, plugin_requests

  lazy_setup(function()
    if not read_file(BUILD .. "/cometkey/core.so") then
      assert(execute("make --no-print-directory -s build-luajit >/dev/null"), "make build-luajit failed")
    end
    assert(execute("command -v nvim >/dev/null 2>&1"), "nvim is not installed (Debian package neovim)")
    assert(execute("command -v curl >/dev/null 2>&1"), "curl is not installed (Debian package curl)")

    -- A token of its own, so no other process on the machine can carry it by chance.
    local random = assert(io.open("/dev/urandom", "rb"))
    local token = "nvim-spec-" .. random:read(12):gsub(".", function(c) return string.format("%02x", c:byte()) end)
    random:close()
    m = mock.start { token = token }
    before = m:key(1)
    m:fault { type = "delay", match = "PUT /api/token/", seconds = 1 }    -- the update's write
    m:fault { type = "delay", match = "GET /api/token/5", seconds = 3 }   -- beyond a 0.5 s timeout
    m:fault { type = "delay", match = "GET /api/token/4", seconds = 3 }   -- cancelled by close()
    m:fault { type = "delay", match = "GET /api/token/3", seconds = 20 }  -- running when nvim quits

    certs = certs_lib.generate()
    m_tls = mock.start { tls = certs.server, token = m.token }

    dir = sys.temp_dir("cometkey-nvim") -- mode 0700
    local input = {
      repo = REPO, build = BUILD, url = m.url, token = m.token, user_id = m.user_id,
      result = dir .. "/result.json", plugin_result = dir .. "/plugin.json",
      ids = { update = 1, missing = 999999, slow = 5, cancel = 4, orphan = 3 },
      tls_url = m_tls.url, ca_file = certs.ca,
    }
    sys.write_file(dir .. "/input.json", assert(cjson.encode(input)))
    exit_ok = execute(nvim_command(dir, "run.lua", "nvim.log"))
    log = read_file(dir .. "/nvim.log") or ""
    result = cjson.decode(read_file(input.result) or "")
    after = m:key(1)
    rows = m:keys()

    plugin_exit_ok = execute(nvim_command(dir, "plugin.lua", "plugin.log"))
    plugin_log = read_file(dir .. "/plugin.log") or ""
    plugin = cjson.decode(read_file(input.plugin_result) or "")
    plugin_after = m:key(1)
    plugin_requests = m:requests()
  end)

  lazy_teardown(function()
    if m then m:stop() end
    if m_tls then m_tls:stop() end
    if certs then certs:cleanup() end
    sys.remove_dir(dir)
  end)

  local function step(name)
    assert.is_table(result, "no result from nvim; its output:\n" .. tostring(log))
    local rec = result.steps[name]
    assert.is_table(rec, "step " .. name .. " did not run; error: " .. tostring(result.error))
    return rec
  end

  it("runs every scenario to the end in nvim and exits cleanly", function()
    assert.is_table(result, "no result from nvim; its output:\n" .. tostring(log))
    assert.is_true(result.ok, tostring(result.error) .. "\n" .. log)
    assert.is_true(exit_ok, "nvim exited with an error:\n" .. log)
    assert.equal("nvim", result.transport)
    assert.is_false(result.curl_module_loaded) -- libcurl's module is never loaded in Neovim
  end)

  it("keeps the editor responsive during a 1 s update and calls back once, on the main loop", function()
    local rec = step("update")
    assert.equal(1, rec.calls)
    assert.equal(0, rec.returned_count) -- an asynchronous call returns nothing
    assert.is_nil(rec.err)
    assert.is_true(rec.elapsed >= 1.0, "the delayed update took only " .. tostring(rec.elapsed) .. " s")
    assert.is_true(rec.call_seconds < 0.2, "client:update took " .. tostring(rec.call_seconds) .. " s to return")
    assert.is_false(rec.before_return)
    assert.is_true(rec.ticks >= 10, "only " .. tostring(rec.ticks) .. " ticks of 50 ms during the update")
    assert.is_true(rec.keys >= 10, "only " .. tostring(rec.keys) .. " typed keys handled during the update")
    assert.is_false(rec.context.fast)
    assert.is_true(rec.context.api_ok)
    assert.is_false(rec.has_vim_nil)
  end)

  it("delivers the updated key and changes nothing but the name on the server", function()
    local key = step("update").key
    assert.is_table(key)
    assert.equal("from-nvim", key.name)
    assert.equal("from-nvim", after.name)
    assert.are_not.equal(before.name, after.name)
    for field, value in pairs(before) do
      if field ~= "name" then
        assert.same(value, after[field], "stored field " .. field .. " changed")
      end
    end
    for _, field in ipairs { "id", "status", "expired_time", "remain_quota", "unlimited_quota",
      "model_limits_enabled", "model_limits", "group", "cross_group_retry" } do
      assert.equal(number(after[field]) or after[field], number(key[field]) or key[field],
        "callback's key differs from the stored record in " .. field)
    end
  end)

  it("never shows the token on a command line while curl runs", function()
    local seen = step("update") and result.processes
    assert.is_table(seen)
    assert.is_true(seen.scans >= 5, "the process scan ran " .. tostring(seen.scans) .. " times")
    assert.is_true(seen.curl_children >= 1, "no curl child was seen during the delayed request")
    assert.is_false(seen.token_in_cmdline, "token seen in: " .. table.concat(seen.token_cmdlines or {}, " | "))
    for _, cmdline in ipairs(seen.cmdlines) do
      assert.equal("curl -q --config - ", cmdline)
    end
  end)

  it("never puts the token in curl's environment or in a file curl has open", function()
    local seen = step("update") and result.processes
    assert.is_true(seen.environs >= 1, "no curl environment was read")
    assert.is_false(seen.token_in_environ)
    assert.same({}, seen.files) -- pipes and sockets only: no temporary file, no file under /tmp
  end)

  it("reports a missing key through the callback's err and info", function()
    local rec = step("not_found")
    assert.equal(1, rec.calls)
    assert.is_string(rec.err)
    assert.truthy(rec.err:find("^cometkey: "), rec.err)
    assert.equal("not_found", rec.info.kind)
    assert.is_nil(rec.value)
    assert.is_false(rec.context.fast)
  end)

  it("lists the keys the mock holds, newest first", function()
    local rec = step("list")
    assert.equal(1, rec.calls)
    assert.is_nil(rec.err)
    local want = {}
    for _, row in ipairs(rows) do
      if row.user_id == m.user_id and not row.deleted then want[#want + 1] = row.id end
    end
    table.sort(want, function(a, b) return a > b end)
    assert.is_true(#want > 1)
    assert.equal(#want, rec.total)
    local got = {}
    for i, id in ipairs(rec.ids) do got[i] = number(id) end
    assert.same(want, got)
  end)

  it("fails with kind timeout when the server is slower than the timeout", function()
    local rec = step("timeout")
    assert.equal(1, rec.calls)
    assert.is_string(rec.err)
    assert.equal("timeout", rec.info.kind)
    assert.is_true(rec.elapsed >= 0.45 and rec.elapsed < 2.5, "took " .. tostring(rec.elapsed) .. " s")
  end)

  it("kills a running request on close() and reports it once", function()
    local rec = step("cancel")
    assert.equal(1, rec.calls)
    assert.is_string(rec.err)
    assert.truthy(rec.err:find("closed", 1, true), rec.err)
    assert.is_true(rec.elapsed < 2.5, "took " .. tostring(rec.elapsed) .. " s")
  end)

  it("still answers synchronous calls (they wait with vim.wait)", function()
    assert.is_table(result.steps.sync, "the synchronous step did not run")
    assert.is_nil(result.steps.sync.err)
    assert.equal("from-nvim", result.steps.sync.name)
  end)

  it("speaks HTTPS: verifies with ca_file, fails with kind tls without it", function()
    local ok_rec, bad = step("tls_ok"), step("tls_untrusted")
    assert.equal(1, ok_rec.calls)
    assert.is_nil(ok_rec.err)
    assert.equal(m_tls:key(1).name, ok_rec.name)
    assert.equal(1, bad.calls)
    assert.is_string(bad.err)
    assert.equal("tls", bad.info.kind)
  end)

  it("raises for a synchronous call made inside a luv callback", function()
    local rec = step("sync_in_fast")
    assert.is_true(rec.raised)
    assert.truthy(rec.err:find("pass a callback", 1, true), rec.err)
  end)

  it("hands out cometkey.null as a userdata distinct from vim.NIL", function()
    assert.is_table(result)
    assert.equal("userdata", result.null.type)
    assert.is_false(result.null.is_vim_nil)
  end)

  describe("example plugin (examples/nvim)", function()
    local function notes()
      assert.is_table(plugin, "no result from the plugin run; its output:\n" .. tostring(plugin_log))
      assert.is_true(plugin.ok, tostring(plugin.error) .. "\n" .. plugin_log)
      assert.is_true(plugin_exit_ok, "nvim exited with an error:\n" .. plugin_log)
      local out = {}
      for i, note in ipairs(plugin.notes) do out[i] = note end
      return out
    end

    it("defines its commands and lists the keys in a scratch buffer without waiting", function()
      notes()
      assert.is_true(plugin.commands_defined)
      assert.is_true(plugin.list_returned_ms < 200, ":CometkeyList took " .. plugin.list_returned_ms .. " ms")
      local body = table.concat(plugin.list_lines, "\n")
      local listed = 0
      for _, row in ipairs(rows) do
        if row.user_id == m.user_id and not row.deleted then
          listed = listed + 1
          assert.truthy(body:find("\n" .. row.id .. " ", 1, true), "key " .. row.id .. " not listed:\n" .. body)
        end
      end
      assert.equal(listed + 2, #plugin.list_lines) -- a summary line, a header line, one line per key
    end)

    it("disables and enables a key, and reports bad or missing ids as errors", function()
      local n = notes()
      local ERROR = 4 -- vim.log.levels.ERROR
      local function find(pattern)
        for _, note in ipairs(n) do
          if note.message:find(pattern) then return note end
        end
      end
      local disabled = find("^cometkey: key 1 %(from%-nvim%) is now disabled$")
      local enabled = find("^cometkey: key 1 %(from%-nvim%) is now enabled$")
      assert.is_table(disabled, "no 'disabled' note")
      assert.is_table(enabled, "no 'enabled' note")
      assert.equal(1, plugin_after.status)
      local statuses = {} -- the status-only writes the mock received for key 1, in order
      for _, req in ipairs(plugin_requests) do
        local body = req.method == "PUT" and type(req.body) == "string" and cjson.decode(req.body)
        if body and req.query:find("status_only", 1, true) and number(body.id) == 1 then
          statuses[#statuses + 1] = number(body.status)
        end
      end
      assert.same({ 2, 1 }, statuses)
      local bad = find("expected a key id")
      assert.is_table(bad)
      assert.equal(ERROR, bad.level)
      local missing = n[#n]
      assert.equal(ERROR, missing.level)
      assert.truthy(missing.message:find("^cometkey: "), missing.message)
      assert.truthy(missing.message:find("(no such key)", 1, true), missing.message)
    end)
  end)

  it("leaves no nvim or curl process behind, even with a request running at exit", function()
    assert.is_table(result)
    assert.is_number(number(result.pid), "nvim reported no pid")
    assert.is_false(process_alive(result.pid), "nvim is still running")
    assert.is_number(result.orphan_pid, "no request was running when nvim quit")
    assert.is_false(process_alive(result.orphan_pid), "the curl started before quitting is still running")
    assert.is_true(#result.spawned >= 10, "only " .. #result.spawned .. " curl processes were started")
    assert.same({}, running_curls(result.spawned))
  end)
end)
