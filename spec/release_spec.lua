-- spec/release_spec.lua: the release shape — the annotations check that `make lint`
-- runs (tools/check-annotations.lua) passes here and fails on an unannotated public
-- function, and both rockspecs ship every module under lua/ with one version.
local sys = require "spec.support.sys"

local read_file, write_file, shell_quote = sys.read_file, sys.write_file, sys.quote

local function run_check(root)
  local p = io.popen("lua5.4 tools/check-annotations.lua " .. shell_quote(root) .. " 2>&1; echo rc=$?")
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), out
end

describe("tools/check-annotations.lua", function()
  local tmp

  before_each(function()
    tmp = sys.temp_dir("cometkey-annotations")
    assert(sys.execute("mkdir -p " .. shell_quote(tmp .. "/lua/cometkey")))
    for _, f in ipairs { "lua/cometkey.lua", "lua/cometkey/client.lua", "lua/cometkey/types.lua" } do
      write_file(tmp .. "/" .. f, assert(read_file(f)))
    end
  end)

  after_each(function() sys.remove_dir(tmp) end)

  it("passes on this checkout", function()
    local code, out = run_check(".")
    assert.are.equal(0, code, out)
  end)

  it("fails on a public function or method without an annotation", function()
    local src = read_file(tmp .. "/lua/cometkey.lua")
    write_file(tmp .. "/lua/cometkey.lua",
      src:gsub("\nreturn M%s*$", "\nfunction M.brand_new(x) return x end\nreturn M\n"))
    local code, out = run_check(tmp)
    assert.are.equal(1, code, out)
    assert.is_truthy(out:find("cometkey.brand_new has no annotation", 1, true), out)
    -- annotated in the source itself: accepted
    write_file(tmp .. "/lua/cometkey.lua", src:gsub("\nreturn M%s*$",
      "\n---@param x any\nfunction M.brand_new(x) return x end\nreturn M\n"))
    assert.are.equal(0, (run_check(tmp)))
    local client = read_file(tmp .. "/lua/cometkey/client.lua")
    write_file(tmp .. "/lua/cometkey/client.lua", client:gsub("\nreturn Client%s*$",
      "\nfunction Client:frobnicate() end\nfunction Client:_private() end\nreturn Client\n"))
    code, out = run_check(tmp)
    assert.are.equal(1, code, out)
    assert.is_truthy(out:find("Client:frobnicate", 1, true), out)
    assert.is_falsy(out:find("_private", 1, true), out)
  end)

  it("fails on a stub that leaves a parameter undocumented", function()
    local types = read_file(tmp .. "/lua/cometkey/types.lua")
    write_file(tmp .. "/lua/cometkey/types.lua", (types:gsub("%-%-%-@param id integer\n", "", 1)))
    local code, out = run_check(tmp)
    assert.are.equal(1, code, out)
    assert.is_truthy(out:find("no ---@param id", 1, true), out)
  end)
end)

describe("rockspecs", function()
  local function modules(rockspec)
    local text = assert(read_file(rockspec), rockspec)
    local found = {}
    for name, path in text:gmatch('%["([%w_.]+)"%]%s*=%s*"(lua/[^"]+)"') do found[name] = path end
    return found, text
  end

  it("cometkey-0.2.0-1 and scm-1 ship every Lua module of lua/", function()
    local p = io.popen("find lua -name '*.lua' | sort")
    local files = {}
    for f in p:lines() do files[#files + 1] = f end
    p:close()
    for _, rockspec in ipairs { "cometkey-0.2.0-1.rockspec", "cometkey-scm-1.rockspec" } do
      local mods = modules(rockspec)
      local shipped = {}
      for _, path in pairs(mods) do shipped[path] = true end
      for _, f in ipairs(files) do assert.is_true(shipped[f], rockspec .. " misses " .. f) end
      for name, path in pairs(mods) do
        local want = path:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
        assert.are.equal(want, name, rockspec)
      end
    end
  end)

  it("one version everywhere: the versioned rockspec, the C core, the library and the tool", function()
    local _, text = modules("cometkey-0.2.0-1.rockspec")
    assert.is_truthy(text:find('\nversion = "0.2.0%-1"'), "rockspec version")
    assert.is_truthy(text:find('tag = "v0.2.0"', 1, true), "rockspec source tag")
    local core_h = assert(read_file("src/ck_core.h"))
    assert.are.equal("0.2.0", core_h:match('#define CK_VERSION "([^"]+)"'))
    assert.are.equal("0.2.0", require("cometkey.cli").VERSION)
    assert.are.equal("cometkey 0.2.0", require("cometkey")._VERSION)
    local scm = select(2, modules("cometkey-scm-1.rockspec"))
    assert.is_truthy(scm:find('\nversion = "scm%-1"'))
  end)
end)
