--- The OpenResty example itself (examples/openresty/) in a real nginx, started the
-- way its README says: examples/openresty/run.sh, which writes the resolver line from
-- resolv.conf (a fake one here: tests never reach another address) and runs nginx on
-- a copy of nginx.conf. Against the mock: the disable endpoint, and the update
-- endpoint that takes a JSON body (400 with every problem, nothing sent).
-- nginx loads the LuaJIT build of the C core (made here if missing).
local socket = require "socket"
local cjson = require "cjson.safe"
local mock_lib = require "spec.support.mock"
local sys = require "spec.support.sys"

local read_file, write_file, shell_quote, capture = sys.read_file, sys.write_file, sys.quote, sys.capture

local REPO = capture("pwd")

-- One HTTP/1.0 request -> status, decoded JSON body (or the raw text).
local function request(port, method, path, body)
  local c = socket.tcp()
  c:settimeout(10)
  assert(c:connect("127.0.0.1", port))
  local head = method .. " " .. path .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n"
  if body then head = head .. "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n" end
  assert(c:send(head .. "\r\n" .. (body or "")))
  local data, _, partial = c:receive("*a")
  c:close()
  data = data or partial
  local status = tonumber(data:match("^HTTP/%d%.%d (%d%d%d)"))
  local text = data:match("\r\n\r\n(.*)$") or ""
  return status, cjson.decode(text) or text
end

local function run_sh(env, args)
  local parts = { "cd", shell_quote(REPO), "&&", "env" }
  for k, v in pairs(env) do parts[#parts + 1] = shell_quote(k .. "=" .. v) end
  parts[#parts + 1] = "sh examples/openresty/run.sh " .. (args or "")
  return table.concat(parts, " ")
end

describe("examples/openresty in nginx #nginx #novalgrind", function()
  local mock, dir, port, pid

  setup(function()
    local out = capture("make --no-print-directory -s build-luajit 2>&1; echo \"exit=$?\"")
    assert(out:match("exit=0%s*$"), "make build-luajit failed:\n" .. out)
    mock = mock_lib.start()
    dir = sys.temp_dir("cometkey-example")
    write_file(dir .. "/resolv.conf", "# written by the spec\nsearch example\nnameserver 127.0.0.1\n")
    port = sys.free_port()
    local env = {
      RESOLV_CONF = dir .. "/resolv.conf", COMETKEY_EXAMPLE_DIR = dir, COMETKEY_EXAMPLE_PORT = tostring(port),
      COMETKEY_TOKEN = mock.token, COMETKEY_BASE_URL = mock.url, COMETKEY_USER_ID = tostring(mock.user_id),
    }
    pid = tonumber((capture(run_sh(env) .. " >" .. shell_quote(dir .. "/nginx.log") .. " 2>&1 & echo $!")))
    local up = sys.wait_for(function() return sys.port_answers(port) end, 10, 0.05)
    assert(up, "the example nginx did not start:\n" .. (read_file(dir .. "/nginx.log") or ""))
  end)

  teardown(function()
    if pid then sys.stop_process(pid, 5) end
    if mock then mock:stop() end
    if dir then sys.remove_dir(dir) end
    assert(not (pid and sys.process_alive(pid)), "the example nginx is still running")
  end)

  before_each(function() mock:reset() end)

  local function puts()
    local n = 0
    for _, e in ipairs(mock:requests()) do
      if e.method == "PUT" then n = n + 1 end
    end
    return n
  end

  it("takes its resolver from resolv.conf", function()
    assert.are.equal("resolver 127.0.0.1 ipv6=off;\n", read_file(dir .. "/resolver.conf"))
    write_file(dir .. "/v6.conf", "nameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\n")
    local line = (capture(run_sh({ RESOLV_CONF = dir .. "/v6.conf" }, "--resolver")))
    assert.are.equal("resolver 10.0.0.2 [fe80::1] [2001:db8::53] ipv6=off;", line)
    write_file(dir .. "/empty.conf", "search lan\n")
    local err = capture(run_sh({ RESOLV_CONF = dir .. "/empty.conf" }, "--resolver") .. " 2>&1; echo rc=$?")
    assert.is_truthy(err:find("no nameserver line", 1, true), err)
    assert.is_truthy(err:find("rc=1", 1, true), err)
    local conf = read_file(dir .. "/nginx.conf")
    assert.is_truthy(conf:find("include resolver.conf;", 1, true))
    assert.is_falsy(conf:find("\n%s*resolver ", 1), "no fixed resolver directive")
  end)

  it("disables a key", function()
    local status, body = request(port, "POST", "/admin/keys/5/disable")
    assert.are.equal(200, status, cjson.encode(body))
    assert.are.equal(2, body.status)
    assert.are.equal(2, mock:key(5).status)
  end)

  it("updates the fields of a JSON body, and only those", function()
    local before = mock:key(5)
    local status, body = request(port, "POST", "/admin/keys/5", '{"remain_quota": 777, "name": "from-body"}')
    assert.are.equal(200, status, cjson.encode(body))
    assert.are.equal(777, body.remain_quota)
    local after = mock:key(5)
    assert.are.equal(777, after.remain_quota)
    assert.are.equal("from-body", after.name)
    for _, f in ipairs { "expired_time", "allow_ips", "model_limits", "group", "status", "unlimited_quota" } do
      assert.are.same(before[f], after[f], f)
    end
  end)

  it("answers 400 with every problem, and sends nothing", function()
    local status, body = request(port, "POST", "/admin/keys/5",
      '{"remain_quota": -5, "status": "sleepy", "colour": "blue"}')
    assert.are.equal(400, status, cjson.encode(body))
    assert.are.equal("invalid fields", body.error)
    local fields = {}
    for _, p in ipairs(body.problems) do fields[p.field] = p.message end
    assert.is_truthy(fields.remain_quota, cjson.encode(body))
    assert.is_truthy(fields.status, cjson.encode(body))
    assert.is_truthy(fields.colour, cjson.encode(body))
    for _, bad in ipairs { "not json", "[1, 2]", '"a string"', "" } do
      local s, b = request(port, "POST", "/admin/keys/5", bad)
      assert.are.equal(400, s, bad)
      assert.is_string(b.error, bad)
    end
    local s, b = request(port, "POST", "/admin/keys/5", '{"id": 6, "name": "x"}')
    assert.are.equal(400, s)
    assert.is_truthy(b.error:find("path", 1, true))
    assert.are.equal(0, puts())
  end)

  it("maps a missing key to 404", function()
    local status, body = request(port, "POST", "/admin/keys/999999", '{"name": "x"}')
    assert.are.equal(404, status, cjson.encode(body))
    assert.are.equal("not_found", body.kind)
  end)
end)
