--- cometkey.transport.nvim: HTTP(S) for Neovim plugins without blocking the
-- editor. Each request runs the curl command-line tool as a child process on
-- Neovim's event loop (vim.loop = luv), as Neovim's own vim.net.request does;
-- works on Neovim 0.7+ (no vim.system needed) and never loads libcurl.
--
-- The access token never appears in curl's argv (which `ps` shows to every
-- user): argv is only `curl -q --config -`, and the whole request (URL,
-- headers with Authorization, options) is written to curl's stdin as a curl
-- config file. The body goes through a second, anonymous pipe that the child
-- sees as fd 3 (`data-binary = "@/dev/fd/3"`): no temporary file, no size
-- limit. Where /dev/fd is missing (Windows) or luv has no uv.pipe, the body is
-- put in the config instead (`data-raw`, limited to about 100 KB by curl).
--
-- request_async(req, cb) never blocks; cb(res | nil, message, info) runs on
-- the main loop (vim.schedule), never inside a luv callback, so it may call
-- vim.api. request(req) is the synchronous fallback: it vim.wait()s for the
-- same child and so freezes the editor until the answer (or the timeout);
-- plugins should pass a callback to the client's methods instead.
local vim = vim
local uv = vim.uv or vim.loop -- vim.uv from Neovim 0.10, vim.loop before

local error, type, pairs, ipairs, tostring, tonumber = error, type, pairs, ipairs, tostring, tonumber
local select, pcall, setmetatable, next = select, pcall, setmetatable, next
local max, min, ceil = math.max, math.min, math.ceil
local find, match, gmatch, sub, gsub, byte = string.find, string.match, string.gmatch, string.sub, string.gsub,
  string.byte
local lower, format = string.lower, string.format
local concat, sort, unpack = table.concat, table.sort, table.unpack or unpack

local M = {}

M.curl = "curl"                 -- the curl executable (a name looked up in $PATH, or a path)
M.KILL_GRACE = 2                -- seconds past a request's timeout before a stuck curl is killed
M.HEADER_SLACK = 1024 * 1024    -- output bytes allowed beyond max_body (headers, status trailer)
M.MAX_INLINE_BODY = 100 * 1024  -- curl's config line limit, for the data-raw fallback

-- Written by curl after the transfer (stdout): status, header bytes, request bytes.
local TRAILER = "\ncometkey-curl:%{http_code}:%{size_header}:%{size_request}\n"
local TRAILER_PATTERN = "()\ncometkey%-curl:(%d+):(%d+):(%d+)\n$"

-- curl's exit status is libcurl's CURLcode: cometkey.errors classifies it, for
-- this transport and the libcurl one alike.
local errors = require "cometkey.errors"
local header_fields = require "cometkey.headers"

-- Live curl processes of every transport (process handle -> transport), killed when Neovim exits.
local live = {}

local function kill_all()
  for handle in pairs(live) do
    if not handle:is_closing() then handle:kill("sigkill") end
  end
end

-- One VimLeavePre hook, so no curl outlives the editor. Needs the main loop.
local hooked = false
local function hook_exit()
  if hooked or vim.in_fast_event() or not vim.api.nvim_create_autocmd then return end
  hooked = pcall(function()
    local group = vim.api.nvim_create_augroup("cometkey_transport_nvim", { clear = true })
    vim.api.nvim_create_autocmd("VimLeavePre", { group = group, callback = kill_all })
  end)
end

local HAS_DEV_FD = uv.pipe ~= nil and not find(uv.os_uname().sysname, "Windows", 1, true)

-- ---------------------------------------------------------------- request config

local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\v"] = "\\v" }

-- A quoted curl config value (curl's config parser undoes these escapes).
local function quote(s)
  return '"' .. gsub(s, '[\\"\n\r\t\v]', ESCAPES) .. '"'
end

-- Seconds as curl reads them ("2", "0.350"); curl parses numbers in the C locale.
local function seconds(s)
  s = max(s, 0.001) -- 0 would mean "no limit" to curl
  if s == ceil(s) then return format("%d", s) end
  return format("%.3f", s)
end

-- "METHOD /path" for messages: the URL's path only, never its query.
local function where_of(req)
  local path = match(req.url or "", "^%a[%w+.-]*://[^/?#]*([^?#]*)") or ""
  if path == "" then path = "/" end
  return tostring(req.method) .. " " .. path
end

-- Is the URL's host one cometkey.options lets go over http:// (localhost, 127.0.0.0/8, ::1)?
local function loopback(url)
  local authority = match(url, "^%a[%w+.-]*://([^/?#]*)") or ""
  if find(authority, "@", 1, true) then return false end
  local host = match(authority, "^(%[[^%]]*%])") or match(authority, "^([^:]*)")
  return host ~= nil and require("cometkey.options").is_loopback(host)
end

-- Builds the config curl reads from stdin. Returns config, inline or nil, problem.
-- inline: true when the body is inside the config (no fd 3).
local function build_config(self, req)
  local url = req.url
  if type(url) ~= "string" or find(url, "[%z\1-\32\127]") then return nil, "the URL is not a valid URL" end
  local lines = {
    "url = " .. quote(url),
    "silent", "show-error",       -- no progress meter; curl's error text on stderr
    "globoff", "path-as-is",      -- send the URL exactly: no [] globbing, no /../ squashing
    "no-location",                -- never follow a redirect (the token must not travel elsewhere)
    'proto = "=http,https"',
    -- environment proxies, but never for loopback: "*" for every host cometkey counts as loopback
    "noproxy = " .. (loopback(url) and '"*"' or '"localhost,127.0.0.1,::1"'),
    'dump-header = "-"',          -- every header block on stdout, before the body
    "write-out = " .. quote(TRAILER),
    "max-filesize = " .. format("%d", self.max_body),
    "max-time = " .. seconds(req.timeout),
    "connect-timeout = " .. seconds(min(self.connect_timeout, req.timeout)),
    'header = "Expect:"',         -- no 100-continue round trip for large bodies
  }
  if req.method ~= "GET" or req.body ~= nil then lines[#lines + 1] = "request = " .. quote(req.method) end
  if self.ca_file then lines[#lines + 1] = "cacert = " .. quote(self.ca_file) end
  if not self.verify then lines[#lines + 1] = "insecure" end
  local names = {}
  for name in pairs(req.headers or {}) do names[#names + 1] = name end
  sort(names)
  for _, name in ipairs(names) do
    local value = tostring(req.headers[name])
    if not match(name, "^[%w!#$%%&'*+.^_`|~-]+$") or find(value, "[%z\1-\8\10-\31\127]") then
      return nil, "request header '" .. name .. "' has a control character or an invalid name"
    end
    lines[#lines + 1] = "header = " .. quote(name .. ": " .. value)
  end
  local body, inline = req.body, false
  if body ~= nil then
    if HAS_DEV_FD then
      lines[#lines + 1] = 'data-binary = "@/dev/fd/3"'
    else
      if find(body, "%z") or #body > M.MAX_INLINE_BODY then
        return nil, "the request body is too large for curl's config on this platform"
      end
      lines[#lines + 1] = "data-raw = " .. quote(body)
      inline = true
    end
  end
  lines[#lines + 1] = ""
  return concat(lines, "\n"), inline
end
M._build_config = build_config

-- ---------------------------------------------------------------- response

M.MAX_HEADER_BYTES = 256 * 1024 -- response header bytes, every block of one response
M.MAX_HEADER_FIELDS = 500       -- response header fields, every block of one response

-- Status and header fields of the last header block (a proxy's CONNECT answer or
-- a 1xx comes before it); lower-case names, repeated fields joined with ", " once
-- at the end (linear time). A status line starts a new block: "HTTP/" cannot
-- begin a field name. Returns nil, nil, "too_large" past the caps.
local function parse_head(head)
  if #head > M.MAX_HEADER_BYTES then return nil, nil, "too_large" end
  local status, headers, repeated
  local fields = 0
  for line in gmatch(head, "[^\r\n]+") do
    local code = match(line, "^HTTP/%S+%s+(%d%d%d)")
    if code then
      status, headers, repeated = tonumber(code), {}, nil
    elseif headers then
      fields = fields + 1
      if fields > M.MAX_HEADER_FIELDS then return nil, nil, "too_large" end
      local colon = find(line, ":", 1, true)
      if colon and colon > 1 and not find(line, "^[ \t]") then
        local name = lower(sub(line, 1, colon - 1))
        local first, last = colon + 1, #line
        while first <= last and (byte(line, first) == 32 or byte(line, first) == 9) do first = first + 1 end
        while last >= first and (byte(line, last) == 32 or byte(line, last) == 9) do last = last - 1 end
        local value = sub(line, first, last)
        repeated = header_fields.add(headers, repeated, name, value)
      end
    end
  end
  header_fields.join(headers, repeated)
  return status, headers or {}
end
M._parse_head = parse_head

-- A failure of this transport's own (not a curl exit code): facts to cometkey.errors.
local function failure(where, kind, text, info)
  return errors.failure(where, { kind = kind, text = text, retryable = info.retryable, sent = info.sent,
    code = info.curl_code })
end

-- curl's own message from stderr ("curl: (7) Failed to connect ..." -> "Failed to connect ...").
local function curl_text(stderr, code)
  local text = match(stderr, "curl: %(%d+%) ([^\n]*)") or match(stderr, "([^\n]+)")
  return text or ("curl exited with code " .. tostring(code))
end

-- Turns a finished curl run into res | nil, message, info.
local function outcome(self, run)
  local where, out = run.where, run.out
  if run.cancelled then
    return failure(where, "network", "the client was closed", { retryable = false, sent = true })
  end
  if run.over_cap then
    return failure(where, "too_large", format("body exceeds max_body (%d bytes)", self.max_body),
      { retryable = false, sent = true })
  end
  if run.timed_out then
    return failure(where, "timeout", format("no answer within %s s (curl was killed)", seconds(run.timeout)),
      { retryable = true, sent = true })
  end
  local at, http_code, head_bytes, request_bytes = match(sub(out, -96), TRAILER_PATTERN)
  if at then at = #out - #sub(out, -96) + at end
  local code = run.code
  local sent = request_bytes == nil or tonumber(request_bytes) > 0
  if code ~= 0 or run.signal ~= 0 or not at then
    local info = { curl_code = code, retryable = false, sent = sent }
    if run.signal ~= 0 then
      return failure(where, "network", "curl was killed by signal " .. tostring(run.signal), info)
    end
    if code == 0 then
      return failure(where, "network", "curl gave no response status", info)
    end
    local text = code == errors.CURL.too_large and format("body exceeds max_body (%d bytes)", self.max_body)
      or curl_text(run.err, code)
    local kind
    if code == 100 or code == 27 or (code == 56 and find(text, "Too large response header", 1, true)) then
      -- curl's own refusal of oversized response headers (CURLE_TOO_LARGE from 8.6; before:
      -- "Out of memory" for a header line over 100 KiB, "Too large response headers" for the block)
      kind, text = "too_large", "a response header is larger than curl accepts (" .. text .. ")"
    end
    return errors.curl_failure(where, { code = code, text = text, sent = sent, kind = kind })
  end
  local data = sub(out, 1, at - 1)
  head_bytes = tonumber(head_bytes)
  if head_bytes > #data then head_bytes = #data end
  local body = sub(data, head_bytes + 1)
  if #body > self.max_body then
    return failure(where, "too_large", format("body exceeds max_body (%d bytes)", self.max_body),
      { retryable = false, sent = true })
  end
  local status, headers, over = parse_head(sub(data, 1, head_bytes))
  if over then
    return failure(where, "too_large", format("headers exceed %d bytes or %d fields", M.MAX_HEADER_BYTES,
      M.MAX_HEADER_FIELDS), { retryable = false, sent = true })
  end
  return { status = status or tonumber(http_code), headers = headers, body = body }
end

-- ---------------------------------------------------------------- the child process

local function close_handle(h)
  if h and not h:is_closing() then h:close() end
end

-- Starts one curl run; done(res | nil, message, info) is called once, from a
-- luv callback (fast context: no vim.api there). Returns the run.
function M._start(self, req, done)
  local where = where_of(req)
  local run = { where = where, out = "", err = "", timeout = req.timeout or self.timeout }
  local finished = false
  local function finish(...)
    if finished then return end
    finished = true
    done(...)
  end
  if self.closed then
    finish(failure(where, "network", "the client was closed", { retryable = false, sent = false }))
    return run
  end
  req.timeout = run.timeout
  local config, inline = build_config(self, req)
  if not config then
    finish(failure(where, "network", inline, { retryable = false, sent = false }))
    return run
  end

  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local stdio = { stdin, stdout, stderr }
  local fds, body_pipe
  if req.body ~= nil and not inline then
    local why
    fds, why = uv.pipe() -- a real pipe (not a socketpair) so the child can open /dev/fd/3
    if not fds then
      close_handle(stdin); close_handle(stdout); close_handle(stderr)
      finish(failure(where, "network", "cannot create a pipe: " .. tostring(why), { retryable = true, sent = false }))
      return run
    end
    stdio[4] = fds.read
  end

  local out_parts, err_parts, out_bytes = {}, {}, 0
  local cap = self.max_body + M.HEADER_SLACK
  local pending = 3 -- process exit, stdout EOF, stderr EOF
  local handle, watchdog

  local function step()
    pending = pending - 1
    if pending > 0 then return end
    close_handle(watchdog)
    self.running[run] = nil
    run.out, run.err = concat(out_parts), concat(err_parts)
    local ok, res, message, info = pcall(outcome, self, run)
    if not ok then
      return finish(failure(where, "network", "internal error: " .. tostring(res), { retryable = false, sent = true }))
    end
    finish(res, message, info)
  end

  local pid
  handle, pid = uv.spawn(self.curl, { args = { "-q", "--config", "-" }, stdio = stdio, hide = true },
    function(code, signal)
      run.code, run.signal = code, signal
      live[handle] = nil
      close_handle(handle)
      step()
    end)
  if fds then uv.fs_close(fds.read) end
  if not handle then
    close_handle(stdin); close_handle(stdout); close_handle(stderr)
    if fds then uv.fs_close(fds.write) end
    finish(failure(where, "network", "cannot run " .. tostring(self.curl) .. " (" .. tostring(pid)
      .. "); the Neovim transport needs the curl command-line tool", { retryable = false, sent = false }))
    return run
  end
  run.pid, run.handle = pid, handle
  live[handle] = self
  self.running[run] = true

  local function kill(flag)
    run[flag] = true
    if not handle:is_closing() then handle:kill("sigkill") end
  end
  run.kill = kill

  watchdog = uv.new_timer()
  watchdog:start(ceil((run.timeout + M.KILL_GRACE) * 1000), 0, function() kill("timed_out") end)

  stdout:read_start(function(err, chunk)
    if chunk then
      out_bytes = out_bytes + #chunk
      if out_bytes > cap then
        kill("over_cap")
      else
        out_parts[#out_parts + 1] = chunk
      end
      return
    end
    if err then err_parts[#err_parts + 1] = "\n" .. tostring(err) end
    close_handle(stdout)
    step()
  end)
  stderr:read_start(function(err, chunk)
    if chunk then
      if #err_parts < 64 then err_parts[#err_parts + 1] = chunk end
      return
    end
    if err then err_parts[#err_parts + 1] = tostring(err) end
    close_handle(stderr)
    step()
  end)

  stdin:write(config)
  stdin:shutdown(function() close_handle(stdin) end)
  if fds then
    body_pipe = uv.new_pipe(false)
    body_pipe:open(fds.write)
    -- A write error (curl died early) shows up in curl's exit status instead.
    body_pipe:write(req.body, function() close_handle(body_pipe) end)
  end
  return run
end

-- ---------------------------------------------------------------- transport object

local Transport = {}
Transport.__index = Transport
Transport.name = "nvim"
Transport.needs_token = true -- the Authorization header arrives in req.headers

--- new(conf) --> transport
-- conf: the client's parsed options (timeout, connect_timeout, verify, ca_file, max_body).
function M.new(conf)
  conf = conf or {}
  hook_exit()
  return setmetatable({
    curl = M.curl,
    timeout = conf.timeout or 30,
    connect_timeout = conf.connect_timeout or 10,
    verify = conf.verify ~= false,
    ca_file = conf.ca_file,
    max_body = conf.max_body or 8 * 1024 * 1024,
    running = setmetatable({}, { __mode = "k" }),
    closed = false,
  }, Transport)
end

function Transport:__tostring()
  return "cometkey.transport.nvim (" .. (self.closed and "closed" or "open") .. ")"
end

local function pack(...) return { n = select("#", ...), ... } end

--- request_async(req, cb): non-blocking; cb(res | nil, message, info) later, on the main loop.
function Transport:request_async(req, cb)
  M._start(self, req, function(...)
    local r = pack(...)
    vim.schedule(function() cb(unpack(r, 1, r.n)) end)
  end)
end

--- request(req) --> res | nil, message, info
-- Synchronous: waits with vim.wait(), which keeps the editor frozen (apart
-- from processing events) until curl finishes or the timeout passes. Use a
-- trailing callback on the client's methods to stay non-blocking.
function Transport:request(req)
  if vim.in_fast_event() then
    error("cometkey.transport.nvim: a synchronous request cannot run inside a luv callback; "
      .. "pass a callback to the client's method instead", 0) -- no position: it would name cometkey's internals
  end
  local result
  local run = M._start(self, req, function(...) result = pack(...) end)
  local limit = ceil((run.timeout + M.KILL_GRACE + 1) * 1000)
  vim.wait(limit, function() return result ~= nil end, 2) -- 2 ms: the editor is blocked anyway
  if result == nil then -- the watchdog should have fired already; make sure nothing is left
    if run.kill then run.kill("timed_out") end
    return failure(run.where, "timeout", "no answer from curl", { retryable = true, sent = true })
  end
  return unpack(result, 1, result.n)
end

--- sleep(seconds): vim.wait (blocks the editor; used by synchronous retries)
function Transport.sleep(_, s)
  vim.wait(max(s, 0) * 1000)
end

--- sleep_async(seconds, cb): a luv timer, then cb() on the main loop
function Transport.sleep_async(_, s, cb)
  local timer = uv.new_timer()
  timer:start(max(ceil(s * 1000), 0), 0, function()
    timer:close()
    vim.schedule(cb)
  end)
end

--- now() --> monotonic seconds (float)
function Transport.now()
  return uv.hrtime() / 1e9
end

--- defer(fn): runs fn on the main loop, never in a luv callback (safe to call vim.api).
function Transport.defer(_, fn)
  vim.schedule(fn)
end

--- close(): kills this transport's running curl processes (their callbacks
-- report "the client was closed"); later requests fail the same way. Idempotent.
function Transport:close()
  if self.closed then return end
  self.closed = true
  while true do
    local run = next(self.running)
    if not run then break end
    self.running[run] = nil
    if run.kill then run.kill("cancelled") end
  end
end

return M
