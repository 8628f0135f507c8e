-- spec/reentry_spec.lua - Lua code that runs inside a C method (a metamethod of
-- the table it reads) and closes or reuses what the method is working on. The
-- method must raise cleanly or answer correctly; under valgrind (make valgrind)
-- these also show that no freed memory is touched and nothing leaks.
local curl = require "cometkey.curl"
local core = require "cometkey.core"

-- A request table whose fields come from __index, which first runs hook(key).
local function proxy_request(fields, hook)
  return setmetatable({}, {
    __index = function(_, key)
      hook(key)
      return fields[key]
    end,
  })
end

describe("cometkey.curl closed while it reads a request", function()
  local fields = {
    method = "PUT",
    url = "http://127.0.0.1:9/api/token/",
    body = ("x"):rep(100),
    headers = { ["Content-Type"] = "application/json", ["X-Number"] = 7 },
  }

  for _, key in ipairs { "method", "body", "headers", "url" } do
    it("perform raises 'client is closed' when req." .. key .. " closes it", function()
      local h = curl.new { token = core.secret("sk-reentry-token") }
      local req = proxy_request(fields, function(k)
        if k == key then h:close() end
      end)
      local ok, err = pcall(h.perform, h, req)
      assert.is_false(ok)
      assert.matches("cometkey: client is closed", err, 1, true)
      assert.are.equal("cometkey.curl (closed)", tostring(h))
      h:close()
      collectgarbage()
    end)

    it("multi_add raises 'client is closed' when req." .. key .. " closes it", function()
      local h = curl.new { token = core.secret("sk-reentry-token") }
      local req = proxy_request(fields, function(k)
        if k == key then h:close() end
      end)
      local ok, err = pcall(h.multi_add, h, 1, req)
      assert.is_false(ok)
      assert.matches("cometkey: client is closed", err, 1, true)
      assert.are.equal(0, h:multi_pending())
      h:close()
      collectgarbage()
    end)
  end

  it("multi_add keeps each request when req.url queues another one on the same handle", function()
    local h = curl.new {}
    local inner = { method = "GET", url = "http://127.0.0.1:9/inner" }
    local queued = false
    local outer = proxy_request({ method = "DELETE", url = "http://127.0.0.1:9/outer" }, function(k)
      if k == "url" and not queued then
        queued = true
        h:multi_add(2, inner)
      end
    end)
    assert.is_true(h:multi_add(1, outer))
    assert.are.equal(2, h:multi_pending())
    -- Both fail to connect (nothing listens on port 9); each reports its own request.
    local seen = {}
    for _ = 1, 20 do
      for _, r in ipairs(h:multi_wait(5)) do seen[r.tag] = r.err end
      if h:multi_pending() == 0 then break end
    end
    assert.matches("DELETE /outer", seen[1], 1, true)
    assert.matches("GET /inner", seen[2], 1, true)
    h:close()
  end)
end)

describe("cometkey.core.response with a request table made by metamethods", function()
  it("labels the message with the strings __index made, even if collected meanwhile", function()
    local request = setmetatable({}, {
      __index = function(_, key)
        collectgarbage() -- would free a string the mapper no longer anchors
        if key == "method" then return ("get"):upper() end
        if key == "path" then return "/api/token/" .. (40 + 2) end
      end,
    })
    local value, message, info = core.response("get", { status = 500, body = "", request = request })
    assert.is_nil(value)
    assert.are.equal("cometkey: GET /api/token/42: server error (HTTP 500) with an empty body", message)
    assert.are.equal("http", info.kind)
  end)
end)
