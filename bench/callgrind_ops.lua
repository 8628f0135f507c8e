--- bench/callgrind_ops.lua: one core operation repeated K times, for counting
-- instructions under `valgrind --tool=callgrind` (run.lua runs K = 0 and K = N
-- and divides the difference by N, so start-up and set-up cancel out).
--   lua5.4 bench/callgrind_ops.lua encode K          core.check + core.request of {id = 1, status = 2}
--   lua5.4 bench/callgrind_ops.lua decode K          core.response on the bench's fixed record
--   lua5.4 bench/callgrind_ops.lua contains K DIR    matcher:contains(IPv4 text) at 10 000 entries
local bench_dir = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "paths.lua")
local core = require "cometkey.core"

local op, k, dir = arg[1], tonumber(arg[2]), arg[3]
assert(op and k, "usage: callgrind_ops.lua encode|decode|contains K [DIR]")

if op == "encode" then
  -- what client:update{id = 1, status = 2} does before the transport
  local conf = { user_agent = "cometkey/" .. core.version }
  local fields = { id = 1, status = 2 }
  for _ = 1, k do
    local normalized = assert(core.check(fields, "update"))
    core.request("status", { id = normalized.id, status = normalized.status }, conf)
  end
elseif op == "decode" then
  local record = assert(io.open(bench_dir .. "/record.json")):read("*a"):gsub("%s+$", "")
  local res = { status = 200, headers = { ["content-type"] = "application/json" }, body = record,
    request = { method = "PUT", path = "/api/token/" } }
  for _ = 1, k do
    assert(core.response("status", res))
  end
elseif op == "contains" then
  local entries = {}
  for line in assert(io.open(dir .. "/entries_10000.txt")):lines() do entries[#entries + 1] = line end
  local addrs = {}
  for line in assert(io.open(dir .. "/v4_10000.txt")):lines() do addrs[#addrs + 1] = line end
  local m = core.allowlist_compile(entries)
  local n = #addrs
  for i = 1, k do m:contains(addrs[(i - 1) % n + 1]) end
else
  error("unknown op " .. op)
end
