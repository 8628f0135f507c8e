--- bench/run.lua: `make bench`. Measures cometkey against comparators in the
-- same run, on this machine, and writes bench/RESULTS.md, bench/results.png and
-- bench/callgrind.txt (scratch files go to bench/out/, which git ignores).
--
--   lua5.4 bench/run.lua [all|http|allowlist|callgrind|soak|report] [--quick]
--
--   http       sequential updates (cometkey, C libcurl loop, wrk -c1, Python
--              requests, curl CLI) and bulk at concurrency 16 (update_many,
--              wrk -c16 -t2), 3 interleaved rounds, medians; CPU and peak RSS
--   allowlist  equivalence check first (abort on any difference), then compile,
--              lookup and memory figures: cometkey (Lua 5.4, LuaJIT, C),
--              pure-Lua linear scan and hash-per-prefix (Lua 5.4, LuaJIT), grepcidr
--   callgrind  instruction counts of single operations (bench/callgrind.txt)
--   soak       100 000 updates through one client, RSS every 20 000
--   pace       bulk at the server's pace against the mock's limiter (cometkey, a naive
--              loop, cometkey 0.1) and a streamed 1 000 000-item update_many (peak RSS)
--   all        everything above, then the report (the default)
--   report     rewrites the report from bench/out/results-all.txt (the last full run)
-- --quick runs short, single rounds (a smoke test; figures are not meaningful).
-- Everything talks to 127.0.0.1 only; the bench nginx is started on a free port
-- and stopped before this script exits, whatever happens.
local bench_dir = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "paths.lua")
local util = dofile(bench_dir .. "/util.lua")
local server = dofile(bench_dir .. "/server.lua")

local root = bench_dir:gsub("/bench$", "")
local OUT = bench_dir .. "/out"
local BIN = OUT .. "/bin"
local AL = OUT .. "/allowlist"
local q = util.quote

local mode, quick = "all", false
for _, a in ipairs(arg) do
  if a == "--quick" then quick = true else mode = a end
end

local SECONDS = quick and 1 or 3     -- target length of one HTTP measurement (whole seconds: wrk -d)
local ROUNDS = quick and 1 or 3
local SOAK_N, SOAK_EVERY = quick and 10000 or 100000, quick and 2000 or 20000
local CG_K = quick and 200 or 2000   -- repetitions per callgrind count
local TOKEN = "bench-token-0123456789"

local function log(fmt, ...)
  io.stderr:write(string.format("bench: " .. fmt, ...), "\n")
  io.stderr:flush()
end

--- run(argv) --> merged key=value table of every output line, raw output; raises on failure
local function run(argv, allow_fail)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = q(a) end
  local out, ok = util.capture(table.concat(parts, " ") .. " 2>&1")
  if not ok and not allow_fail then error("bench: command failed: " .. table.concat(argv, " ") .. "\n" .. out, 0) end
  local kv = {}
  for line in out:gmatch("[^\n]+") do
    for k, v in pairs(util.kv(line)) do kv[k] = v end
  end
  return kv, out, ok
end

local function lines_kv(out)
  local list = {}
  for line in out:gmatch("[^\n]+") do
    if line:find("=", 1, true) then list[#list + 1] = util.kv(line) end
  end
  return list
end

-- ------------------------------------------------------------------ set-up

local CWARN = "-std=c99 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes -Wstrict-prototypes"

local function build_tools()
  util.execute("mkdir -p " .. q(BIN) .. " " .. q(AL))
  local curl_flags = util.capture("pkg-config --cflags --libs libcurl 2>/dev/null")
  if curl_flags == "" then curl_flags = "-lcurl" end
  local cmds = {
    "cc " .. CWARN .. " -O2 -D_POSIX_C_SOURCE=200809L -o " .. q(BIN .. "/c_loop") .. " " .. q(bench_dir .. "/c_loop.c")
      .. " " .. curl_flags,
    "cc " .. CWARN .. " -O2 -D_DEFAULT_SOURCE -o " .. q(BIN .. "/rusage") .. " " .. q(bench_dir .. "/rusage.c"),
    "cc " .. CWARN .. " -O2 -D_POSIX_C_SOURCE=200809L -I" .. q(root .. "/src") .. " -o " .. q(BIN .. "/cidr_bench")
      .. " " .. q(bench_dir .. "/cidr_bench.c") .. " " .. q(root .. "/src/ck_cidr.c"),
  }
  for _, cmd in ipairs(cmds) do
    local out, ok = util.capture(cmd .. " 2>&1")
    if not ok then error("bench: build failed: " .. cmd .. "\n" .. out, 0) end
  end
end

local function need(cmd, why)
  if not util.execute("command -v " .. q(cmd) .. " >/dev/null 2>&1") then
    error("bench: " .. cmd .. " is missing (" .. why .. "); run `make deps-bench`", 0)
  end
end

local function machine()
  local m = {}
  local cpuinfo = util.read_file("/proc/cpuinfo") or ""
  m.cpu = cpuinfo:match("model name%s*:%s*([^\n]+)") or "unknown CPU"
  m.cores = util.capture("nproc")
  m.kernel = util.capture("uname -sr")
  m.lua = util.capture("lua5.4 -v 2>&1"):match("^(Lua %S+)") or "?"
  m.luajit = util.capture("luajit -v 2>&1"):match("^(LuaJIT %S+)") or "not installed"
  local ccurl = require "cometkey.curl"
  m.libcurl = "libcurl " .. tostring((ccurl.version()))
  m.nginx = util.capture("nginx -v 2>&1"):match("nginx/(%S+)") or "?"
  m.python = util.capture("/usr/bin/python3 -c 'import sys, requests; "
    .. "print(sys.version.split()[0] + \" + requests \" + requests.__version__)' 2>&1")
  m.wrk = util.capture("wrk -v 2>&1"):match("wrk (%S+)") or "?"
  m.grepcidr = util.capture("grepcidr -V 2>&1"):match("grepcidr (%S+)") or "?"
  m.load = (util.read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)") or "?"
  m.date = os.date("!%Y-%m-%d %H:%M UTC")
  return m
end

-- ------------------------------------------------------------------ HTTP

-- The exact request client:update{id = 1, status = 2} sends, for the comparators.
local function request_shape(base_url)
  local core = require "cometkey.core"
  local built = core.request("status", { id = 1, status = 2 }, { user_agent = "cometkey/" .. core.version })
  local headers = { "Authorization: " .. TOKEN }
  local names = {}
  for name in pairs(built.headers) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do headers[#headers + 1] = name .. ": " .. built.headers[name] end
  return {
    method = built.method,
    url = base_url .. built.path .. (built.query and ("?" .. built.query) or ""),
    body = built.body,
    headers = headers,
  }
end

local function concat_lists(...)
  local out = {}
  for _, list in ipairs({ ... }) do
    for _, v in ipairs(list) do out[#out + 1] = v end
  end
  return out
end

-- Normalises one client run into { rate, requests, seconds, cpu_us, hwm_kb, failed }.
local function figures(kv)
  local requests, seconds = kv.requests, kv.seconds
  local cpu = kv.cpu or kv.rusage_cpu
  return {
    requests = requests,
    seconds = seconds,
    rate = requests / seconds,
    cpu_us = cpu and cpu / requests * 1e6 or nil,
    cpu_whole_process = kv.cpu == nil and kv.rusage_cpu ~= nil,
    hwm_kb = kv.hwm_kb or kv.rusage_hwm_kb,
    failed = kv.failed or 0,
  }
end

local function wrk_figures(kv, out)
  local requests, secs, unit = out:match("(%d+) requests in ([%d.]+)(%a+)")
  assert(requests, "bench: cannot read wrk's output:\n" .. out)
  local seconds = tonumber(secs) * ((unit == "ms" and 1e-3) or (unit == "m" and 60) or 1)
  kv.requests, kv.seconds = tonumber(requests), seconds
  kv.failed = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)")) or 0
  local socket_errors = out:match("Socket errors: ([^\n]+)")
  if socket_errors then
    for n in socket_errors:gmatch("%a+ (%d+)") do kv.failed = kv.failed + tonumber(n) end
  end
  return figures(kv)
end

local function http_clients(shape, url)
  local tail = concat_lists({ shape.method, shape.body }, shape.headers)
  local clients = {}
  clients.cometkey = function(n)
    return figures((run { "lua5.4", bench_dir .. "/client_cometkey.lua", url, "seq", tostring(n) }))
  end
  clients.c_loop = function(n)
    return figures((run(concat_lists({ BIN .. "/c_loop", shape.url, tostring(n) }, tail))))
  end
  clients.wrk_c1 = function(seconds)
    local kv, out = run(concat_lists({ BIN .. "/rusage", "wrk", "-c1", "-t1", "-d" .. seconds .. "s",
      "-s", bench_dir .. "/wrk_put.lua", shape.url, "--" }, tail))
    return wrk_figures(kv, out)
  end
  clients.python = function(n)
    return figures((run(concat_lists({ "/usr/bin/python3", bench_dir .. "/client_python.py", shape.url,
      tostring(n) }, tail))))
  end
  clients.curl_cli = function(n)
    local kv = run(concat_lists({ BIN .. "/rusage", "sh", bench_dir .. "/curl_loop.sh", shape.url, tostring(n) },
      tail))
    return figures(kv)
  end
  clients.cometkey_bulk = function(n)
    return figures((run { "lua5.4", bench_dir .. "/client_cometkey.lua", url, "bulk", tostring(n), "16" }))
  end
  clients.c_multi = function(n)
    return figures((run(concat_lists({ BIN .. "/c_loop", "--multi=16", shape.url, tostring(n) }, tail))))
  end
  clients.wrk_c16 = function(seconds)
    local kv, out = run(concat_lists({ BIN .. "/rusage", "wrk", "-c16", "-t2", "-d" .. seconds .. "s",
      "-s", bench_dir .. "/wrk_put.lua", shape.url, "--" }, tail))
    return wrk_figures(kv, out)
  end
  return clients
end

-- Runs each client of order ROUNDS times, interleaved (the start rotates each
-- round), and keeps the median rate; sizes[name] is its request count or duration.
local function interleaved(clients, order, sizes)
  local runs = {}
  for _, name in ipairs(order) do runs[name] = {} end
  for round = 1, ROUNDS do
    for k = 0, #order - 1 do
      local name = order[(round - 1 + k) % #order + 1]
      local f = clients[name](sizes[name])
      log("  round %d %-14s %9.0f req/s  (%d requests, %.2f s, failed %d)", round, name, f.rate, f.requests,
        f.seconds, f.failed)
      if f.failed > 0 then error("bench: " .. name .. " had " .. f.failed .. " failed requests", 0) end
      table.insert(runs[name], f)
    end
  end
  local result = {}
  for name, list in pairs(runs) do
    local rates, cpus, hwm = {}, {}, 0
    for i, f in ipairs(list) do
      rates[i] = f.rate
      cpus[#cpus + 1] = f.cpu_us
      hwm = math.max(hwm, f.hwm_kb or 0)
    end
    result[name] = {
      rate = util.median(rates), rates = rates, cpu_us = util.median(cpus), hwm_kb = hwm,
      requests = list[1].requests, cpu_whole_process = list[1].cpu_whole_process,
    }
  end
  return result
end

local function clamp(x, lo, hi) return math.max(lo, math.min(hi, math.floor(x))) end

local function http_section(results, url, shape)
  local clients = http_clients(shape, url)
  log("sequential: calibrating request counts for ~%g s per run", SECONDS)
  local c_rate = clients.c_loop(2000).rate
  local py_rate = clients.python(200).rate
  local curl_rate = clients.curl_cli(20).rate
  local n_fast = clamp(c_rate * SECONDS, 2000, 500000)
  local sizes = {
    cometkey = n_fast, c_loop = n_fast, wrk_c1 = SECONDS,
    python = clamp(py_rate * SECONDS, 200, 100000),
    curl_cli = clamp(curl_rate * SECONDS * 2 / 3, 20, 5000),
  }
  log("sequential: %d rounds (cometkey and C loop %d requests, python %d, curl CLI %d, wrk %g s)", ROUNDS,
    n_fast, sizes.python, sizes.curl_cli, SECONDS)
  results.seq = interleaved(clients, { "cometkey", "c_loop", "wrk_c1", "python", "curl_cli" }, sizes)

  log("bulk: calibrating")
  local bulk_rate = clients.cometkey_bulk(2000).rate
  local multi_rate = clients.c_multi(2000).rate
  local bulk_sizes = { cometkey_bulk = clamp(bulk_rate * SECONDS, 2000, 500000), wrk_c16 = SECONDS,
    c_multi = clamp(multi_rate * SECONDS, 2000, 500000) }
  log("bulk: %d rounds (update_many %d updates at concurrency 16, C multi loop %d, wrk -c16 -t2 %g s)", ROUNDS,
    bulk_sizes.cometkey_bulk, bulk_sizes.c_multi, SECONDS)
  results.bulk = interleaved(clients, { "cometkey_bulk", "c_multi", "wrk_c16" }, bulk_sizes)
end

local function soak_section(results, url)
  log("soak: %d updates through one client, RSS every %d", SOAK_N, SOAK_EVERY)
  local _, out = run { "lua5.4", bench_dir .. "/client_cometkey.lua", url, "soak", tostring(SOAK_N),
    tostring(SOAK_EVERY) }
  local points, summary = {}, nil
  for _, kv in ipairs(lines_kv(out)) do
    if kv.done then points[#points + 1] = kv elseif kv.requests then summary = kv end
  end
  for _, p in ipairs(points) do log("  soak %7d updates: VmRSS %d kB, Lua heap %d kB", p.done, p.rss_kb, p.lua_kb) end
  assert(summary and #points >= 2, "bench: soak printed no summary:\n" .. out)
  if summary.failed > 0 then error("bench: soak had " .. summary.failed .. " failed updates", 0) end
  results.soak = { points = points, requests = summary.requests, seconds = summary.seconds, hwm_kb = summary.hwm_kb }
end

-- ------------------------------------------------------------------ pace and streaming (issue 13)

local PACE = { requests = 60, seconds = 1, items = quick and 120 or 600 }
local STREAM_N = quick and 20000 or 1000000
local V01_COMMIT = "9e7d518" -- cometkey 0.1's last commit (its update_many, for comparison)

local function pace_section(results)
  local v01 = OUT .. "/v01"
  util.execute("rm -rf " .. q(v01) .. " && mkdir -p " .. q(v01))
  local _, got = util.capture("git -C " .. q(root) .. " archive " .. V01_COMMIT .. " lua | tar -x -C " .. q(v01)
    .. " 2>&1")
  if not got then log("pace: cannot extract cometkey 0.1 (%s): no 0.1 rows", V01_COMMIT) end
  log("pace: %d items per scenario against the mock limited to %d requests per %g s", PACE.items, PACE.requests,
    PACE.seconds)
  local argv = { "lua5.4", bench_dir .. "/bulk_pace.lua", "pace", tostring(PACE.requests), tostring(PACE.seconds),
    tostring(PACE.items) }
  if got then argv[#argv + 1] = v01 .. "/lua" end
  local _, out = run(argv)
  local rows = {}
  for _, kv in ipairs(lines_kv(out)) do
    if kv.name then
      rows[#rows + 1] = kv
      log("  %-22s %6.1f s, bound %6.1f s, ratio %.3f, %d accepted, %d refused, %d failed", kv.name, kv.seconds,
        kv.bound, kv.ratio, kv.accepted, kv.refused, kv.failed)
    end
  end
  results.pace = { limit = PACE, rows = rows }
end

local function stream_section(results, url)
  log("stream: update_many over %d status updates from an iterator, keep_results = false", STREAM_N)
  local kv = run { "lua5.4", bench_dir .. "/bulk_pace.lua", "rss", url, tostring(STREAM_N), "16" }
  log("  %d updates in %.1f s, failed %d, peak RSS %d kB (at start %d kB)", kv.requests, kv.seconds, kv.failed,
    kv.hwm_kb, kv.start_kb)
  if kv.failed > 0 then error("bench: the streamed run had " .. kv.failed .. " failed updates", 0) end
  results.stream = kv
end

-- ------------------------------------------------------------------ callgrind

local function collected(out)
  return tonumber((out:match("Collected%s*:%s*(%d+)")))
end

-- figure -> C function (bench/symbols.lua: resolved from the built modules, not written here)
local figure_symbols

-- Instructions per operation: (Ir(k) - Ir(0)) / k, plus the inclusive cost per
-- operation of the C function of each wanted figure in the k run (from callgrind_annotate).
local function callgrind_count(argv_of, k, wanted)
  local cg_file = OUT .. "/callgrind.out"
  local base_argv = concat_lists({ "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null" }, argv_of(0))
  local _, out0 = run(base_argv)
  local argv = concat_lists({ "valgrind", "--tool=callgrind", "--callgrind-out-file=" .. cg_file }, argv_of(k))
  local _, out1 = run(argv)
  local ir0, ir1 = collected(out0), collected(out1)
  assert(ir0 and ir1, "bench: no callgrind totals:\n" .. out1)
  local per = { total = (ir1 - ir0) / k, parts = {} }
  local annotated = util.capture("callgrind_annotate --inclusive=yes --threshold=100 " .. q(cg_file) .. " 2>/dev/null")
  -- lines like "  359,244,017 (52.94%)  /work/main/src/ck_curl.c:l_perform [...]"
  local inclusive = {}
  for line in annotated:gmatch("[^\n]+") do
    local count, fn = line:match("^%s*([%d,]+) %([^)]*%)%s+%S-:([%w_]+)%f[^%w_']")
    if fn then
      local ir = tonumber((count:gsub(",", "")))
      inclusive[fn] = math.max(inclusive[fn] or 0, ir)
    end
  end
  for _, figure in ipairs(wanted or {}) do
    local symbol = assert(figure_symbols[figure], "bench: no C function for the figure " .. figure)
    if not inclusive[symbol] then
      error("bench: callgrind saw no " .. symbol .. " (figure " .. figure .. "); see bench/symbols.lua")
    end
    per.parts[#per.parts + 1] = { name = figure, symbol = symbol, ir = inclusive[symbol] / k }
  end
  os.remove(cg_file)
  return per
end

local function callgrind_section(results, url)
  need("valgrind", "callgrind instruction counts")
  log("callgrind: instruction counts (%d repetitions each)", CG_K)
  figure_symbols = {}
  for line in util.capture("CK_BUILD=build/5.4 lua5.4 " .. q(bench_dir .. "/symbols.lua")):gmatch("[^\n]+") do
    local figure, symbol = line:match("^(%S+) (%S+)$")
    assert(figure, "bench: bench/symbols.lua failed: " .. line)
    figure_symbols[figure] = symbol
  end
  local cg = {}
  local function ops(op)
    return function(k) return { "lua5.4", bench_dir .. "/callgrind_ops.lua", op, tostring(k), AL } end
  end
  -- (no json_dumps: the one-pass encoder never calls it, and a figure callgrind does not see is fatal)
  cg.encode = callgrind_count(ops("encode"), CG_K, { "check", "request", "json_encode" })
  cg.decode = callgrind_count(ops("decode"), CG_K, { "response", "json_decode", "json_loadb" })
  cg.contains = callgrind_count(ops("contains"), CG_K * 10, { "contains", "contains_text" })
  if url then
    local k = math.floor(CG_K / 2)
    cg.update_io = callgrind_count(function(n)
      return { "lua5.4", bench_dir .. "/client_cometkey.lua", url, "seq", tostring(n) }
    end, k, { "check", "request", "response", "json_decode", "json_loadb", "perform", "curl_easy_perform",
      "outcome" })
    cg.bulk_io = callgrind_count(function(n)
      return { "lua5.4", bench_dir .. "/client_cometkey.lua", url, "bulk", tostring(n), "16" }
    end, k, { "check", "request", "response", "multi_add", "multi_wait",
      "curl_multi_perform" })
    local shape = results.shape
    cg.c_loop = callgrind_count(function(n)
      return concat_lists({ BIN .. "/c_loop", shape.url, tostring(n), shape.method, shape.body }, shape.headers)
    end, k, { "curl_easy_perform" })
  end
  results.callgrind = cg
end

-- ------------------------------------------------------------------ allowlist

local function allowlist_section(results)
  need("grepcidr", "allowlist comparator")
  log("allowlist: generating the lists")
  run { "lua5.4", bench_dir .. "/allowlist.lua", "prepare", AL }
  log("allowlist: checking that every matcher gives the same answers")
  local _, out, ok = run({ "lua5.4", bench_dir .. "/allowlist.lua", "check", AL }, true)
  io.stderr:write(out, "\n")
  if not ok then error("bench: the allowlist matchers disagree (see above); the benchmark stops", 0) end
  results.allowlist_check = {}
  for line in out:gmatch("[^\n]+") do
    if line:match("^note:") or line:match("^checked") or line:match("^check:") then
      table.insert(results.allowlist_check, line)
    end
  end

  local timings = {}
  local interpreters = { "lua5.4" }
  if util.execute("command -v luajit >/dev/null 2>&1") then interpreters[2] = "luajit" end
  for _, lua in ipairs(interpreters) do
    log("allowlist: compile and lookup timings on %s", lua)
    local _, tout = run { lua, bench_dir .. "/allowlist.lua", "time", AL }
    for _, kv in ipairs(lines_kv(tout)) do timings[#timings + 1] = kv end
  end
  log("allowlist: C timings (ck_cidr.c linked directly)")
  for _, n in ipairs { 10, 1000, 10000, 100000 } do
    local _, cout = run { BIN .. "/cidr_bench", AL .. "/entries_" .. n .. ".txt", AL .. "/v4_" .. n .. ".txt",
      AL .. "/v6_" .. n .. ".txt" }
    for _, kv in ipairs(lines_kv(cout)) do
      kv.impl, kv.lua, kv.n = "cometkey", "C", kv.n or n
      timings[#timings + 1] = kv
    end
  end
  results.memory = {}
  for _, family in ipairs { "v4", "v6" } do
    local _, mout = run { BIN .. "/cidr_bench", AL .. "/entries_" .. family .. "only.txt" }
    for _, kv in ipairs(lines_kv(mout)) do
      if kv.what == "memory" then results.memory[family] = kv end
    end
  end

  log("allowlist: grepcidr (whole runs over %s addresses)", "524 288")
  results.grepcidr = {}
  util.write_file(AL .. "/empty.txt", "")
  for _, n in ipairs { 10, 1000, 10000, 100000 } do
    local sample = (util.read_file(AL .. "/v4_" .. n .. ".txt") or "")
      .. (util.read_file(AL .. "/v6_" .. n .. ".txt") or "")
    local reps = {}
    for i = 1, 256 do reps[i] = sample end
    local input = AL .. "/grep_input.txt"
    util.write_file(input, table.concat(reps))
    local _, lines = sample:gsub("\n", "")
    local m = lines * 256
    local full, empty = {}, {}
    for _ = 1, ROUNDS do
      local kv = run({ BIN .. "/rusage", "grepcidr", "-x", "-c", "-f", AL .. "/entries_" .. n .. ".txt", input }, true)
      full[#full + 1] = kv.rusage_seconds
      kv = run({ BIN .. "/rusage", "grepcidr", "-x", "-c", "-f", AL .. "/entries_" .. n .. ".txt",
        AL .. "/empty.txt" }, true)
      empty[#empty + 1] = kv.rusage_seconds
    end
    local t_full, t_empty = util.median(full), util.median(empty)
    results.grepcidr[n] = { addresses = m, seconds = t_full, startup = t_empty,
      ns_whole = t_full / m * 1e9, ns_marginal = math.max(t_full - t_empty, 0) / m * 1e9 }
    os.remove(input)
  end
  results.allowlist = timings
end

-- ------------------------------------------------------------------ main

local function with_server(results, fn)
  local record = assert(util.read_file(bench_dir .. "/record.json")):gsub("%s+$", "")
  local s = server.start(bench_dir, record)
  log("nginx %d listening on 127.0.0.1:%d", s.pid, s.port)
  local ok, err = xpcall(function() fn(s.url) end, debug.traceback)
  s:stop()
  log("nginx stopped")
  if not ok then error(err, 0) end
  return results
end

-- Only a full run replaces the committed bench/RESULTS.md, results.png and callgrind.txt.
local function write_report(results, run_mode)
  local report = dofile(bench_dir .. "/report.lua")
  local dest = (run_mode == "all" and not results.quick) and bench_dir or OUT
  report.write(bench_dir, dest, results, run_mode)
  log("wrote %s/RESULTS.md, results.png and callgrind.txt", dest)
end

local function main()
  if mode == "report" then -- redo the report from the figures of the last full run
    write_report(dofile(OUT .. "/results-all.txt"), "all")
    return
  end
  local t0 = util.gettime()
  need("nginx", "the benchmark's server")
  need("wrk", "HTTP comparator")
  need("gnuplot", "the chart")
  need("curl", "curl CLI comparator")
  assert(pcall(require, "cometkey.core"), "bench: build cometkey first (make build-5.4)")
  build_tools()
  local results = { machine = machine(), quick = quick, rounds = ROUNDS, seconds = SECONDS }
  log("machine: %s, %s cores, %s", results.machine.cpu, results.machine.cores, results.machine.kernel)

  if mode == "soak" then
    with_server(results, function(url) soak_section(results, url) end)
    return
  end
  if mode == "all" or mode == "http" or mode == "callgrind" then
    with_server(results, function(url)
      results.shape = request_shape(url)
      if mode ~= "callgrind" then http_section(results, url, results.shape) end
      if mode == "all" then soak_section(results, url) end
      if mode == "all" then stream_section(results, url) end
      if mode == "all" or mode == "callgrind" then
        if not util.file_exists(AL .. "/entries_10000.txt") then
          run { "lua5.4", bench_dir .. "/allowlist.lua", "prepare", AL }
        end
        callgrind_section(results, url)
      end
    end)
  end
  if mode == "pace" then
    with_server(results, function(url) stream_section(results, url) end)
  end
  if mode == "all" or mode == "pace" then pace_section(results) end
  if mode == "all" or mode == "allowlist" then allowlist_section(results) end
  results.elapsed = util.gettime() - t0
  util.write_file(OUT .. "/results-" .. mode .. ".txt", "return " .. util.serialize(results) .. "\n")
  write_report(results, mode)
  log("done in %.0f s", results.elapsed)
end

main()
