--- fuzz/fuzz_resty.lua - a deterministic, bounded Lua fuzz loop for the response reader
-- of the resty (nginx cosocket) transport, run under plain Lua 5.4 with a fake ngx and a
-- fake cosocket (spec/support/fakehosts.lua): libFuzzer cannot drive Lua code.
--
--   lua5.4 fuzz/fuzz_resty.lua SECONDS [SEED] [MAX_RUNS]     (from the repository root)
--
-- Each run mutates a seed response (fuzz/corpus/resty/*, plus built-in ones) and passes it
-- to Transport:request through the fake socket, and its header block to read_headers.
-- Checks: nothing raises; a result is either a response (integer status 100..999, string
-- headers with lower-case names and trimmed values, a body within max_body) or nil, a
-- one-line "cometkey: GET /x: " message and a known kind; every input takes < 1 s of CPU
-- (no quadratic path). Exits 1 with the failing input saved in build/fuzz/artifacts-resty/.
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
local fake = require "spec.support.fakehosts"

local SECONDS = tonumber(arg[1]) or 10
local SEED = tonumber(arg[2]) or 15
local MAX_RUNS = tonumber(arg[3]) or 1000000
local SLOW = 1.0 -- CPU seconds one input may take

local resty = fake.resty()
local MAX_BODY = 65536
local transport = resty.new { timeout = 5, connect_timeout = 1, verify = true, max_body = MAX_BODY }

math.randomseed(SEED)
local random = math.random

local seeds = {
  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: t\r\n\r\n",
  "HTTP/1.0 429 Too Many\r\nRetry-After: 5\r\nRetry-After: 6\r\n\r\n",
  "HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nSet-Cookie: b\r\nX:  spaced  \r\nContent-Length: 1\r\n\r\nx",
  "HTTP/1.1 204 No Content\r\n\r\n",
}
do
  local p = io.popen("ls fuzz/corpus/resty 2>/dev/null")
  for name in p:read("*a"):gmatch("[^\n]+") do
    local f = io.open("fuzz/corpus/resty/" .. name, "rb")
    if f then seeds[#seeds + 1] = f:read("*a"); f:close() end
  end
  p:close()
end

local TOKENS = { "\r\n", "\n", ":", " ", "\t", ",", "HTTP/1.1 ", "100 ", "200 ", "Content-Length: ",
  "Transfer-Encoding: chunked", "Connection: close", "0\r\n\r\n", "ffffffff\r\n", "X-A: v\r\n", "\0", "\r" }

local function mutate(s)
  for _ = 1, random(1, 4) do
    local op, n = random(1, 8), #s
    local at = random(1, n + 1)
    if op == 1 then -- flip a byte
      if n > 0 then s = s:sub(1, at - 1) .. string.char(random(0, 255)) .. s:sub(at + 1) end
    elseif op == 2 then -- delete a run
      s = s:sub(1, at - 1) .. s:sub(at + random(1, 8))
    elseif op == 3 then -- insert a token
      s = s:sub(1, at - 1) .. TOKENS[random(#TOKENS)] .. s:sub(at)
    elseif op == 4 then -- repeat a header line many times (floods)
      local line = s:match("\n([^\r\n]+\r?\n)", at) or "X-A: v\r\n"
      s = s:sub(1, at - 1) .. line:rep(random(1, 4) == 1 and random(400, 20000) or random(2, 50)) .. s:sub(at)
    elseif op == 5 then -- a long run of blanks (backtracking)
      s = s:sub(1, at - 1) .. (random(2) == 1 and " " or "\t"):rep(random(1, 100000)) .. s:sub(at)
    elseif op == 6 then -- splice another seed
      local o = seeds[random(#seeds)]
      s = s:sub(1, at - 1) .. o:sub(random(1, #o))
    elseif op == 7 then -- truncate
      s = s:sub(1, at)
    else -- a long line
      s = s:sub(1, at - 1) .. ("a"):rep(random(1, 300000)) .. s:sub(at)
    end
    if #s > 1048576 then s = s:sub(1, 1048576) end -- beyond every cap anyway
  end
  return s
end

local KINDS = { network = true, timeout = true, too_large = true, tls = true }

local function check(input)
  -- 1. the whole exchange
  fake.next_socket = function() return fake.cosocket(input) end
  local res, message, info = transport:request { method = "GET", url = "http://127.0.0.1:9/x", headers = {},
    timeout = 5 }
  if res then
    assert(math.type(res.status) == "integer" and res.status >= 100 and res.status <= 999, "bad status")
    assert(type(res.body) == "string" and #res.body <= MAX_BODY, "body over max_body")
    local n = 0
    for k, v in pairs(res.headers) do
      n = n + 1
      assert(type(k) == "string" and k == k:lower() and not k:find(":", 1, true) and k ~= "", "bad header name")
      -- values are trimmed (a repeated field's empty value leaves ", " at an end of the join)
      assert(type(v) == "string" and not v:find("^[ \t]") and (not v:find("[ \t]$") or v:find(", $")),
        "untrimmed value")
    end
    assert(n <= resty.MAX_HEADER_FIELDS, "more fields than the cap")
  else
    assert(type(message) == "string" and message:find("^cometkey: GET /x: ") and not message:find("[\r\n]"),
      "bad message: " .. tostring(message))
    assert(type(info) == "table" and KINDS[info.kind], "bad kind: " .. tostring(info and info.kind))
  end
  -- 2. the header reader alone, on what follows the first line
  local block = input:match("^[^\n]*\n(.*)$") or input
  local headers, budget = {}, { bytes = 0, fields = 0 }
  local ok, err, kind = resty._read_headers(fake.socket(block), math.huge, headers, budget)
  if ok then
    assert(budget.bytes <= resty.MAX_HEADER_BYTES and budget.fields <= resty.MAX_HEADER_FIELDS, "over budget")
  else
    assert(kind == nil or kind == "too_large", "bad kind " .. tostring(kind))
    assert(type(err) == "string", "no error text")
  end
end

local function save(input, why)
  os.execute("mkdir -p build/fuzz/artifacts-resty")
  local path = string.format("build/fuzz/artifacts-resty/crash-%d-%d", SEED, #input)
  local f = assert(io.open(path, "wb"))
  f:write(input)
  f:close()
  io.stderr:write("fuzz_resty: FAILED: ", tostring(why), "\n  input saved in ", path, "\n")
  os.exit(1)
end

local started, runs, worst = os.clock(), 0, 0
while runs < MAX_RUNS and os.clock() - started < SECONDS do
  runs = runs + 1
  local input = mutate(seeds[random(#seeds)])
  local t0 = os.clock()
  local ok, why = pcall(check, input)
  local took = os.clock() - t0
  if took > worst then worst = took end
  if not ok then save(input, why) end
  if took > SLOW then save(input, string.format("took %.2f s of CPU", took)) end
end
print(string.format("fuzz_resty: ok, %d runs in %.1f s (seed %d), slowest input %.3f s", runs,
  os.clock() - started, SEED, worst))
