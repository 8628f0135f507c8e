-- Specs of the local CometAPI token-API mock (spec/support/mock*): the launcher, the server's
-- reproduction of new-api's token endpoints, the admin API and every fault type.
-- Run from the repository root: lua5.4 /usr/bin/busted --lpath='lua/?.lua' spec/mock_spec.lua

local mock = require "spec.support.mock"
local sys = require "spec.support.sys"
local socket = require "socket"
local cjson = require "cjson.safe"

local json = mock.json

local function encode(v)
  if type(v) == "string" then
    return v
  end
  return json.encode(v)
end

local process_alive, dir_exists = sys.process_alive, sys.dir_exists

-- Sends raw bytes on a fresh connection and reads until the server closes it (or timeout).
-- Returns everything received and the final socket error ("closed" or "timeout").
local function raw_exchange(port, text, timeout)
  local c = socket.tcp()
  c:settimeout(timeout or 5)
  assert(c:connect("127.0.0.1", port))
  assert(c:send(text))
  local chunks = {}
  while true do
    local data, err, partial = c:receive(8192)
    if data then
      chunks[#chunks + 1] = data
    else
      if partial and #partial > 0 then
        chunks[#chunks + 1] = partial
      end
      c:close()
      return table.concat(chunks), err
    end
  end
end

local function split_response(raw)
  local head, body = raw:match("^(.-\r\n)\r\n(.*)$")
  local headers = {}
  for name, value in (head or ""):gmatch("([%w%-]+):%s*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  return tonumber((head or ""):match("^HTTP/1%.%d (%d+)")), headers, body
end

local function dechunk(body)
  local out, pos = {}, 1
  while true do
    local size_hex, after = body:match("^(%x+)\r\n()", pos)
    local size = tonumber(size_hex or "", 16)
    if not size or size == 0 then
      return table.concat(out), #out
    end
    out[#out + 1] = body:sub(after, after + size - 1)
    pos = after + size + 2
  end
end

describe("mock launcher", function()
  it("starts on a free loopback port, answers, and stops cleanly (idempotent)", function()
    local m = mock.start()
    assert.matches("^http://127%.0%.0%.1:%d+$", m.url)
    assert.equal("http://127.0.0.1:" .. m.port, m.url)
    assert.equal("mock-token-0123456789abcdef", m.token)
    assert.equal(1, m.user_id)
    assert.truthy(process_alive(m.pid))
    assert.truthy(dir_exists(m.dir))
    local status = m:http("GET", "/api/token/", { headers = { Authorization = m.token, ["New-Api-User"] = "1" } })
    assert.equal(200, status)
    m:stop()
    assert.falsy(process_alive(m.pid))
    assert.falsy(dir_exists(m.dir))
    m:stop()
    local c = socket.tcp()
    c:settimeout(0.5)
    assert.is_nil(c:connect("127.0.0.1", m.port))
    c:close()
  end)

  it("accepts a port, a token and seed keys, and rejects unknown options", function()
    local port = sys.free_port()
    local m = mock.start{ port = port, token = "tok-xyz",
      keys = { { name = "only", remain_quota = 7 } } }
    finally(function() m:stop() end)
    assert.equal(port, m.port)
    assert.equal("tok-xyz", m.token)
    local keys = m:keys()
    assert.equal(1, #keys)
    assert.equal("only", keys[1].name)
    assert.equal(7, keys[1].remain_quota)
    local status, body = m:http("GET", "/api/token/", { headers = { Authorization = "tok-xyz",
      ["New-Api-User"] = "1" } })
    assert.equal(200, status)
    assert.equal(1, cjson.decode(body).data.total)
    assert.has_error(function() mock.start{ prot = 1 } end, "mock.start: unknown option 'prot'")
  end)

  it("raises a clear error with nginx's log when the port is taken", function()
    local taken = assert(socket.bind("127.0.0.1", 0))
    local _, port = taken:getsockname()
    local ok, err = pcall(mock.start, { port = tonumber(port) })
    taken:close()
    assert.is_false(ok)
    assert.matches("nginx error log", err)
    assert.matches("Address already in use", err)
  end)

  it("exposes nginx's error log", function()
    local m = mock.start()
    finally(function() m:stop() end)
    assert.matches("nginx/%d", m:error_log())
  end)

  it("stops nginx by itself when the launching process dies", function()
    local cmd = [[lua5.4 -e 'local m = dofile("spec/support/mock.lua").start{}
      io.write(m.pid, " ", m.dir, "\n") io.stdout:flush()
      local f = io.open("/proc/self/stat") io.write(f:read("*a"):match("^%d+"), "\n") io.stdout:flush()
      require("socket").sleep(30)' & ]]
    local p = io.popen(cmd)
    local nginx_pid, dir = p:read("*l"):match("^(%d+) (%S+)$")
    local lua_pid = p:read("*l")
    nginx_pid = tonumber(nginx_pid)
    assert.truthy(process_alive(nginx_pid))
    os.execute("kill -KILL " .. lua_pid)
    p:close()
    sys.wait_for(function() return not process_alive(nginx_pid) end, 3, 0.05)
    assert.falsy(process_alive(nginx_pid))
    assert.falsy(dir_exists(dir))
  end)

  it("serves HTTPS with a given certificate (admin API stays plain HTTP)", function()
    local dir = sys.temp_dir("cometkey-mock-spec")
    local m
    finally(function()
      sys.remove_dir(dir)
      if m then
        m:stop()
      end
    end)
    assert.truthy(sys.execute("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
      .. " -keyout " .. dir .. "/key.pem -out " .. dir .. "/cert.pem >/dev/null 2>&1"))
    m = mock.start{ tls = { cert = dir .. "/cert.pem", key = dir .. "/key.pem" } }
    assert.matches("^https://127%.0%.0%.1:%d+$", m.url)
    local body = sys.capture("curl -sk -H 'Authorization: " .. m.token .. "' -H 'New-Api-User: 1' " .. m.url
      .. "/api/token/1")
    assert.equal("production", cjson.decode(body).data.name)
    assert.equal(1, #m:requests())
  end)
end)

describe("mock server", function()
  local m

  setup(function()
    m = mock.start()
  end)

  teardown(function()
    m:stop()
  end)

  before_each(function()
    m:reset()
  end)

  -- API call with the test token unless headers.Authorization is given (false: none), and
  -- New-Api-User = the test user unless headers["New-Api-User"] is given (false: none).
  local function api(method, path, body, headers)
    local h = {}
    for k, v in pairs(headers or {}) do
      h[k] = v
    end
    if h.Authorization == nil then
      h.Authorization = m.token
    elseif h.Authorization == false then
      h.Authorization = nil
    end
    if h["New-Api-User"] == nil then
      h["New-Api-User"] = tostring(m.user_id)
    elseif h["New-Api-User"] == false then
      h["New-Api-User"] = nil
    end
    local status, raw, response_headers = m:http(method, path, { headers = h,
      body = body ~= nil and encode(body) or nil })
    return status, cjson.decode(raw or ""), raw, response_headers
  end

  local function ids(items)
    local out = {}
    for i, item in ipairs(items) do
      out[i] = item.id
    end
    return out
  end

  local function many_keys(n)
    local rows = {}
    for i = 1, n do
      rows[i] = { id = i, name = "k" .. i }
    end
    rows[#rows + 1] = { id = n + 1, user_id = 2, name = "theirs" }
    m:set_keys(rows)
  end

  describe("routing", function()
    it("redirects a missing or extra slash like Gin (301 GET, 307 POST/PUT), query kept", function()
      local status, _, raw, h = api("GET", "/api/token?p=2")
      assert.equal(301, status)
      assert.equal("/api/token/?p=2", h.location)
      assert.matches("Moved Permanently", raw)
      status, _, _, h = api("POST", "/api/token", { name = "x" })
      assert.equal(307, status)
      assert.equal("/api/token/", h.location)
      status, _, _, h = api("PUT", "/api/token", { id = 1 })
      assert.equal(307, status)
      assert.equal("/api/token/", h.location)
      status, _, _, h = api("GET", "/api/token/5/", nil, { Authorization = false })
      assert.equal(301, status)
      assert.equal("/api/token/5", h.location)
      assert.equal(7, #m:keys()) -- the redirected POST created nothing: 7 seeded rows
    end)

    it("answers unknown routes with new-api's 404 JSON", function()
      local status, body = api("PATCH", "/api/token/")
      assert.equal(404, status)
      assert.equal("invalid_request_error", body.error.type)
      assert.equal("Invalid URL (PATCH /api/token/)", body.error.message)
    end)

    it("sets a unique X-Oneapi-Request-Id and a JSON content type", function()
      local _, _, _, h1 = api("GET", "/api/token/1")
      local _, _, _, h2 = api("GET", "/api/token/1")
      assert.truthy(h1["x-oneapi-request-id"])
      assert.not_equal(h1["x-oneapi-request-id"], h2["x-oneapi-request-id"])
      assert.equal("application/json; charset=utf-8", h1["content-type"])
    end)
  end)

  describe("authentication", function()
    it("401 JSON without Authorization", function()
      local status, body = api("GET", "/api/token/", nil, { Authorization = false })
      assert.equal(401, status)
      assert.same({ success = false,
        message = "Unauthorized, not logged in and no access token provided" }, body)
    end)

    it("HTTP 200 success:false for a wrong token; Bearer accepted, bearer not", function()
      local status, body = api("GET", "/api/token/", nil, { Authorization = "nope" })
      assert.equal(200, status)
      assert.same({ success = false, message = "Unauthorized, invalid access token" }, body)
      status, body = api("GET", "/api/token/", nil, { Authorization = "Bearer " .. m.token })
      assert.equal(200, status)
      assert.is_true(body.success)
      status, body = api("GET", "/api/token/", nil, { Authorization = "bearer " .. m.token })
      assert.equal(200, status)
      assert.is_false(body.success)
    end)

    it("applies the New-Api-User rules by default (2026 upstream)", function()
      local status, body = api("GET", "/api/token/", nil, { ["New-Api-User"] = false })
      assert.equal(401, status)
      assert.equal("Unauthorized, New-Api-User header not provided", body.message)
      status, body = api("GET", "/api/token/", nil, { ["New-Api-User"] = "alice" })
      assert.equal(401, status)
      assert.equal("Unauthorized, New-Api-User header format error", body.message)
      status, body = api("GET", "/api/token/", nil, { ["New-Api-User"] = "2" })
      assert.equal(401, status)
      assert.equal("Unauthorized, New-Api-User does not match logged in user", body.message)
      status, body = api("GET", "/api/token/", nil, { ["New-Api-User"] = "1" })
      assert.equal(200, status)
      assert.is_true(body.success)
    end)

    it("ignores New-Api-User on a 2025 server or when switched off; speaks Chinese in zh mode", function()
      m:config{ server = "2025" }
      local _, body = api("GET", "/api/token/", nil, { ["New-Api-User"] = "999" })
      assert.is_true(body.success)
      _, body = api("GET", "/api/token/", nil, { ["New-Api-User"] = false })
      assert.is_true(body.success)
      m:config{ server = "2026", require_user_header = false }
      _, body = api("GET", "/api/token/1", nil, { ["New-Api-User"] = false })
      assert.is_true(body.success)
      m:config{ language = "zh" }
      _, body = api("GET", "/api/token/", nil, { Authorization = "nope" })
      assert.equal("无权进行此操作，access token 无效", body.message)
    end)

    it("keeps users apart", function()
      local _, body = api("GET", "/api/token/", nil, { Authorization = m.other_token,
        ["New-Api-User"] = tostring(m.other_user_id) })
      assert.equal(1, body.data.total)
      assert.equal(2, body.data.items[1].user_id)
      _, body = api("GET", "/api/token/1", nil, { Authorization = m.other_token,
        ["New-Api-User"] = tostring(m.other_user_id) })
      assert.same({ success = false, message = "record not found" }, body)
    end)
  end)

  describe("list", function()
    it("defaults to 10 per page, newest first, with total and page echo", function()
      many_keys(25)
      local _, body = api("GET", "/api/token/")
      assert.equal(1, body.data.page)
      assert.equal(10, body.data.page_size)
      assert.equal(25, body.data.total)
      assert.same({ 25, 24, 23, 22, 21, 20, 19, 18, 17, 16 }, ids(body.data.items))
      _, body = api("GET", "/api/token/?p=3&page_size=10")
      assert.same({ 5, 4, 3, 2, 1 }, ids(body.data.items))
    end)

    it("caps page_size at 100, falls back to ps then size, and returns all for a negative size", function()
      many_keys(120)
      local _, body = api("GET", "/api/token/?page_size=500")
      assert.equal(100, body.data.page_size)
      assert.equal(100, #body.data.items)
      _, body = api("GET", "/api/token/?ps=7&size=3")
      assert.equal(7, body.data.page_size)
      _, body = api("GET", "/api/token/?size=3")
      assert.equal(3, #body.data.items)
      _, body = api("GET", "/api/token/?page_size=-1")
      assert.equal(-1, body.data.page_size)
      assert.equal(120, #body.data.items)
      _, body = api("GET", "/api/token/?page_size=abc&p=xyz")
      assert.equal(10, body.data.page_size)
      assert.equal(1, body.data.page)
    end)

    it("echoes a negative page and serves page 1 data; p=0 becomes 1", function()
      many_keys(12)
      local _, body = api("GET", "/api/token/?p=-2&page_size=5")
      assert.equal(-2, body.data.page)
      assert.same({ 12, 11, 10, 9, 8 }, ids(body.data.items))
      _, body = api("GET", "/api/token/?p=0")
      assert.equal(1, body.data.page)
    end)

    it("returns an empty items array past the end", function()
      local _, body, raw = api("GET", "/api/token/?p=9")
      assert.equal(6, body.data.total)
      assert.matches('"items":%[%]', raw)
    end)
  end)

  describe("get", function()
    it("returns the record with every field, in the server's order, integers exact", function()
      local status, body, raw = api("GET", "/api/token/6")
      assert.equal(200, status)
      assert.is_true(body.success)
      assert.equal("", body.message)
      assert.matches('"remain_quota":123456789012345,', raw)
      local order = { "id", "user_id", "key", "status", "name", "created_time", "accessed_time",
        "expired_time", "remain_quota", "unlimited_quota", "model_limits_enabled", "model_limits",
        "allow_ips", "used_quota", "group", "cross_group_retry", "auto_groups", "DeletedAt" }
      local last = 0
      for _, field in ipairs(order) do
        local pos = raw:find('"' .. field .. '":', 1, true)
        assert.truthy(pos, field)
        assert.truthy(pos > last, field .. " out of order")
        last = pos
      end
      assert.matches('"auto_groups":%[%],"DeletedAt":null}}$', raw)
      local full = m:key(6).key -- masked in every answer (2026-03+)
      assert.equal(full:sub(1, 4) .. "**********" .. full:sub(-4), body.data.key)
      assert.matches("^[%w]+$", full)
      assert.equal(48, #full)
    end)

    it("returns null allow_ips as null", function()
      local _, _, raw = api("GET", "/api/token/2")
      assert.matches('"allow_ips":null', raw)
    end)

    it("gives Go's texts for bad ids", function()
      local _, body = api("GET", "/api/token/abc")
      assert.equal('strconv.Atoi: parsing "abc": invalid syntax', body.message)
      _, body = api("GET", "/api/token/0")
      assert.equal("id 或 userId 为空！", body.message)
      _, body = api("GET", "/api/token/99")
      assert.equal("record not found", body.message)
      _, body = api("GET", "/api/token/7") -- the other user's key
      assert.equal("record not found", body.message)
    end)

    it("masks keys in masked_keys mode and reveals them with POST /api/token/:id/key", function()
      local full = m:key(1).key
      m:config{ masked_keys = true }
      local _, body = api("GET", "/api/token/1")
      assert.equal(full:sub(1, 4) .. "**********" .. full:sub(-4), body.data.key)
      _, body = api("POST", "/api/token/1/key")
      assert.equal(full, body.data.key)
    end)
  end)

  describe("search", function()
    it("matches exactly without %, fuzzy with %, newest first, paged", function()
      local _, body = api("GET", "/api/token/search?keyword=production")
      assert.same({ 1 }, ids(body.data.items))
      assert.equal(1, body.data.total)
      _, body = api("GET", "/api/token/search?keyword=prod")
      assert.same({}, ids(body.data.items))
      _, body = api("GET", "/api/token/search?keyword=prod%25")
      assert.same({ 1 }, ids(body.data.items))
      _, body = api("GET", "/api/token/search?keyword=%25key")
      assert.same({ 4, 3 }, ids(body.data.items))
      _, body = api("GET", "/api/token/search?keyword=%25key&page_size=1&p=2")
      assert.same({ 3 }, ids(body.data.items))
      assert.equal(2, body.data.total)
    end)

    it("treats _ literally and matches the token with or without sk-", function()
      local _, body = api("GET", "/api/token/search?keyword=expired_key")
      assert.same({}, ids(body.data.items))
      local key = m:key(5).key
      _, body = api("GET", "/api/token/search?token=sk-" .. key)
      assert.same({ 5 }, ids(body.data.items))
      _, body = api("GET", "/api/token/search?token=" .. key:sub(1, 10) .. "%25")
      assert.same({ 5 }, ids(body.data.items))
    end)

    it("rejects bad patterns with the Chinese texts", function()
      local _, body = api("GET", "/api/token/search?keyword=%25%25ab")
      assert.equal("搜索模式中不允许包含连续的 % 通配符", body.message)
      _, body = api("GET", "/api/token/search?keyword=a%25b%25c%25d")
      assert.equal("搜索模式中最多允许包含 2 个 % 通配符", body.message)
      _, body = api("GET", "/api/token/search?keyword=%25a")
      assert.equal("使用模糊搜索时，关键词长度至少为 2 个字符", body.message)
      m:config{ max_tokens = 3 }
      _, body = api("GET", "/api/token/search?keyword=%25key")
      assert.equal("令牌数量超过上限，仅允许精确搜索，请勿使用 % 通配符", body.message)
    end)

    it("returns a bare array with LIKE %kw% in array style", function()
      m:config{ search_style = "array" }
      local _, body = api("GET", "/api/token/search?keyword=key")
      assert.same({ 3, 4 }, ids(body.data))
      _, body = api("GET", "/api/token/search?keyword=")
      assert.equal(6, #body.data)
    end)
  end)

  describe("create", function()
    it("returns only success and message, and stores the defaults", function()
      local before = os.time()
      local status, _, raw = api("POST", "/api/token/", { name = "new", remain_quota = 10,
        allow_ips = mock.null, status = 2, key = "x", id = 77, user_id = 2, used_quota = 9 })
      assert.equal(200, status)
      assert.equal('{"success":true,"message":""}', raw)
      local row = m:key(8)
      assert.equal("new", row.name)
      assert.equal(1, row.user_id)
      assert.equal(1, row.status)
      assert.equal(-1, row.expired_time)
      assert.equal("", row.allow_ips)
      assert.equal(0, row.used_quota)
      assert.matches("^[%w]+$", row.key)
      assert.equal(48, #row.key)
      assert.truthy(row.created_time >= before and row.created_time <= os.time() + 1)
      assert.equal(row.created_time, row.accessed_time)
      assert.is_nil(m:key(77))
    end)

    it("turns expired_time 0 into -1, keeps a past expiry, and increases ids", function()
      api("POST", "/api/token/", { name = "a", expired_time = 0 })
      api("POST", "/api/token/", { name = "b", expired_time = 1000 })
      assert.equal(-1, m:key(8).expired_time)
      assert.equal(1000, m:key(9).expired_time)
      assert.equal("b", m:key(9).name)
    end)

    it("limits names to 50 bytes (CJK counts 3 bytes a character)", function()
      local _, body = api("POST", "/api/token/", { name = string.rep("a", 50) })
      assert.is_true(body.success)
      _, body = api("POST", "/api/token/", { name = string.rep("a", 51) })
      assert.same({ success = false, message = "Token name is too long" }, body)
      _, body = api("POST", "/api/token/", { name = string.rep("键", 16) })
      assert.is_true(body.success)
      _, body = api("POST", "/api/token/", { name = string.rep("键", 17) })
      assert.equal("Token name is too long", body.message)
      assert.equal(9, #m:keys()) -- 7 seeded rows + the two accepted names
    end)

    it("checks the quota range only for limited keys", function()
      local _, body = api("POST", "/api/token/", { remain_quota = -1 })
      assert.equal("Quota value cannot be negative", body.message)
      _, body = api("POST", "/api/token/", { remain_quota = 500000000000001 })
      assert.equal("Quota value exceeds valid range, maximum is 500000000000000", body.message)
      _, body = api("POST", "/api/token/", { remain_quota = 500000000000000 })
      assert.is_true(body.success)
      assert.equal(500000000000000, m:key(8).remain_quota)
      _, body = api("POST", "/api/token/", { remain_quota = -5, unlimited_quota = true })
      assert.is_true(body.success)
    end)

    it("refuses at the token cap", function()
      m:config{ max_tokens = 6 }
      local _, body = api("POST", "/api/token/", { name = "one too many" })
      assert.equal("已达到最大令牌数量限制 (6)", body.message)
    end)

    it("answers Go decoder texts for bad JSON", function()
      local cases = {
        { '{"remain_quota":"5"}',
          "json: cannot unmarshal string into Go struct field Token.remain_quota of type int" },
        { '{"remain_quota":1.5}',
          "json: cannot unmarshal number 1.5 into Go struct field Token.remain_quota of type int" },
        { '{"expired_time":1e3}',
          "json: cannot unmarshal number 1e3 into Go struct field Token.expired_time of type int64" },
        { '{"unlimited_quota":1}',
          "json: cannot unmarshal number into Go struct field Token.unlimited_quota of type bool" },
        { '{"name":5}', "json: cannot unmarshal number into Go struct field Token.name of type string" },
        { '{"allow_ips":[]}',
          "json: cannot unmarshal array into Go struct field Token.allow_ips of type string" },
        { "", "EOF" },
        { "[]", "json: cannot unmarshal array into Go value of type model.Token" },
      }
      for _, case in ipairs(cases) do
        local status, body = api("POST", "/api/token/", case[1])
        assert.equal(200, status)
        assert.same({ success = false, message = case[2] }, body)
      end
      assert.equal(7, #m:keys())
    end)
  end)

  describe("update", function()
    it("replaces all nine fields: omitted ones become zero values, status untouched", function()
      local status, body = api("PUT", "/api/token/", { id = 5, name = "renamed", status = 2 })
      assert.equal(200, status)
      assert.is_true(body.success)
      local row = m:key(5)
      assert.equal("renamed", row.name)
      assert.equal(0, row.expired_time)
      assert.equal(0, row.remain_quota)
      assert.is_false(row.model_limits_enabled)
      assert.equal("", row.model_limits)
      assert.equal(mock.null, row.allow_ips)
      assert.equal("", row.group)
      assert.equal(1, row.status)
      assert.equal(row.name, body.data.name)
      assert.equal(mock.null, body.data.allow_ips)
      assert.equal(row.key:sub(1, 4) .. "**********" .. row.key:sub(-4), body.data.key)
    end)

    it("copies every editable field verbatim in full mode", function()
      local fields = { id = 1, name = "n", expired_time = 4102444800, remain_quota = 42,
        unlimited_quota = true, model_limits_enabled = true, model_limits = "a, b",
        allow_ips = "1.2.3.4, 5.6.7.8", group = "auto", cross_group_retry = true }
      api("PUT", "/api/token/", fields)
      local row = m:key(1)
      for k, v in pairs(fields) do
        assert.equal(v, row[k], k)
      end
    end)

    it("status_only (any non-empty value) copies only the status, unvalidated", function()
      api("PUT", "/api/token/?status_only=1", { id = 1, status = 2, name = "ignored" })
      assert.equal(2, m:key(1).status)
      assert.equal("production", m:key(1).name)
      api("PUT", "/api/token/?status_only=false", { id = 1, status = 99 })
      assert.equal(99, m:key(1).status)
      assert.equal(500000, m:key(1).remain_quota)
      api("PUT", "/api/token/?status_only=", { id = 1, status = 2, name = "full" })
      assert.equal(99, m:key(1).status)
      assert.equal("full", m:key(1).name)
    end)

    it("checks name and quota of the body in status_only mode too", function()
      local _, body = api("PUT", "/api/token/?status_only=1", { id = 1, status = 2, remain_quota = -1 })
      assert.equal("Quota value cannot be negative", body.message)
      _, body = api("PUT", "/api/token/?status_only=1", { id = 1, status = 2, name = string.rep("x", 51) })
      assert.equal("Token name is too long", body.message)
      assert.equal(1, m:key(1).status)
    end)

    it("refuses to enable a stored expired key, in both modes, checking the stored row", function()
      local msg = "Token has expired and cannot be enabled. Please modify the expiration time or"
        .. " set it to never expire"
      local _, body = api("PUT", "/api/token/?status_only=1", { id = 3, status = 1 })
      assert.equal(msg, body.message)
      _, body = api("PUT", "/api/token/", { id = 3, status = 1, name = "x", expired_time = -1 })
      assert.equal(msg, body.message)
      assert.equal("expired-key", m:key(3).name)
      -- fix first with the stored status, then enable
      _, body = api("PUT", "/api/token/", { id = 3, status = 3, name = "x", expired_time = -1,
        remain_quota = 5 })
      assert.is_true(body.success)
      _, body = api("PUT", "/api/token/?status_only=1", { id = 3, status = 1 })
      assert.is_true(body.success)
      assert.equal(1, m:key(3).status)
    end)

    it("lets status 3 be enabled when the stored expiry is -1 or in the future", function()
      m:set_keys{ { id = 1, status = 3, expired_time = -1 }, { id = 2, status = 3,
        expired_time = os.time() + 3600 }, { id = 3, status = 1, expired_time = 1000 } }
      for id = 1, 3 do
        local _, body = api("PUT", "/api/token/?status_only=1", { id = id, status = 1 })
        assert.is_true(body.success, "id " .. id)
      end
    end)

    it("refuses to enable a stored exhausted key unless unlimited or refilled", function()
      local _, body = api("PUT", "/api/token/?status_only=1", { id = 4, status = 1 })
      assert.equal("Token quota is exhausted and cannot be enabled. Please modify the remaining"
        .. " quota or set it to unlimited", body.message)
      m:set_keys{ { id = 1, status = 4, remain_quota = -20 }, { id = 2, status = 4, remain_quota = 0,
        unlimited_quota = true }, { id = 3, status = 4, remain_quota = 1 } }
      _, body = api("PUT", "/api/token/?status_only=1", { id = 1, status = 1 })
      assert.is_false(body.success)
      _, body = api("PUT", "/api/token/?status_only=1", { id = 2, status = 1 })
      assert.is_true(body.success)
      _, body = api("PUT", "/api/token/?status_only=1", { id = 3, status = 1 })
      assert.is_true(body.success)
    end)

    it("reports a missing id, another user's key and a deleted key", function()
      local _, body = api("PUT", "/api/token/", { name = "x" })
      assert.equal("id 或 userId 为空！", body.message)
      _, body = api("PUT", "/api/token/", { id = 7, name = "x" })
      assert.equal("record not found", body.message)
      api("DELETE", "/api/token/1")
      _, body = api("PUT", "/api/token/", { id = 1, name = "x" })
      assert.equal("record not found", body.message)
      assert.equal("other-user-key", m:key(7).name)
    end)
  end)

  describe("delete", function()
    it("soft-deletes: gone from list, get and search, kept in the admin view", function()
      local status, _, raw = api("DELETE", "/api/token/1")
      assert.equal(200, status)
      assert.equal('{"success":true,"message":""}', raw)
      local _, body = api("GET", "/api/token/1")
      assert.equal("record not found", body.message)
      _, body = api("GET", "/api/token/")
      assert.equal(5, body.data.total)
      _, body = api("GET", "/api/token/search?keyword=production")
      assert.equal(0, body.data.total)
      local row = m:key(1)
      assert.is_true(row.deleted)
      assert.is_number(row.deleted_at)
      _, body = api("DELETE", "/api/token/1")
      assert.equal("record not found", body.message)
    end)

    it("treats a non-numeric id as 0 and refuses another user's key", function()
      local _, body = api("DELETE", "/api/token/abc")
      assert.equal("id 或 userId 为空！", body.message)
      _, body = api("DELETE", "/api/token/7")
      assert.equal("record not found", body.message)
      assert.is_false(m:key(7).deleted)
    end)
  end)

  describe("2026 upstream behaviours (the defaults) and the older builds", function()
    local function masked(key)
      return key:sub(1, 4) .. "**********" .. key:sub(-4)
    end

    it("masks the key in list, get, search and update; a 2025 server sends it whole", function()
      local full = m:key(1).key
      local _, body = api("GET", "/api/token/?p=1&page_size=100")
      for _, item in ipairs(body.data.items) do
        assert.equal(masked(m:key(item.id).key), item.key)
      end
      _, body = api("GET", "/api/token/search?keyword=production")
      assert.equal(masked(full), body.data.items[1].key)
      _, body = api("PUT", "/api/token/?status_only=1", { id = 1, status = 2 })
      assert.equal(masked(full), body.data.key)
      m:config{ server = "2025" }
      _, body = api("GET", "/api/token/1")
      assert.equal(full, body.data.key)
    end)

    it("reveals one key, and up to 100 in a batch (the caller's only); 404 where a build lacks them", function()
      local _, body = api("POST", "/api/token/1/key")
      assert.same({ success = true, message = "", data = { key = m:key(1).key } }, body)
      _, body = api("POST", "/api/token/7/key") -- the other user's
      assert.same({ success = false, message = "record not found" }, body)
      _, body = api("POST", "/api/token/batch/keys", { ids = { 1, 5, 7, 99 } })
      assert.same({ ["1"] = m:key(1).key, ["5"] = m:key(5).key }, body.data.keys)
      local many = {}
      for i = 1, 101 do many[i] = i end
      _, body = api("POST", "/api/token/batch/keys", { ids = many })
      assert.same({ success = false, message = "Too many items in batch request, maximum is 100" }, body)
      _, body = api("POST", "/api/token/batch/keys", { ids = json.array() })
      assert.same({ success = false, message = "Invalid parameters" }, body)
      m:config{ server = "2026-03" } -- reveal, no batch reveal yet
      assert.equal(200, (api("POST", "/api/token/1/key")))
      assert.equal(404, (api("POST", "/api/token/batch/keys", { ids = { 1 } })))
      m:config{ server = "2025" }
      assert.equal(404, (api("POST", "/api/token/1/key")))
    end)

    it("batch delete removes the caller's ids in one request and answers the count", function()
      local _, body = api("POST", "/api/token/batch", { ids = { 1, 2, 2, 7, 99 } })
      assert.same({ success = true, message = "", data = 2 }, body)
      assert.is_true(m:key(1).deleted)
      assert.is_true(m:key(2).deleted)
      assert.is_false(m:key(7).deleted)
      for _, bad in ipairs({ { ids = json.array() }, { ids = { "1" } }, { ids = { 1.5 } }, {}, "nope" }) do
        _, body = api("POST", "/api/token/batch", bad)
        assert.same({ success = false, message = "Invalid parameters" }, body)
      end
    end)

    it("limits every IP to 180 requests per 180 s: 429, empty body, no Retry-After; refusals do not count", function()
      for i = 1, 180 do
        assert.equal(200, (api("GET", "/api/status")), "request " .. i)
      end
      local status, _, raw, h = api("GET", "/api/token/1")
      assert.equal(429, status)
      assert.equal("", raw)
      assert.is_nil(h["retry-after"])
      m:config{ rate_limit = { requests = 2, window = 0.4 } } -- configurable, so tests stay fast
      assert.equal(200, (api("GET", "/api/token/1")))
      assert.equal(200, (api("GET", "/api/token/1")))
      sys.sleep(0.2)
      assert.equal(429, (api("GET", "/api/token/1")))
      sys.sleep(0.25) -- 0.45 s after the first: its slot is free; the refusal took none
      assert.equal(200, (api("GET", "/api/token/1")))
    end)

    it("limits searches to 10 per 60 s and reveals to 20 per 20 min", function()
      for _ = 1, 10 do
        assert.equal(200, (api("GET", "/api/token/search?keyword=production")))
      end
      assert.equal(429, (api("GET", "/api/token/search?keyword=production")))
      assert.equal(200, (api("GET", "/api/token/1")))
      for i = 1, 20 do
        assert.equal(200, (api("POST", i % 2 == 0 and "/api/token/1/key" or "/api/token/batch/keys",
          { ids = { 1 } })))
      end
      local status, _, raw = api("POST", "/api/token/1/key")
      assert.equal(429, status)
      assert.equal("", raw)
      assert.same({ requests = 20, window = 1200 }, m:config().critical_rate_limit)
      assert.same({ requests = 10, window = 60 }, m:config().search_rate_limit)
    end)

    it("stores cross_group_retry = false unless the group is auto, and keeps auto_groups a PUT omits", function()
      api("POST", "/api/token/", { name = "plain", group = "default", cross_group_retry = true })
      api("POST", "/api/token/", { name = "routed", group = "auto", cross_group_retry = true,
        auto_groups = { "default", "vip" } })
      local plain, routed = m:key(8), m:key(9)
      assert.is_false(plain.cross_group_retry)
      assert.is_true(routed.cross_group_retry)
      assert.same({ "default", "vip" }, routed.auto_groups)
      local update = { id = 9, name = "routed", expired_time = -1, group = "auto", cross_group_retry = true }
      api("PUT", "/api/token/", update)
      assert.same({ "default", "vip" }, m:key(9).auto_groups) -- omitted: kept
      local _, body = api("GET", "/api/token/9")
      assert.same({ "default", "vip" }, body.data.auto_groups)
      update.group = "default"
      api("PUT", "/api/token/", update)
      assert.is_false(m:key(9).cross_group_retry)
      assert.same({}, m:key(9).auto_groups)
      m:config{ server = "2026-03" } -- before PR #6590: stored as sent, no auto_groups in answers
      update.group = "vip"
      _, body = api("PUT", "/api/token/", update)
      assert.is_true(m:key(9).cross_group_retry)
      assert.is_nil(body.data.auto_groups)
    end)

    it("serves GET /api/status without auth: quota_per_unit (configurable) sets the quota maximum", function()
      local status, body = api("GET", "/api/status", nil, { Authorization = false, ["New-Api-User"] = false })
      assert.equal(200, status)
      assert.equal(500000, body.data.quota_per_unit)
      assert.is_true(body.data.display_in_currency)
      m:config{ quota_per_unit = 1000, display_in_currency = false }
      local _
      _, body = api("GET", "/api/status")
      assert.equal(1000, body.data.quota_per_unit)
      assert.is_false(body.data.display_in_currency)
      _, body = api("POST", "/api/token/", { name = "big", remain_quota = 1000000000001 })
      assert.same({ success = false, message = "Quota value exceeds valid range, maximum is 1000000000000" }, body)
      _, body = api("POST", "/api/token/", { name = "max", remain_quota = 1000000000000 })
      assert.is_true(body.success)
    end)

    it("answers 401/403 with a code under personal-access-token auth, New-Api-User ignored", function()
      m:config{ server = "pat" }
      local _, body = api("GET", "/api/token/1", nil, { ["New-Api-User"] = "999" })
      assert.is_true(body.success)
      local status = api("GET", "/api/token/1", nil, { Authorization = "bearer " .. m.token, ["New-Api-User"] = false })
      assert.equal(200, status)
      status, body = api("GET", "/api/token/1", nil, { Authorization = "nope" })
      assert.equal(401, status)
      assert.equal("AUTH_UNAUTHORIZED", body.code)
      status, body = api("GET", "/api/token/1", nil, { Authorization = false })
      assert.equal(401, status)
      assert.equal("AUTH_UNAUTHORIZED", body.code)
      status, body = api("GET", "/api/token/1", nil, { Authorization = m.forbidden_token })
      assert.equal(403, status)
      assert.equal("AUTH_INSUFFICIENT_PRIVILEGE", body.code)
      m:config{ server = "2026" } -- the same user on an access-token build: 200, role too low
      status, body = api("GET", "/api/token/1", nil, { Authorization = m.forbidden_token })
      assert.equal(200, status)
      assert.same({ success = false, message = "Unauthorized, insufficient privileges" }, body)
    end)

    it("names its behaviours (make mock prints them) and takes presets with single switches", function()
      local lines = table.concat(mock.describe(m:config()), "\n")
      assert.matches("masked", lines)
      assert.matches("New%-Api%-User required", lines)
      assert.matches("180 requests per 180 s", lines)
      local m2 = mock.start{ server = "2025", masked_keys = true, rate_limit = { requests = 5, window = 1 } }
      finally(function() m2:stop() end)
      local c = m2:config()
      assert.is_true(c.masked_keys)
      assert.is_false(c.require_user_header)
      assert.same({ requests = 5, window = 1 }, c.rate_limit)
      assert.equal(json.null, c.search_rate_limit)
      assert.is_false(c.reveal)
      assert.has_error(function() mock.start{ rate_limit = 5 } end)
      assert.has_error(function() m:config{ server = "2024" } end)
    end)
  end)

  describe("rate limiter", function()
    it("is on by default (180 per 180 s), off on a 2025 server, 429 with an empty body", function()
      assert.same({ requests = 180, window = 180 }, m:config().rate_limit)
      m:config{ server = "2025" }
      assert.equal(json.null, m:config().rate_limit)
      for _ = 1, 5 do
        assert.equal(200, (api("GET", "/api/token/1")))
      end
      m:config{ rate_limit = { requests = 2, window = 60 } }
      assert.equal(200, (api("GET", "/api/token/1")))
      assert.equal(200, (api("GET", "/api/token/1")))
      local status, _, raw, h = api("GET", "/api/token/1")
      assert.equal(429, status)
      assert.equal("", raw)
      assert.equal("0", h["content-length"])
      assert.truthy(h["x-oneapi-request-id"])
      m:reset()
      assert.equal(200, (api("GET", "/api/token/1")))
    end)
  end)

  describe("admin API", function()
    it("reset restores the seeded state", function()
      api("DELETE", "/api/token/1")
      api("POST", "/api/token/", { name = "extra" })
      m:config{ masked_keys = false }
      m:reset()
      assert.equal(7, #m:keys())
      assert.is_false(m:key(1).deleted)
      assert.is_true(m:config().masked_keys)
    end)

    it("seeds varied keys by default", function()
      local keys = m:keys()
      local by_status = {}
      for _, k in ipairs(keys) do
        if k.user_id == 1 then
          by_status[k.status] = (by_status[k.status] or 0) + 1
        end
      end
      assert.truthy(by_status[1] and by_status[2] and by_status[3] and by_status[4])
      assert.truthy(m:key(3).expired_time < os.time())
      assert.equal(0, m:key(4).remain_quota)
      assert.equal("10.0.0.0/8\n192.168.1.10", m:key(5).allow_ips)
      assert.is_true(m:key(5).model_limits_enabled)
      assert.equal(123456789012345, m:key(6).remain_quota)
      assert.equal(2, m:key(7).user_id)
    end)

    it("set_keys replaces the store and fills defaults; bad rows raise", function()
      m:set_keys{ { id = 40, remain_quota = -5, name = "neg" }, { status = 3, expired_time = 10 } }
      local keys = m:keys()
      assert.equal(2, #keys)
      assert.equal(-5, keys[1].remain_quota)
      assert.equal(41, keys[2].id)
      assert.equal(1, keys[2].user_id)
      assert.equal(-1, keys[1].expired_time)
      assert.equal("", keys[1].allow_ips)
      assert.equal(48, #keys[1].key)
      assert.has_error(function() m:set_keys{ { stauts = 1 } } end)
      api("POST", "/api/token/", { name = "after" })
      assert.equal("after", m:key(42).name)
    end)

    it("counts requests and distinct connections; keep-alive counts as one", function()
      m:clear_requests()
      local req = "GET /api/token/1 HTTP/1.1\r\nHost: x\r\nAuthorization: " .. m.token .. "\r\nNew-Api-User: 1\r\n\r\n"
      local last = "GET /api/token/2 HTTP/1.1\r\nHost: x\r\nAuthorization: " .. m.token
        .. "\r\nNew-Api-User: 1\r\nConnection: close\r\n\r\n"
      local raw = raw_exchange(m.port, req .. last)
      local _, count = raw:gsub("HTTP/1%.1 200", "")
      assert.equal(2, count)
      local stats = m:stats()
      assert.equal(2, stats.requests)
      assert.equal(1, stats.connections)
      api("GET", "/api/token/1")
      stats = m:stats()
      assert.equal(3, stats.requests)
      assert.equal(2, stats.connections)
      assert.equal(2, stats.per_path["/api/token/1"])
      assert.equal(1, stats.per_route["GET /api/token/2"])
    end)

    it("logs API requests with Authorization redacted", function()
      m:clear_requests()
      api("PUT", "/api/token/?status_only=1", { id = 1, status = 2 }, { ["New-Api-User"] = "1" })
      api("GET", "/api/token/", nil, { Authorization = false })
      local log = m:requests()
      assert.equal(2, #log)
      local e = log[1]
      assert.equal("PUT", e.method)
      assert.equal("/api/token/", e.uri)
      assert.equal("1", e.args.status_only)
      assert.equal("<redacted>", e.headers.authorization)
      assert.is_true(e.auth_present)
      assert.equal("1", e.headers["new-api-user"])
      assert.same({ id = 1, status = 2 }, cjson.decode(e.body))
      assert.equal(200, e.status)
      assert.is_false(log[2].auth_present)
      assert.equal(401, log[2].status)
      assert.falsy(json.encode(log):find(m.token, 1, true))
      m:clear_requests()
      assert.equal(0, #m:requests())
      assert.equal(0, m:stats().requests)
    end)

    it("rejects unknown config fields and bad values", function()
      assert.has_error(function() m:config{ masked = true } end)
      assert.has_error(function() m:config{ language = "fr" } end)
      assert.has_error(function() m:fault{ type = "explode" } end)
    end)

    it("serves the constant benchmark endpoint without logging", function()
      m:clear_requests()
      for _, method in ipairs({ "GET", "PUT" }) do
        local status, body = m:http(method, "/__bench/token", { body = method == "PUT" and "{}" or nil })
        assert.equal(200, status)
        local decoded = cjson.decode(body)
        assert.is_true(decoded.success)
        assert.equal("bench", decoded.data.name)
      end
      assert.equal(0, m:stats().requests)
    end)
  end)

  describe("faults", function()
    local function timed(fn)
      local t0 = socket.gettime()
      local a, b, c, d = fn()
      return socket.gettime() - t0, a, b, c, d
    end

    it("delay and slow_headers sleep, then answer normally", function()
      for _, kind in ipairs({ "delay", "slow_headers" }) do
        m:fault{ type = kind, seconds = 0.3 }
        local elapsed, status, body = timed(function() return api("GET", "/api/token/1") end)
        assert.equal(200, status)
        assert.equal("production", body.data.name)
        assert.truthy(elapsed >= 0.29, kind)
        elapsed = timed(function() return api("GET", "/api/token/1") end)
        assert.truthy(elapsed < 0.25, kind .. " applied once only")
      end
    end)

    it("reset closes the connection without a response, before or after processing", function()
      m:fault{ type = "reset" }
      local status, err = m:http("PUT", "/api/token/", { headers = { Authorization = m.token },
        body = encode{ id = 1, name = "x" } })
      assert.is_nil(status)
      assert.equal("closed", err)
      assert.equal("production", m:key(1).name)
      m:fault{ type = "reset", processed = true }
      status = m:http("PUT", "/api/token/", { headers = { Authorization = m.token, ["New-Api-User"] = "1" },
        body = encode{ id = 1, name = "x" } })
      assert.is_nil(status)
      assert.equal("x", m:key(1).name)
      local raw = raw_exchange(m.port, "GET /api/token/1 HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.not_equal("", raw) -- the fault was used up
    end)

    it("truncate declares a longer Content-Length than it sends, then closes", function()
      m:fault{ type = "truncate" }
      local raw, err = raw_exchange(m.port, "GET /api/token/1 HTTP/1.1\r\nHost: x\r\nAuthorization: "
        .. m.token .. "\r\nNew-Api-User: 1\r\n\r\n")
      assert.equal("closed", err)
      local status, headers, body = split_response(raw)
      assert.equal(200, status)
      assert.truthy(tonumber(headers["content-length"]) > #body)
      assert.truthy(#body > 0)
      assert.is_nil(cjson.decode(body))
    end)

    it("nonjson answers 200 text/plain", function()
      m:fault{ type = "nonjson" }
      local status, body, raw, h = api("GET", "/api/token/1")
      assert.equal(200, status)
      assert.is_nil(body)
      assert.equal("upstream says hi", raw)
      assert.matches("^text/plain", h["content-type"])
    end)

    it("html answers a 5xx HTML page", function()
      m:fault{ { type = "html" }, { type = "html", status = 503 } }
      local status, _, raw, h = api("GET", "/api/token/1")
      assert.equal(502, status)
      assert.matches("^text/html", h["content-type"])
      assert.matches("<html>", raw)
      status = api("GET", "/api/token/1")
      assert.equal(503, status)
    end)

    it("status answers any status with an empty or given body", function()
      m:fault{ { type = "status", status = 500 }, { type = "status", status = 418, body = "teapot" } }
      local status, _, raw = api("GET", "/api/token/1")
      assert.equal(500, status)
      assert.equal("", raw)
      status, _, raw = api("GET", "/api/token/1")
      assert.equal(418, status)
      assert.equal("teapot", raw)
    end)

    it("ratelimit answers 429 with an empty body, with or without Retry-After", function()
      m:fault{ { type = "ratelimit" }, { type = "ratelimit", retry_after = 2 } }
      local status, _, raw, h = api("GET", "/api/token/1")
      assert.equal(429, status)
      assert.equal("", raw)
      assert.is_nil(h["retry-after"])
      status, _, _, h = api("GET", "/api/token/1")
      assert.equal(429, status)
      assert.equal("2", h["retry-after"])
    end)

    it("slow_body sends the headers and part of the body, pauses, then the rest", function()
      m:fault{ type = "slow_body", seconds = 0.4 }
      local c = socket.tcp()
      c:settimeout(5)
      assert(c:connect("127.0.0.1", m.port))
      local t0 = socket.gettime()
      c:send("GET /api/token/1 HTTP/1.1\r\nHost: x\r\nAuthorization: " .. m.token .. "\r\nNew-Api-User: 1\r\n\r\n")
      local length
      repeat
        local line = assert(c:receive("*l"))
        length = length or tonumber(line:match("^[Cc]ontent%-[Ll]ength: (%d+)"))
      until line == ""
      local header_time = socket.gettime() - t0
      local body = assert(c:receive(length))
      local body_time = socket.gettime() - t0
      c:close()
      assert.truthy(header_time < 0.3)
      assert.truthy(body_time >= 0.39)
      assert.equal("production", cjson.decode(body).data.name)
    end)

    it("redirect answers 301 to the given Location", function()
      m:fault{ type = "redirect", location = "http://127.0.0.2:9/steal" }
      local status, _, _, h = api("GET", "/api/token/1")
      assert.equal(301, status)
      assert.equal("http://127.0.0.2:9/steal", h.location)
    end)

    it("big streams a valid JSON body of the requested size", function()
      local size = 20 * 1024 * 1024
      m:fault{ type = "big", bytes = size }
      local status, body, raw, h = api("GET", "/api/token/")
      assert.equal(200, status)
      assert.equal(size, #raw)
      assert.equal(tostring(size), h["content-length"])
      assert.is_true(body.success)
    end)

    it("bad_utf8 puts invalid UTF-8 into a JSON string", function()
      m:fault{ type = "bad_utf8" }
      local status, body, raw = api("GET", "/api/token/1")
      assert.equal(200, status)
      assert.truthy(raw:find("\255", 1, true))
      assert.is_true(body.success) -- cjson does not validate UTF-8; strict parsers must refuse
      assert.not_equal(raw, json.fix_utf8(raw))
    end)

    it("deep nests the data depth levels", function()
      m:fault{ type = "deep", depth = 3000 }
      local status, body, raw = api("GET", "/api/token/1")
      assert.equal(200, status)
      assert.is_nil(body) -- beyond cjson's default depth limit
      local _, opens = raw:gsub("%[", "")
      assert.equal(3000, opens)
      assert.matches('^{"success":true,"message":"","data":%[%[', raw)
    end)

    it("dupkeys repeats the success key", function()
      m:fault{ type = "dupkeys" }
      local _, _, raw = api("GET", "/api/token/1")
      local _, count = raw:gsub('"success":', "")
      assert.equal(2, count)
      assert.matches('"success":true', raw)
      assert.matches('"success":false}$', raw)
    end)

    it("chunked sends a normal answer with Transfer-Encoding: chunked in several chunks", function()
      m:fault{ type = "chunked", chunks = 3 }
      local raw = raw_exchange(m.port, "GET /api/token/1 HTTP/1.1\r\nHost: x\r\nAuthorization: "
        .. m.token .. "\r\nNew-Api-User: 1\r\nConnection: close\r\n\r\n")
      local status, headers, body = split_response(raw)
      assert.equal(200, status)
      assert.equal("chunked", headers["transfer-encoding"])
      assert.is_nil(headers["content-length"])
      local data, pieces = dechunk(body)
      assert.equal(3, pieces)
      assert.equal("production", cjson.decode(data).data.name)
    end)

    it("applies faults FIFO to matching requests only, count times", function()
      m:fault{ { type = "status", status = 503, match = "PUT /api/token/", count = 2 },
        { type = "status", status = 502 } }
      assert.equal(502, (api("GET", "/api/token/1")))
      assert.equal(503, (api("PUT", "/api/token/", { id = 1, name = "a" })))
      assert.equal(503, (api("PUT", "/api/token/", { id = 1, name = "a" })))
      assert.equal(200, (api("PUT", "/api/token/", { id = 1, name = "a" })))
      assert.equal(0, #m:faults())
      local log = m:requests()
      assert.equal("status", log[1].fault)
      assert.is_nil(log[4].fault)
    end)

    it("count = -1 keeps a fault until cleared", function()
      m:fault{ type = "status", status = 500, count = -1 }
      for _ = 1, 3 do
        assert.equal(500, (api("GET", "/api/token/1")))
      end
      m:clear_faults()
      assert.equal(200, (api("GET", "/api/token/1")))
    end)
  end)
end)
