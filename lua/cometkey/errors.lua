--- cometkey.errors: the one place that knows how cometkey reports failures.
--   * the kinds of world failures (info.kind) and the labels of transport ones;
--   * the one-line message format "cometkey: METHOD /path: <what>";
--   * the classification of curl failures (libcurl's CURLcode, which is also the
--     curl tool's exit status), shared by the libcurl transport (src/ck_curl.c
--     hands its facts to curl_failure) and the Neovim transport (curl tool);
--   * programmer errors: raise() throws the usual "file:line: cometkey.x: rule"
--     string and remembers what it threw, so catch()/clean() give the rule and
--     the validation problems back as data, without parsing the text.
-- Pure Lua; loads no C module.
local tostring, error, pcall, select, pairs, ipairs = tostring, error, pcall, select, pairs, ipairs
local getinfo = debug.getinfo
local concat, unpack = table.concat, table.unpack or unpack

local M = {}

--- Every info.kind a failure may carry.
M.KINDS = {
  "network",      -- no usable answer (connection refused, reset, DNS, ...)
  "timeout",      -- no answer within the timeout
  "tls",          -- TLS handshake or certificate failure
  "too_large",    -- the response exceeds max_body (or the header cap)
  "http",         -- an unexpected HTTP status (5xx, 3xx, ...)
  "decode",       -- not JSON, or not the {success, message, data} envelope
  "api",          -- success:false
  "auth",         -- 401/403 or the server's authentication texts
  "not_found",    -- 404, record not found
  "rate_limited", -- 429 after retries
  "conflict",     -- expect mismatch, or a stored state that cannot be written back
  "internal",     -- a bug in cometkey (or a callback) caught at the API edge
}
M.is_kind = {}
for _, kind in ipairs(M.KINDS) do M.is_kind[kind] = true end

--- The label a transport failure's message shows after "METHOD /path: ".
M.LABELS = { network = "network error", timeout = "timeout", tls = "TLS error", too_large = "response too large" }

--- message(where, what) --> "cometkey: <where>: <what>" (where: "METHOD /path" or an op name)
function M.message(where, what)
  return "cometkey: " .. where .. ": " .. what
end

--- failure(where, facts) --> nil, message, info
-- facts: { kind, text, retryable, sent, code } from a transport; code is the
-- curl code when there is one (info.curl_code). The message is
-- "cometkey: METHOD /path: <label>: <text>".
function M.failure(where, facts)
  local kind = facts.kind or "network"
  local info = { kind = kind, retryable = facts.retryable == true, sent = facts.sent }
  if facts.code ~= nil then info.curl_code = facts.code end
  return nil, M.message(where, (M.LABELS[kind] or M.LABELS.network) .. ": " .. tostring(facts.text)), info
end

-- ------------------------------------------------------------------ curl codes

--- CURLcode numbers (libcurl's curl.h; the curl tool exits with the same numbers).
M.CURL = {
  timeout = 28,   -- CURLE_OPERATION_TIMEDOUT
  too_large = 63, -- CURLE_FILESIZE_EXCEEDED
  -- TLS failures: SSL_CONNECT_ERROR 35, PEER_FAILED_VERIFICATION 60 (51 before 7.62),
  -- SSL_ENGINE_NOTFOUND 53, SSL_ENGINE_SETFAILED 54, SSL_CERTPROBLEM 58, SSL_CIPHER 59,
  -- USE_SSL_FAILED 64, SSL_ENGINE_INITFAILED 66, SSL_CACERT_BADFILE 77, SSL_SHUTDOWN_FAILED 80,
  -- SSL_CRL_BADFILE 82, SSL_ISSUER_ERROR 83, SSL_PINNEDPUBKEYNOTMATCH 90,
  -- SSL_INVALIDCERTSTATUS 91, SSL_CLIENTCERT 98
  tls = { [35] = true, [51] = true, [53] = true, [54] = true, [58] = true, [59] = true, [60] = true,
    [64] = true, [66] = true, [77] = true, [80] = true, [82] = true, [83] = true, [90] = true, [91] = true,
    [98] = true },
  -- Failures a second attempt cannot fix: UNSUPPORTED_PROTOCOL 1, FAILED_INIT 2, URL_MALFORMAT 3,
  -- NOT_BUILT_IN 4, OUT_OF_MEMORY 27, BAD_FUNCTION_ARGUMENT 43, TOO_MANY_REDIRECTS 47,
  -- UNKNOWN_OPTION 48, LOGIN_DENIED 67
  permanent = { [1] = true, [2] = true, [3] = true, [4] = true, [27] = true, [43] = true, [47] = true,
    [48] = true, [67] = true },
  -- Nothing reached the server: COULDNT_RESOLVE_PROXY 5, COULDNT_RESOLVE_HOST 6, COULDNT_CONNECT 7
  not_sent = { [5] = true, [6] = true, [7] = true },
}

--- curl_kind(code) --> kind, retryable for a curl failure code
function M.curl_kind(code)
  local c = M.CURL
  if code == c.timeout then return "timeout", true end
  if code == c.too_large then return "too_large", false end
  if c.tls[code] then return "tls", false end
  return "network", not c.permanent[code]
end

--- curl_failure(where, facts) --> nil, message, info
-- facts: { code = curl code, text = curl's error text, sent = boolean|nil,
-- kind = "too_large" when the caller's own cap stopped the transfer }.
function M.curl_failure(where, facts)
  local kind, retryable = M.curl_kind(facts.code)
  if facts.kind == "too_large" then kind, retryable = "too_large", false end
  local sent = facts.sent
  if M.CURL.not_sent[facts.code] then sent = false end
  return M.failure(where, { kind = kind, text = facts.text, retryable = retryable, sent = sent, code = facts.code })
end

-- ------------------------------------------------------------------ programmer errors

-- The last error raise() threw: { raised = the string, message, api, rule, problems }.
local last

--- raise(api, rule [, level [, extra]]) -- raises "cometkey.<api>: <rule>" at level (1: the
-- caller of the function that calls raise), positioned as error() would position it.
-- extra: fields kept with it (problems = { { field, message }, ... }, ...); see catch().
function M.raise(api, rule, level, extra)
  level = (level or 1) + 1
  local message = "cometkey." .. api .. ": " .. rule
  local at = getinfo(level, "Sl")
  local raised = message
  if at and at.currentline and at.currentline > 0 then
    raised = at.short_src .. ":" .. at.currentline .. ": " .. message
  end
  last = { raised = raised, message = message, api = api, rule = rule }
  if extra then
    for k, v in pairs(extra) do last[k] = v end
  end
  error(raised, 0)
end

--- problem_text(problems) --> "rule; rule" (how raise words a list of validation problems)
function M.problem_text(problems)
  local parts = {}
  for i = 1, #problems do parts[i] = problems[i].message end
  return concat(parts, "; ")
end

--- raised(err) --> the error object for a value caught from cometkey (see raise), or nil
-- when err is not the last error cometkey raised: { message = "cometkey.update: ...",
-- api = "update", rule = "...", problems = {...} (validation) }.
function M.raised(err)
  if last ~= nil and err == last.raised then return last end
end

--- clean(err) --> the message without a position ("cometkey.update: name: ..."), for
-- errors cometkey raised; anything else as tostring(err).
function M.clean(err)
  local obj = M.raised(err)
  if obj then return obj.message end
  return tostring(err)
end

local function pack(...) return { n = select("#", ...), ... } end

--- catch(fn, ...) --> true, results... | false, object
-- Calls fn; a raised cometkey error comes back as its object (see raised), any
-- other error as { message = tostring(err) }.
function M.catch(fn, ...)
  local r = pack(pcall(fn, ...))
  if r[1] then return unpack(r, 1, r.n) end
  return false, M.raised(r[2]) or { message = tostring(r[2]) }
end

return M
