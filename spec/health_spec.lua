-- spec/health_spec.lua: `:checkhealth cometkey` (lua/cometkey/health.lua) in a real
-- headless Neovim: once with the LuaJIT build, a token and the mock's URL (all OK),
-- once with the Lua 5.4 build, no token and a closed port (the errors say what to do).
-- Needs nvim (0.7+) and curl; builds build/luajit and build/5.4 if missing.
local mock = require "spec.support.mock"
local sys = require "spec.support.sys"

local read_file, shell_quote, execute = sys.read_file, sys.quote, sys.execute

local REPO = sys.capture("pwd")

describe(":checkhealth cometkey", function()
  local m, dir

  -- The report as text; env: extra environment (a value of false removes it).
  local function checkhealth(build, env, url)
    local out = dir .. "/health.txt"
    os.remove(out)
    local parts = { "cd", shell_quote(dir), "&&", "env", "-u", "COMETAPI_ACCESS_TOKEN", "-u", "COMETKEY_HEALTH_URL" }
    for k, v in pairs(env) do
      if v then parts[#parts + 1] = shell_quote(k .. "=" .. v) end
    end
    local cpath = "package.cpath='" .. REPO .. "/" .. build .. "/?.so;'..package.cpath"
    parts[#parts + 1] = "timeout -k 5 30 nvim --headless --clean -u NONE -i NONE -n --cmd "
      .. shell_quote("set rtp^=" .. REPO) .. " -c " .. shell_quote("lua " .. cpath)
    if url then parts[#parts + 1] = "-c " .. shell_quote("let g:cometkey_health_url = '" .. url .. "'") end
    parts[#parts + 1] = "-c 'checkhealth cometkey' -c " .. shell_quote("w! " .. out)
      .. " -c 'qa!' </dev/null >/dev/null 2>&1"
    execute(table.concat(parts, " "))
    return assert(read_file(out), "nvim wrote no report")
  end

  lazy_setup(function()
    assert(execute("command -v nvim >/dev/null 2>&1"), "nvim is not installed (Debian package neovim)")
    for _, b in ipairs { "luajit", "5.4" } do
      if not read_file("build/" .. b .. "/cometkey/core.so") then
        assert(execute("make --no-print-directory -s build-" .. b .. " >/dev/null"), "make build-" .. b)
      end
    end
    dir = sys.temp_dir("cometkey-health")
    m = mock.start {}
  end)

  lazy_teardown(function()
    if m then m:stop() end
    if dir then sys.remove_dir(dir) end
  end)

  it("reports OK with the LuaJIT build, curl, a token and a reachable server", function()
    local report = checkhealth("build/luajit", { COMETAPI_ACCESS_TOKEN = m.token }, m.url)
    assert.is_truthy(report:find("OK: cometkey.core %d+%.%d+%.%d+ loads in LuaJIT"), report)
    assert.is_truthy(report:find("OK: curl found", 1, true), report)
    assert.is_truthy(report:find("OK: COMETAPI_ACCESS_TOKEN is set", 1, true), report)
    assert.is_truthy(report:find("OK: " .. m.url .. " answers (HTTP 401", 1, true), report)
    assert.is_falsy(report:find("ERROR", 1, true), report)
    assert.is_falsy(report:find(m.token, 1, true), "the token is never shown")
    local seen = false
    for _, e in ipairs(m:requests()) do
      if e.uri == "/api/token/" and e.auth_present == false then seen = true end
    end
    assert.is_true(seen, "the check reached the mock")
  end)

  it("says which build to make, and what is missing, when things are wrong", function()
    local closed = "http://127.0.0.1:" .. sys.free_port()
    local report = checkhealth("build/5.4", {}, closed)
    assert.is_truthy(report:find("ERROR: cometkey.core does not load", 1, true), report)
    assert.is_truthy(report:find("built for Lua 5.4", 1, true), report)
    assert.is_truthy(report:find("make build-luajit", 1, true), report)
    assert.is_truthy(report:find("WARNING: COMETAPI_ACCESS_TOKEN is not set", 1, true), report)
    assert.is_truthy(report:find("ERROR: " .. closed .. " does not answer", 1, true), report)
  end)

  it("does not contact any server unless asked", function()
    local before = #m:requests()
    local report = checkhealth("build/luajit", { COMETAPI_ACCESS_TOKEN = m.token })
    assert.is_truthy(report:find("not checked", 1, true), report)
    assert.are.equal(before, #m:requests())
  end)
end)
