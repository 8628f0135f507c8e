--- cometkey.transport.resty: HTTP/1.1 on nginx cosockets (ngx.socket.tcp) for
-- OpenResty and lua-nginx-module. A request yields the calling nginx coroutine
-- instead of blocking the worker; connections are kept in the worker's cosocket
-- pool, one pool per scheme/host/port/TLS setting. In a phase where cosockets
-- are disabled (init_worker, set, log, filters, balancer) a request fails with
-- a message that names the phase and the way out (ngx.timer.at).
local ngx = ngx
local tcp = ngx.socket.tcp
local ngx_sleep, ngx_now, update_time, get_phase = ngx.sleep, ngx.now, ngx.update_time, ngx.get_phase
local ngx_log, WARN = ngx.log, ngx.WARN
local errors = require "cometkey.errors"
local header_fields = require "cometkey.headers"

local pairs, tostring, tonumber, setmetatable = pairs, tostring, tonumber, setmetatable
local max, min, floor = math.max, math.min, math.floor
local find, match, sub, lower, format, byte, gsub = string.find, string.match, string.sub, string.lower,
  string.format, string.byte, string.gsub
local concat = table.concat

local M = {}

M.KEEPALIVE_TIMEOUT = 60000 -- ms an idle connection stays in the pool
M.POOL_SIZE = 16            -- idle connections kept per pool and worker
M.MAX_HEADER_BYTES = 256 * 1024 -- response header bytes, every block of one response
M.MAX_HEADER_FIELDS = 500       -- response header fields, every block of one response
M.READ_CHUNK = 16384        -- bytes per read when the body runs until the server closes

-- Phases whose handlers may yield (lua-nginx-module NGX_HTTP_LUA_CONTEXT_YIELDABLE).
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

--- phase_ok() --> true | false, phase: can a cosocket be used in the current phase?
function M.phase_ok()
  local phase = get_phase()
  return COSOCKET_PHASES[phase] == true, phase
end

local function phase_advice(phase)
  if phase == "init" then
    return "cosockets are not available in the init_by_lua* phase; "
      .. "run the call from init_worker_by_lua* with ngx.timer.at(0, fn), or use transport = \"curl\" at startup"
  end
  return "cosockets are not available in the " .. phase .. "_by_lua* phase; run the call from ngx.timer.at(0, fn)"
end

--- split_url(url) --> scheme, host, port, target ("/path?query") | nil
-- host keeps an IPv6 literal's brackets (the form connect and Host want).
function M.split_url(url)
  local scheme, authority, target = match(url, "^(%a[%w+.-]*)://([^/?#]+)(.*)$")
  if not scheme then return nil end
  scheme = lower(scheme)
  local host, port = match(authority, "^(%[[%x:.]+%]):?(%d*)$")
  if not host then host, port = match(authority, "^([^:]+):?(%d*)$") end
  if not host then return nil end
  if target == "" then target = "/" end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  return scheme, host, port, target
end

local function is_ip_literal(host)
  return sub(host, 1, 1) == "[" or match(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- Lower-cased token list of a header value contains word (Connection, Transfer-Encoding).
local function has_token(value, word)
  if not value then return false end
  for token in value:gmatch("[^,%s]+") do
    if lower(token) == word then return true end
  end
  return false
end

local function failure(where, kind, text, retryable, sent)
  return errors.failure(where, { kind = kind, text = text, retryable = retryable, sent = sent })
end

-- A cosocket error string -> kind, text, retryable.
local function classify(err)
  err = tostring(err)
  if err == "timeout" then return "timeout", "timed out", true end
  if find(err, "no resolver defined", 1, true) then
    return "network", err .. " (add a resolver directive to nginx.conf)", false
  end
  return "network", err, true
end

--------------------------------------------------------------------- response reading
-- Each reader returns true | nil, err, kind; kind is "too_large", "protocol" (a
-- malformed response) or nil (a cosocket error such as "timeout" or "closed").

-- One receive with the read timeout recomputed from the request's deadline.
local function recv(sock, deadline, pattern)
  update_time()
  local left = floor((deadline - ngx_now()) * 1000)
  if left <= 0 then return nil, "timeout" end
  sock:settimeouts(left, left, left)
  return sock:receive(pattern)
end

-- One line (LF-terminated; every CR dropped, as receive("*l") does) of at most
-- limit bytes: line | nil, err, kind. receive("*l") has no length limit, so a
-- server sending an endless line would grow the worker's memory until the
-- timeout; a receiveuntil reader hands the line over in pieces and stops early.
local readers = setmetatable({}, { __mode = "k" }) -- cosocket -> its "\n" reader
local function recv_line(sock, deadline, limit, what)
  local reader = readers[sock]
  if not reader then
    reader = sock:receiveuntil("\n")
    readers[sock] = reader
  end
  local parts, n, got = {}, 0, 0
  while true do
    update_time()
    local left = floor((deadline - ngx_now()) * 1000)
    if left <= 0 then return nil, "timeout" end
    sock:settimeouts(left, left, left)
    local data, err = reader(M.READ_CHUNK)
    if not data then
      if err then return nil, err end
      break -- the LF was reached
    end
    got = got + #data
    if got > limit then
      return nil, what or format("headers exceed %d bytes or %d fields", M.MAX_HEADER_BYTES, M.MAX_HEADER_FIELDS),
        what and "protocol" or "too_large"
    end
    n = n + 1
    parts[n] = data
  end
  local line = n == 1 and parts[1] or concat(parts)
  if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
  return line
end
M._recv_line = recv_line

M.MAX_CHUNK_LINE = 4096 -- bytes of a chunk-size line (extensions included)

-- One header field line -> lower-case name, value (blanks around the value cut
-- with a byte loop: a pattern such as "(.-)%s*$" backtracks quadratically over a
-- long run of blanks), or nil when the line is not a field.
local function split_field(line)
  local colon = find(line, ":", 1, true)
  if not colon or colon == 1 or find(line, "^[%s]") then return nil end
  local name = sub(line, 1, colon - 1)
  if find(name, "[%s]") then name = match(name, "^(%S+)%s*$") end
  if not name then return nil end
  local first, last = colon + 1, #line
  while first <= last and (byte(line, first) == 32 or byte(line, first) == 9) do first = first + 1 end
  while last >= first and (byte(line, last) == 32 or byte(line, last) == 9 or byte(line, last) == 13) do
    last = last - 1
  end
  return lower(name), sub(line, first, last)
end
M._split_field = split_field

-- Reads one header block (after the status line) into headers. budget counts
-- bytes and fields over every block of one response (1xx blocks and trailers
-- included). A repeated field's values are collected and joined with ", " once,
-- at the end: linear time whatever the number of repeats.
local function read_headers(sock, deadline, headers, budget)
  local repeated
  while true do
    local line, err, kind = recv_line(sock, deadline, M.MAX_HEADER_BYTES - budget.bytes)
    if not line then return nil, err, kind end
    if line == "" then break end
    budget.bytes = budget.bytes + #line + 2
    budget.fields = budget.fields + 1
    if budget.bytes > M.MAX_HEADER_BYTES or budget.fields > M.MAX_HEADER_FIELDS then
      return nil, format("headers exceed %d bytes or %d fields", M.MAX_HEADER_BYTES, M.MAX_HEADER_FIELDS),
        "too_large"
    end
    local name, value = split_field(line)
    if name then
      repeated = header_fields.add(headers, repeated, name, value)
    end
  end
  header_fields.join(headers, repeated)
  return true
end
M._read_headers = read_headers

local function too_large(cap)
  return nil, "body exceeds max_body (" .. cap .. " bytes)", "too_large"
end

-- Chunked transfer coding; trailer fields are merged into headers.
local function read_chunked(sock, deadline, cap, parts, headers, budget)
  local total, n = 0, 0
  while true do
    local line, err, kind = recv_line(sock, deadline, M.MAX_CHUNK_LINE, "chunk size line too long")
    if not line then return nil, err, kind end
    local hex = match(line, "^%s*(%x+)%s*[;]?")
    if hex and #hex > 8 then return too_large(cap) end -- (caps fit 8 hex digits; more could wrap a 64-bit integer)
    local size = hex and tonumber(hex, 16)
    if not size then return nil, "malformed chunk size line", "protocol" end
    if size == 0 then return read_headers(sock, deadline, headers, budget) end
    total = total + size
    if total > cap then return too_large(cap) end
    local data
    data, err = recv(sock, deadline, size)
    if not data then return nil, err end
    n = n + 1
    parts[n] = data
    line, err, kind = recv_line(sock, deadline, M.MAX_CHUNK_LINE, "malformed chunk (no CRLF after the data)")
    if not line then return nil, err, kind end
    if line ~= "" then return nil, "malformed chunk (no CRLF after the data)", "protocol" end
  end
end

local function read_length(sock, deadline, cap, parts, value)
  local length = tonumber(match(value, "^%s*(%d+)%s*$"))
  if not length then return nil, "malformed Content-Length", "protocol" end
  if length > cap then return too_large(cap) end
  if length == 0 then return true end
  local data, err = recv(sock, deadline, length)
  if not data then return nil, err end
  parts[1] = data
  return true
end

-- No framing: the body ends when the server closes the connection.
local function read_until_close(sock, deadline, cap, parts)
  local total, n = 0, 0
  while true do
    update_time()
    local left = floor((deadline - ngx_now()) * 1000)
    if left <= 0 then return nil, "timeout" end
    sock:settimeouts(left, left, left)
    local data, err = sock:receiveany(M.READ_CHUNK)
    if not data then
      if err == "closed" then return true end
      return nil, err
    end
    total = total + #data
    if total > cap then return too_large(cap) end
    n = n + 1
    parts[n] = data
  end
end

--------------------------------------------------------------------- one exchange

-- The request bytes as a table of strings (cosocket send takes tables: no copy).
local function request_bytes(req, host, port, scheme, target)
  local default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
  local out = { req.method, " ", target, " HTTP/1.1\r\nHost: ", host, default_port and "" or (":" .. port), "\r\n" }
  local n = #out
  local headers = req.headers
  if headers then
    for name, value in pairs(headers) do
      value = tostring(value)
      if find(name, "[^%w!#$%%&'*+.^_`|~-]") or find(value, "[\r\n%z]") then
        return nil, "header " .. tostring(name) .. " contains characters not allowed in a header"
      end
      local l = lower(name)
      if l ~= "host" and l ~= "content-length" and l ~= "connection" and l ~= "transfer-encoding" then
        out[n + 1], out[n + 2], out[n + 3], out[n + 4] = name, ": ", value, "\r\n"
        n = n + 4
      end
    end
  end
  local body = req.body
  if body or req.method == "PUT" or req.method == "POST" then
    out[n + 1], out[n + 2], out[n + 3] = "Content-Length: ", tostring(body and #body or 0), "\r\n"
    n = n + 3
  end
  out[n + 1] = "Connection: keep-alive\r\n\r\n"
  if body then out[n + 2] = body end
  return out
end

-- A reader's or cosocket's failure -> nil, message, info (the socket is closed first).
local function read_failure(sock, where, what, err, kind)
  sock:close()
  if kind == "too_large" then return failure(where, "too_large", err, false, true) end
  if kind == "protocol" then return failure(where, "network", err, false, true) end
  local k, text, retryable = classify(err)
  return failure(where, k, what .. ": " .. text, retryable, true)
end

-- One connection attempt: connect, TLS, send, read. Returns res | nil, message, info | nil, nil, nil, true
-- (the last when a reused keep-alive connection turned out closed before any byte of the reply).
local function exchange(conf, bytes, where, scheme, host, port, deadline)
  update_time()
  local left = deadline - ngx_now()
  if left <= 0 then return failure(where, "timeout", "timed out before connecting", true, false) end
  local connect_ms = max(floor(min(conf.connect_timeout, left) * 1000), 1)
  local io_ms = max(floor(left * 1000), 1)

  local sock, err = tcp()
  if not sock then return failure(where, "network", tostring(err), true, false) end
  sock:settimeouts(connect_ms, io_ms, io_ms)
  local verify = conf.verify and scheme == "https"
  local pool = format("cometkey:%s:%s:%d:%s", scheme, host, port, verify and "verify" or "noverify")
  local ok
  -- "localhost" is not left to nginx's resolver (a DNS query, which may answer anything):
  -- cometkey lets it go over http:// as loopback, so it must be loopback.
  ok, err = sock:connect(lower(host) == "localhost" and "127.0.0.1" or host, port, { pool = pool })
  if not ok then
    local kind, text, retryable = classify(err)
    return failure(where, kind, "connect to " .. host .. ":" .. port .. " failed: " .. text, retryable, false)
  end
  local reused = (sock:getreusedtimes() or 0) > 0

  if scheme == "https" and not reused then
    local server_name = (not is_ip_literal(host)) and host or nil
    ok, err = sock:sslhandshake(false, server_name, verify)
    if not ok then
      sock:close()
      if err == "timeout" then return failure(where, "timeout", "TLS handshake timed out", true, false) end
      local text = tostring(err)
      if find(text, "certificate", 1, true) or find(text, "verify", 1, true) then
        text = text .. " (nginx verifies against lua_ssl_trusted_certificate)"
      end
      return failure(where, "tls", "TLS handshake failed: " .. text, false, false)
    end
  end

  ok, err = sock:send(bytes)
  if not ok then
    sock:close()
    if reused and err ~= "timeout" then return nil, nil, nil, true end
    local kind, text, retryable = classify(err)
    return failure(where, kind, "send failed: " .. text, retryable, nil)
  end

  -- Status line and headers, skipping interim 1xx responses.
  local status, version, headers, kind
  local budget = { bytes = 0, fields = 0 }
  repeat
    local line
    line, err, kind = recv_line(sock, deadline, M.MAX_HEADER_BYTES - budget.bytes)
    if not line then
      if reused and status == nil and (err == "closed" or find(tostring(err), "reset", 1, true)) then
        sock:close()
        return nil, nil, nil, true
      end
      return read_failure(sock, where, "reading the status line", err, kind)
    end
    budget.bytes = budget.bytes + #line + 2
    version, status = match(line, "^HTTP/(%d%.%d) (%d%d%d)")
    status = tonumber(status)
    if not status then return read_failure(sock, where, nil, "malformed status line", "protocol") end
    headers = {}
    ok, err, kind = read_headers(sock, deadline, headers, budget)
    if not ok then return read_failure(sock, where, "reading the headers", err, kind) end
  until status >= 200

  local parts, cap, framed = {}, conf.max_body, true
  if status == 204 or status == 304 then
    ok = true
  elseif has_token(headers["transfer-encoding"], "chunked") then
    ok, err, kind = read_chunked(sock, deadline, cap, parts, headers, budget)
  elseif headers["content-length"] then
    ok, err, kind = read_length(sock, deadline, cap, parts, headers["content-length"])
  else
    framed = false
    ok, err, kind = read_until_close(sock, deadline, cap, parts)
  end
  if not ok then return read_failure(sock, where, "reading the body", err, kind) end

  if framed and version == "1.1" and not has_token(headers.connection, "close") then
    ok, err = sock:setkeepalive(M.KEEPALIVE_TIMEOUT, M.POOL_SIZE)
    if not ok then ngx_log(WARN, "cometkey: could not pool the connection: ", err) end
  else
    sock:close()
  end
  return { status = status, headers = headers, body = concat(parts) }
end

--------------------------------------------------------------------- transport

local Transport = {}
Transport.__index = Transport

--- new(conf) --> transport (see cometkey/transport/auto.lua for the shape)
function M.new(conf)
  local url = conf.url
  if url and url.scheme == "https" and conf.verify and is_ip_literal(url.host) then
    require("cometkey.transport.auto").warn_once(conf, "cometkey: base_url names an IP address ("
      .. url.host .. "): nginx verifies the certificate chain against lua_ssl_trusted_certificate but "
      .. "does not check that the certificate names " .. url.host .. "; use a host name (and a resolver)")
  end
  return setmetatable({ name = "resty", needs_token = true, conf = conf }, Transport)
end

--- request(req) --> res | nil, message, info. Yields the nginx coroutine while waiting.
function Transport:request(req)
  local scheme, host, port, target = M.split_url(req.url)
  local path = target and match(target, "^[^?]*") or req.url
  local where = req.method .. " " .. path
  if not scheme then return failure(where, "network", "cannot parse the URL", false, false) end
  local ok, phase = M.phase_ok()
  if not ok then return failure(where, "network", phase_advice(phase), false, false) end
  if scheme == "https" and self.conf.verify and self.conf.ca_file then
    return failure(where, "tls", "ca_file cannot be applied to an nginx cosocket; remove it and set "
      .. "lua_ssl_trusted_certificate (and lua_ssl_verify_depth) in nginx.conf instead", false, false)
  end
  local bytes, why = request_bytes(req, host, port, scheme, target)
  if not bytes then return failure(where, "network", why, false, false) end
  update_time()
  local deadline = ngx_now() + (req.timeout or self.conf.timeout)
  local res, message, info, stale = exchange(self.conf, bytes, where, scheme, host, port, deadline)
  if stale then
    -- The pooled connection had been closed by the server: one fresh attempt.
    res, message, info, stale = exchange(self.conf, bytes, where, scheme, host, port, deadline)
    if stale then
      return failure(where, "network", "connection closed by the server before the response", true, nil)
    end
  end
  return res, message, info
end

function Transport:request_async(req, cb)
  cb(self:request(req))
end

function Transport.sleep(_, seconds)
  if COSOCKET_PHASES[get_phase()] then ngx_sleep(seconds) end
end

function Transport:sleep_async(seconds, cb)
  self:sleep(seconds)
  cb()
end

function Transport.now()
  update_time()
  return ngx_now()
end

function Transport.defer(_, fn)
  fn()
end

-- Connections belong to the worker's cosocket pool, which outlives the client.
function Transport.close() end

return M
