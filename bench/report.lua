--- bench/report.lua: turns the figures bench/run.lua collected into
-- bench/RESULTS.md, bench/callgrind.txt and bench/results.png (through
-- bench/plot.gp and the data files it reads from bench/out/plot/).
--   dofile("bench/report.lua").write(bench_dir, results, mode)
local util = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "util.lua")

local format, concat = string.format, table.concat

local M = {}

local SIZES = { 10, 1000, 10000, 100000 }

local TARGET = {
  seq_ratio = 0.9, bulk_ratio = 0.8, contains_text4_ns = 60, c_binary_ns = 30, vs_prefix = 3, vs_linear = 100,
  compile_ns = 150, mem_v4 = 16, mem_v6 = 40, soak_growth_kb = 1024,
  pace_ratio = 1.15, where_per_item = 1.02, stream_kb = 64 * 1024,
}

local function num(x, digits)
  if x == nil then return "–" end
  if x ~= x then return "–" end
  digits = digits or 1
  if math.abs(x) >= 1e6 then return format("%.3g", x) end
  local s = format("%." .. digits .. "f", x)
  local int, frac = s:match("^(-?%d+)(.*)$")
  int = int:reverse():gsub("(%d%d%d)", "%1 "):reverse():gsub("^(-?) ", "%1")
  return int .. frac
end

local function ratio(x)
  if not x then return "–" end
  return format(x < 0.1 and "%.3fx" or "%.2fx", x)
end

local function table_md(header, rows)
  local out = { "| " .. concat(header, " | ") .. " |", "|" .. string.rep("---|", #header) }
  for _, row in ipairs(rows) do out[#out + 1] = "| " .. concat(row, " | ") .. " |" end
  return concat(out, "\n")
end

-- The timing line of impl on interpreter lua ("5.4", "LuaJIT", "C") for n, what and form.
local function timing(results, impl, lua, n, what, form)
  for _, t in ipairs(results.allowlist or {}) do
    local l = tostring(t.lua)
    local lua_ok = (lua == "5.4" and l == "Lua_5.4") or (lua == "LuaJIT" and l:match("^LuaJIT") ~= nil)
      or (lua == "C" and l == "C")
    if t.impl == impl and lua_ok and t.n == n and t.what == what and (form == nil or t.form == form) then
      return t
    end
  end
  return nil
end

local function ns_of(results, impl, lua, n, what, form)
  local t = timing(results, impl, lua, n, what, form)
  if not t then return nil end
  return t.ns or t.compile_ns
end

-- PASS/MISS; a score within 5 % of the line is marked: another run may fall on the other side.
local function verdict(pass, score)
  local v = pass and "**PASS**" or "**MISS**"
  if score and score > 0.95 and score < 1.05 then v = v .. " (borderline: within run-to-run noise)" end
  return v
end

-- ------------------------------------------------------------------ targets

-- Each target: { name, measured text, ratio (>= 1 passes), pass, note }
local function targets(r)
  local list = {}
  local function add(name, measured, score, note)
    list[#list + 1] = { name = name, measured = measured, score = score, pass = score ~= nil and score >= 1 - 1e-9,
      note = note }
  end
  if r.seq then
    local x = r.seq.cometkey.rate / r.seq.c_loop.rate
    add("sequential: cometkey >= 0.9x the C libcurl loop", ratio(x) .. " of the C loop", x / TARGET.seq_ratio)
  end
  if r.bulk and r.bulk.c_multi then
    local x = r.bulk.cometkey_bulk.rate / r.bulk.c_multi.rate
    add("bulk c16: update_many >= 0.8x the C libcurl multi loop (c16)", ratio(x) .. " of the C multi loop ("
      .. ratio(r.bulk.cometkey_bulk.rate / r.bulk.wrk_c16.rate) .. " of wrk -c16)", x / TARGET.bulk_ratio)
  elseif r.bulk then
    local x = r.bulk.cometkey_bulk.rate / r.bulk.wrk_c16.rate
    add("bulk c16: update_many >= 0.8x wrk -c16", ratio(x) .. " of wrk -c16", x / TARGET.bulk_ratio)
  end
  if r.allowlist then
    local ck = ns_of(r, "cometkey", "5.4", 10000, "contains", "text4")
    add("contains, 10 000 entries, IPv4 text from Lua 5.4 <= 60 ns", num(ck) .. " ns",
      ck and TARGET.contains_text4_ns / ck)
    local cb = ns_of(r, "cometkey", "C", 10000, "contains", "bytes4")
    add("contains, 10 000 entries, binary in C <= 30 ns", num(cb) .. " ns (IPv4; IPv6 "
      .. num(ns_of(r, "cometkey", "C", 10000, "contains", "bytes16")) .. " ns)", cb and TARGET.c_binary_ns / cb)
    local ph = ns_of(r, "prefix_hash", "5.4", 10000, "contains", "text4")
    add(">= 3x the hash-per-prefix matcher (IPv4 text, Lua 5.4, 10 000)", ratio(ph and ck and ph / ck) .. " faster",
      ph and ck and ph / ck / TARGET.vs_prefix)
    local li = ns_of(r, "linear", "5.4", 10000, "contains", "text4")
    add(">= 100x the linear scan (IPv4 text, Lua 5.4, 10 000)", ratio(li and ck and li / ck) .. " faster",
      li and ck and li / ck / TARGET.vs_linear)
    local co = ns_of(r, "cometkey", "5.4", 10000, "compile")
    add("compile <= 150 ns per entry (Lua 5.4, 10 000)", num(co) .. " ns", co and TARGET.compile_ns / co)
  end
  if r.memory and r.memory.v4 and r.memory.v6 then
    local m4, m6 = r.memory.v4.bytes_per_range, r.memory.v6.bytes_per_range
    add("memory <= 16 B per IPv4 range", num(m4, 2) .. " B", TARGET.mem_v4 / m4)
    add("memory <= 40 B per IPv6 range", num(m6, 2) .. " B", TARGET.mem_v6 / m6)
  end
  if r.soak then
    local p = r.soak.points
    local growth = p[#p].rss_kb - p[2].rss_kb
    add(format("soak: flat RSS (growth after the first %s updates <= 1 MB)", num(p[2].done, 0)),
      format("%+d kB (%s -> %s kB)", growth, num(p[2].rss_kb, 0), num(p[#p].rss_kb, 0)),
      math.min(TARGET.soak_growth_kb / math.max(growth, 1), 10)) -- no growth at all: capped at 10
  end
  if r.pace then
    local worst, failed, by = 0, 0, {}
    for _, row in ipairs(r.pace.rows) do
      by[row.name] = row
      if not row.name:match("^naive") and not row.name:match("^v01") then
        worst = math.max(worst, row.ratio)
        failed = failed + row.failed
      end
    end
    add(format("pace: every item within 1.15x the limiter's bound (%d per %g s), 0 failures", r.pace.limit.requests,
      r.pace.limit.seconds), format("worst %.3fx of the bound, %d failed", worst, failed),
      failed > 0 and 0 or TARGET.pace_ratio / worst)
    local st, wh = by.status_update_many, by.field_update_where
    if st and wh then
      add("requests per item: 1 per status change, <= 1.02 per field update (update_where)",
        format("%.3f per status change, %.3f per field update", st.per_item, wh.per_item),
        math.min(1 / st.per_item, TARGET.where_per_item / wh.per_item))
    end
  end
  if r.stream then
    add(format("streamed update_many of %s items: peak RSS < 64 MB", num(r.stream.requests, 0)),
      num(r.stream.hwm_kb / 1024, 1) .. " MB", TARGET.stream_kb / r.stream.hwm_kb)
  end
  return list
end

-- ------------------------------------------------------------------ sections

local SEQ_NAMES = {
  cometkey = "cometkey (Lua 5.4, curl transport, `client:update`)",
  c_loop = "C libcurl keep-alive loop (ceiling of any libcurl client)",
  wrk_c1 = "wrk -c1 -t1 (the server's ceiling)",
  python = "Python requests.Session (+ .json())",
  curl_cli = "curl CLI, one process per request",
  cometkey_bulk = "cometkey `update_many`, concurrency 16",
  wrk_c16 = "wrk -c16 -t2",
  c_multi = "C libcurl multi loop, 16 handles (ceiling of a libcurl bulk client)",
}

local function client_rows(set, order, ref, ref2)
  local rows = {}
  for _, name in ipairs(order) do
    local c = set[name]
    local runs = {}
    for i, x in ipairs(c.rates) do runs[i] = num(x, 0) end
    rows[#rows + 1] = {
      SEQ_NAMES[name], "**" .. num(c.rate, 0) .. "**", concat(runs, " / "),
      ratio(c.rate / set[ref].rate), ref2 and ratio(c.rate / ref2.rate) or ratio(c.rate / set.wrk_c1.rate),
      num(c.cpu_us, 1) .. (c.cpu_whole_process and " ¹" or ""), num(c.hwm_kb / 1024, 1),
    }
  end
  return rows
end

local function explain_seq(r)
  local cg = r.callgrind
  local s = r.seq
  local lines = {}
  lines[#lines + 1] = format("With the server on the other core, a sequential client waits for one round trip "
    .. "per request, "
    .. "so its rate is set by its own CPU time per request plus the server's and the loopback's. "
    .. "cometkey used %s µs of CPU per request, the C loop %s µs (medians above).",
    num(s.cometkey.cpu_us, 1), num(s.c_loop.cpu_us, 1))
  if cg and cg.update_io and cg.c_loop then
    local parts, names = {}, {}
    for _, p in ipairs(cg.update_io.parts) do parts[p.name], names[p.name] = p.ir, p.symbol end
    lines[#lines + 1] = format("callgrind: one `client:update{id = 1, status = 2}` costs %s instructions against the "
      .. "C loop's %s (libcurl included in both), %s more. Of those: validation `core.check` %s, request building "
      .. "`core.request` %s, response mapping `core.response` %s (JSON decoding `%s` %s, of which "
      .. "jansson's `json_loadb` %s), the curl binding outside `curl_easy_perform` %s (reading and checking the "
      .. "request table and header list, which is kept while the headers do not change, and `%s` %s: "
      .. "the response table with its parsed headers); the rest, %s, is the Lua path (client:update -> "
      .. "call.perform -> transport -> binding) and its garbage collection.",
      num(cg.update_io.total, 0), num(cg.c_loop.total, 0), num(cg.update_io.total - cg.c_loop.total, 0),
      num(parts.check, 0), num(parts.request, 0), num(parts.response, 0), names.json_decode or "json_decode",
      num(parts.json_decode, 0),
      num(parts.json_loadb, 0),
      num(parts.perform and parts.curl_easy_perform and parts.perform - parts.curl_easy_perform, 0),
      names.outcome or "outcome", num(parts.outcome, 0),
      num(parts.check and parts.request and parts.response and parts.perform
        and cg.update_io.total - parts.check - parts.request - parts.response - parts.perform, 0))
    if parts.json_loadb and parts.curl_easy_perform then
      local floor_ir = parts.curl_easy_perform + parts.json_loadb
      lines[#lines + 1] = format("Why T1 stays out of reach: libcurl's transfer (%s) and jansson's parse of the "
        .. "record (`json_loadb` %s; libjansson is the wire parser by design: exact integers, a strict parser, "
        .. "duplicate-key and UTF-8 checks) alone come to %s instructions, %.2fx the C loop's whole request, before "
        .. "any validation, mapping or Lua. Everything cometkey adds on top of those two is %s instructions "
        .. "(%.0f %% of the request).",
        num(parts.curl_easy_perform, 0), num(parts.json_loadb, 0), num(floor_ir, 0), floor_ir / cg.c_loop.total,
        num(cg.update_io.total - floor_ir, 0), 100 * (cg.update_io.total - floor_ir) / cg.update_io.total)
    end
  end
  return concat(lines, " ")
end

local function allowlist_tables(r)
  local out = {}
  local jit_present = timing(r, "linear", "LuaJIT", 10, "contains", "text4") ~= nil
  -- lookups
  local rows = {}
  for _, n in ipairs(SIZES) do
    local ck4 = ns_of(r, "cometkey", "5.4", n, "contains", "text4")
    rows[#rows + 1] = {
      num(n, 0),
      num(ck4), num(ns_of(r, "cometkey", "5.4", n, "contains", "text6")),
      num(ns_of(r, "cometkey", "5.4", n, "contains", "bytes4")),
      num(ns_of(r, "cometkey", "5.4", n, "contains", "bytes16")),
      num(ns_of(r, "cometkey", "5.4", n, "call_floor")),
      num(ns_of(r, "cometkey", "C", n, "contains", "text4")), num(ns_of(r, "cometkey", "C", n, "contains", "bytes4")),
      num(ns_of(r, "cometkey", "C", n, "contains", "bytes16")),
      num(ns_of(r, "cometkey", "LuaJIT", n, "contains", "text4")),
    }
  end
  out[#out + 1] = "### cometkey lookups (ns per lookup, mixed hits and misses)\n"
  out[#out + 1] = table_md({ "entries", "Lua 5.4 IPv4 text", "Lua 5.4 IPv6 text", "Lua 5.4 IPv4 binary",
    "Lua 5.4 IPv6 binary", "Lua 5.4 call floor ²", "C IPv4 text", "C IPv4 binary", "C IPv6 binary",
    "LuaJIT IPv4 text" }, rows)

  rows = {}
  for _, n in ipairs(SIZES) do
    for _, fam in ipairs { "text4", "text6" } do
      local ck = ns_of(r, "cometkey", "5.4", n, "contains", fam)
      local row = { num(n, 0), fam == "text4" and "IPv4" or "IPv6", num(ck) }
      for _, impl in ipairs { "prefix_hash", "linear" } do
        for _, lua in ipairs { "5.4", "LuaJIT" } do
          local x = ns_of(r, impl, lua, n, "contains", fam)
          row[#row + 1] = x and (num(x) .. " (" .. ratio(ck and x / ck) .. ")") or "–"
        end
      end
      local g = r.grepcidr and r.grepcidr[n]
      row[#row + 1] = g and fam == "text4" and (num(g.ns_whole) .. " / " .. num(g.ns_marginal)) or ""
      rows[#rows + 1] = row
    end
  end
  out[#out + 1] = "\n### Against the comparators (ns per text lookup; in brackets: how many times slower than "
    .. "cometkey on Lua 5.4)\n"
  out[#out + 1] = table_md({ "entries", "family", "cometkey Lua 5.4", "hash-per-prefix Lua 5.4",
    "hash-per-prefix LuaJIT", "linear scan Lua 5.4", "linear scan LuaJIT", "grepcidr whole run / marginal ³" }, rows)
  if not jit_present then out[#out + 1] = "\n(LuaJIT was not installed: no LuaJIT figures.)" end

  rows = {}
  for _, n in ipairs(SIZES) do
    local c = timing(r, "cometkey", "C", n, "compile")
    local ck = timing(r, "cometkey", "5.4", n, "compile")
    rows[#rows + 1] = {
      num(n, 0), num(ck and ck.count, 0), num(ns_of(r, "cometkey", "5.4", n, "compile")),
      num(ns_of(r, "cometkey", "LuaJIT", n, "compile")),
      c and (num(c.compile_ns) .. " (parse " .. num(c.parse_ns) .. " + build " .. num(c.build_ns) .. ")") or "–",
      num(ns_of(r, "prefix_hash", "5.4", n, "compile"), 0), num(ns_of(r, "linear", "5.4", n, "compile"), 0),
      num(ns_of(r, "prefix_hash", "LuaJIT", n, "compile"), 0), num(ns_of(r, "linear", "LuaJIT", n, "compile"), 0),
    }
  end
  out[#out + 1] = "\n### Compile (ns per entry)\n"
  out[#out + 1] = table_md({ "entries", "ranges after merging", "cometkey Lua 5.4", "cometkey LuaJIT", "cometkey C",
    "hash-per-prefix Lua 5.4", "linear Lua 5.4", "hash-per-prefix LuaJIT", "linear LuaJIT" }, rows)

  rows = {}
  for _, fam in ipairs { "v4", "v6" } do
    local m = r.memory and r.memory[fam]
    if m then
      rows[#rows + 1] = { fam == "v4" and "IPv4 only" or "IPv6 only", num(m.n, 0), num(m.count, 0), num(m.bytes, 0),
        "**" .. num(m.bytes_per_range, 2) .. "**", fam == "v4" and "16" or "40" }
    end
  end
  out[#out + 1] = "\n### Memory of the compiled matcher\n"
  out[#out + 1] = table_md({ "list", "entries", "ranges (`matcher:count()`)", "heap bytes", "bytes per range",
    "target" }, rows)
  local heap = {}
  for _, impl in ipairs { "prefix_hash", "linear" } do
    local t = timing(r, impl, "5.4", 100000, "compile")
    if t and t.lua_heap_bytes_per_entry then
      heap[#heap + 1] = format("%s %s B per entry", impl == "linear" and "linear scan" or "hash-per-prefix",
        num(t.lua_heap_bytes_per_entry, 0))
    end
  end
  out[#out + 1] = "\nHow: `bench/cidr_bench.c` links `src/ck_cidr.c` and reads glibc's `mallinfo2()` (bytes in use) "
    .. "before and after `ck_matcher_new` on 100 000 single-family entries, then divides by `ck_matcher_count()`; "
    .. "the matcher does not report its own size. For scale, the pure-Lua matchers' Lua heap "
    .. "(`collectgarbage(\"count\")` delta, 100 000 mixed entries, Lua 5.4): " .. concat(heap, ", ") .. "."
  return concat(out, "\n")
end

local function callgrind_text(r)
  local cg = r.callgrind
  if not cg then return nil end
  local out = {
    "# cometkey callgrind instruction counts (valgrind --tool=callgrind, Ir per operation).",
    "# Written by `make bench` (bench/run.lua); compare in diffs to spot regressions.",
    "# Each count is (Ir of K repetitions - Ir of 0) / K, so start-up cancels out;",
    "# the indented lines are inclusive counts of single functions per operation.",
    "",
  }
  local order = {
    { "encode", "validate+encode one status update (core.check + core.request)" },
    { "decode", "decode one record (core.response on bench/record.json)" },
    { "contains", "one contains, 10 000 entries, IPv4 text, from Lua 5.4" },
    { "update_io", "one client:update{id=1,status=2} through the curl transport (with I/O)" },
    { "c_loop", "one request of the plain C libcurl loop (with I/O)" },
    { "bulk_io", "one item of update_many at concurrency 16 (with I/O, libcurl multi)" },
  }
  for _, o in ipairs(order) do
    local c = cg[o[1]]
    if c then
      out[#out + 1] = format("%-10s %8d  %s", o[1], math.floor(c.total + 0.5), o[2])
      for _, p in ipairs(c.parts) do
        out[#out + 1] = format("    %-24s %8d", p.symbol or p.name, math.floor(p.ir + 0.5))
      end
    end
  end
  return concat(out, "\n") .. "\n"
end

-- ------------------------------------------------------------------ chart

local GREEN, RED, BLUE, GREY = 0x228833, 0xcc3311, 0x4477aa, 0x999999

local function write_plot_data(dir, r, target_list)
  util.execute("mkdir -p " .. util.quote(dir))
  local seq = { '# client, req/s relative to the C loop, bar color' }
  if r.seq then
    local c = r.seq.c_loop.rate
    for _, x in ipairs { { "cometkey", "cometkey", GREEN }, { "C loop", "c_loop", GREY }, { "wrk -c1", "wrk_c1", BLUE },
      { "Python requests", "python", BLUE }, { "curl CLI", "curl_cli", BLUE } } do
      seq[#seq + 1] = format('"%s" %.4f %d', x[1], r.seq[x[2]].rate / c, x[3])
    end
  end
  util.write_file(dir .. "/seq.dat", concat(seq, "\n") .. "\n")
  local bulk = { '# ratio, value, bar color' }
  if r.bulk then
    bulk[#bulk + 1] = format('"cometkey / wrk -c16" %.4f %d', r.bulk.cometkey_bulk.rate / r.bulk.wrk_c16.rate,
      GREEN)
    if r.bulk.c_multi then
      bulk[#bulk + 1] = format('"cometkey / C multi" %.4f %d', r.bulk.cometkey_bulk.rate / r.bulk.c_multi.rate,
        GREEN)
    end
    if r.seq then
      bulk[#bulk + 1] = format('"cometkey / C loop" %.4f %d', r.bulk.cometkey_bulk.rate / r.seq.c_loop.rate,
        GREEN)
      bulk[#bulk + 1] = format('"wrk -c16 / C loop" %.4f %d', r.bulk.wrk_c16.rate / r.seq.c_loop.rate, BLUE)
    end
  end
  util.write_file(dir .. "/bulk.dat", concat(bulk, "\n") .. "\n")
  local al = { '# entries, then comparator ns / cometkey ns: hash-per-prefix 5.4, LuaJIT, linear 5.4, LuaJIT' }
  for _, n in ipairs(SIZES) do
    local ck = ns_of(r, "cometkey", "5.4", n, "contains", "text4")
    local row = { format('"%s"', num(n, 0)) }
    for _, x in ipairs { { "prefix_hash", "5.4" }, { "prefix_hash", "LuaJIT" }, { "linear", "5.4" },
      { "linear", "LuaJIT" } } do
      local v = ns_of(r, x[1], x[2], n, "contains", "text4")
      row[#row + 1] = (v and ck) and format("%.4f", v / ck) or "NaN"
    end
    al[#al + 1] = concat(row, " ")
  end
  util.write_file(dir .. "/allowlist.dat", concat(al, "\n") .. "\n")
  local tg = { '# target, score (>= 1 passes), bar color' }
  for i, t in ipairs(target_list) do
    tg[#tg + 1] = format('"T%d" %.4f %d', i, t.score or 0, t.pass and GREEN or RED)
  end
  util.write_file(dir .. "/targets.dat", concat(tg, "\n") .. "\n")
end

-- ------------------------------------------------------------------ write

--- write(bench_dir, dest, results, mode): RESULTS.md, callgrind.txt and results.png into dest
function M.write(bench_dir, dest, r, mode)
  local m = r.machine
  local target_list = targets(r)
  local md = {}
  local function add(s) md[#md + 1] = s end
  add("# cometkey benchmark results\n")
  add(format("Generated by `make bench` (`bench/run.lua %s`) on %s in %.0f s%s. Do not edit by hand; see "
    .. "bench/README.md for what each figure means.\n", mode, m.date, r.elapsed or 0,
    r.quick and " — **--quick run: figures not meaningful**" or ""))
  add(format("**Machine:** %s, %s cores, %s; %s, %s, %s; nginx %s (1 worker), wrk %s, Python %s, "
    .. "grepcidr %s; load average at start %s.\n", m.cpu, m.cores, m.kernel, m.lua, m.luajit, m.libcurl,
    m.nginx, m.wrk, m.python, m.grepcidr, m.load))
  add("All figures come from this one run: HTTP figures are medians of " .. r.rounds .. " interleaved rounds "
    .. "against the same loopback nginx, so ratios compare clients under the same conditions. The machine is "
    .. "shared and noisy: compare ratios, not absolute figures, between runs.\n")

  add("## Targets\n")
  local rows = {}
  for i, t in ipairs(target_list) do
    rows[#rows + 1] = { "T" .. i, t.name, t.measured, t.score and format("%.2f", t.score) or "–",
      verdict(t.pass, t.score) }
  end
  add(table_md({ "#", "target", "measured", "score (>= 1 passes)", "result" }, rows))
  add("")

  if r.seq then
    local record = (util.read_file(bench_dir .. "/record.json") or ""):gsub("%s+$", "")
    add("## 1. Sequential status updates (one keep-alive connection)\n")
    add(format("Each client sends `PUT %s` with body `%s` and the same headers as cometkey (%s), one request "
      .. "at a time, to a fixed nginx endpoint answering the same %d-byte success record (bench/record.json). "
      .. "cometkey and the C loop send %s requests per run, Python %s, the curl CLI %s; wrk runs %g s.\n",
      (r.shape.url:gsub("^https?://[^/]+", "")), r.shape.body,
      (concat(r.shape.headers, ", "):gsub("Authorization: [^,]*", "Authorization: <the bench's fake token>")),
      #record, num(r.seq.cometkey.requests, 0),
      num(r.seq.python.requests, 0), num(r.seq.curl_cli.requests, 0), r.seconds))
    add(table_md({ "client", "req/s (median)", "runs", "vs C loop", "vs wrk -c1", "CPU µs per request",
      "peak RSS MB" }, client_rows(r.seq, { "cometkey", "c_loop", "wrk_c1", "python", "curl_cli" }, "c_loop")))
    add("\n¹ wrk and the curl CLI loop are measured from outside (getrusage of the whole process tree, start-up "
      .. "included, and for the curl loop the shell and every curl process); the other clients time their own "
      .. "request loop (user+sys CPU of that loop; peak RSS is VmHWM of the client process).\n")
    add(explain_seq(r) .. "\n")
  end

  if r.bulk then
    add("## 2. Bulk at concurrency 16\n")
    if r.bulk.c_multi then
      add(format("`client:update_many(list, {concurrency = 16})` with %s status updates (libcurl multi, 16 "
        .. "connections) against a plain C libcurl multi loop with 16 handles (bench/c_loop.c --multi=16, %s "
        .. "requests) and `wrk -c16 -t2` (%g s), all sending the same request.\n",
        num(r.bulk.cometkey_bulk.requests, 0), num(r.bulk.c_multi.requests, 0), r.seconds))
      add(table_md({ "client", "req/s (median)", "runs", "vs C multi loop", "vs wrk -c16", "CPU µs per request",
        "peak RSS MB" }, client_rows(r.bulk, { "cometkey_bulk", "c_multi", "wrk_c16" }, "c_multi", r.bulk.wrk_c16)))
    else
      add(format("`client:update_many(list, {concurrency = 16})` with %s status updates (libcurl multi, 16 "
        .. "connections) against `wrk -c16 -t2` (%g s) sending the same request.\n",
        num(r.bulk.cometkey_bulk.requests, 0), r.seconds))
      add(table_md({ "client", "req/s (median)", "runs", "vs wrk -c16", "vs C loop (sequential)",
        "CPU µs per request", "peak RSS MB" },
        client_rows(r.bulk, { "cometkey_bulk", "wrk_c16" }, "wrk_c16", r.seq and r.seq.c_loop)))
    end
    add(format("\nThe client and nginx's single worker share two cores, so the bulk rate is at most two cores "
      .. "divided by the client's and the server's CPU per request together, and at most one core divided by the "
      .. "client's (update_many runs in one thread). update_many spent %s µs of CPU per request (the sequential "
      .. "client %s µs), wrk %s µs (two threads; measured from outside).\n",
      num(r.bulk.cometkey_bulk.cpu_us, 1), r.seq and num(r.seq.cometkey.cpu_us, 1) or "–",
      num(r.bulk.wrk_c16.cpu_us, 1)))
    if r.seq then
      local extra = (r.bulk.cometkey_bulk.hwm_kb - r.seq.cometkey.hwm_kb) * 1024 / r.bulk.cometkey_bulk.requests
      add(format("Peak RSS grows with the list: update_many holds the input list and one result (with the decoded "
        .. "key) per item until it returns, about %s bytes per item here above the sequential client's %s MB.\n",
        num(extra, 0), num(r.seq.cometkey.hwm_kb / 1024, 1)))
    end
    local b = r.callgrind and r.callgrind.bulk_io
    if b then
      local parts = {}
      for _, p in ipairs(b.parts) do parts[p.name] = p.ir end
      add(format("A client that needs %s µs of CPU per request cannot exceed %s req/s on one core, whatever the "
        .. "server does. callgrind: one item of update_many costs %s instructions (validation `core.check` %s, "
        .. "`core.request` %s, `core.response` %s, `multi_wait` including libcurl's transfer work %s; the rest is "
        .. "the Lua scheduler of cometkey/bulk.lua: one coroutine per item, result tables). wrk validates, "
        .. "encodes and decodes nothing: it replays one preformatted request and only parses the response "
        .. "headers.\n", num(r.bulk.cometkey_bulk.cpu_us, 1), num(1e6 / r.bulk.cometkey_bulk.cpu_us, 0),
        num(b.total, 0), num(parts.check, 0), num(parts.request, 0), num(parts.response, 0),
        num(parts.multi_wait, 0)))
      local seq_parts = {}
      for _, p in ipairs(r.callgrind.update_io and r.callgrind.update_io.parts or {}) do seq_parts[p.name] = p.ir end
      if parts.curl_multi_perform and seq_parts.json_loadb then
        local ref = r.bulk.c_multi or r.bulk.wrk_c16
        local need_rate = 0.8 * ref.rate
        local fixed = parts.curl_multi_perform + seq_parts.json_loadb
        add(format("Why T2 stays out of reach: 0.8x of " .. (r.bulk.c_multi and "the C multi loop" or "wrk -c16")
          .. " is %s req/s, which leaves update_many at most %s µs "
          .. "of CPU per item (it spends %s). libcurl's transfer work (`curl_multi_perform` %s) and jansson's parse "
          .. "of the record (`json_loadb` %s, measured in the sequential run) alone are %s of the item's %s "
          .. "instructions (%.0f %%): a client that validates, sends through libcurl and decodes every response "
          .. "with libjansson cannot come near a replay of one preformatted request.\n",
          num(need_rate, 0), num(1e6 / need_rate, 1), num(r.bulk.cometkey_bulk.cpu_us, 1),
          num(parts.curl_multi_perform, 0), num(seq_parts.json_loadb, 0), num(fixed, 0), num(b.total, 0),
          100 * fixed / b.total))
      end
    end
  end

  if r.allowlist then
    add("## 3. Allowlist matcher\n")
    add("Lists from bench/gen_allowlist.lua (deterministic; 70 % IPv4: /32 and /16../31, 30 % IPv6: /128 and "
      .. "/24../127 in 2000::/3). Lookups cycle through 1 024 addresses per family, half inside a random entry and "
      .. "half uniform, timed with the process CPU clock for at least 0.15 s (0.2 s in C); each figure is the best of "
      .. "3 such runs (other processes only ever add time).\n")
    add("**Equivalence check (run first; the bench stops on any difference):**\n")
    for _, line in ipairs(r.allowlist_check or {}) do add("- " .. line) end
    add("- Go semantics the comparators cannot express: an IPv4-mapped client (`::ffff:a.b.c.d`) is the IPv4 "
      .. "client a.b.c.d for cometkey (as for the server's Go code); the comparators treat it as IPv6, so those "
      .. "addresses are left out of the comparator check (cometkey's answer for each is checked against its own "
      .. "answer for a.b.c.d instead). No list holds IPv4-mapped entries (`::ffff:0:0/96`), which Go reads as IPv4 "
      .. "networks.\n")
    add(allowlist_tables(r))
    add("\n² The call floor is `matcher:count()` in the same loop: a Lua -> C method call on the matcher that does "
      .. "no lookup. ³ grepcidr (C) reads " .. num(r.grepcidr and r.grepcidr[10] and r.grepcidr[10].addresses, 0)
      .. " addresses (the IPv4 and IPv6 timing sets repeated) and the pattern file; whole run = wall time of the "
      .. "process / addresses; marginal = (whole run - a run with no addresses) / addresses, i.e. without process "
      .. "start-up and pattern loading (start-up at 100 000 entries: "
      .. num(r.grepcidr and r.grepcidr[100000] and r.grepcidr[100000].startup * 1000, 1) .. " ms).\n")
    local ck = ns_of(r, "cometkey", "5.4", 10000, "contains", "text4")
    local floor_ns = ns_of(r, "cometkey", "5.4", 10000, "call_floor")
    local c_text = ns_of(r, "cometkey", "C", 10000, "contains", "text4")
    if ck and floor_ns and c_text then
      local over = ck - TARGET.contains_text4_ns
      add(format("**Where the time of T3 goes:** mostly not in the search. In C the same lookup takes %s ns "
        .. "from text (parsing included) and %s ns from binary; from Lua 5.4 a method call on the matcher that "
        .. "does no lookup at all (`matcher:count()`) already costs %s ns on this machine (method lookup through "
        .. "the userdata's metatable, the C call, the userdata check, pushing the result, the loop), which "
        .. "leaves %s of the %s ns for the argument checks, parsing and searching. %s\n",
        num(c_text), num(ns_of(r, "cometkey", "C", 10000, "contains", "bytes4")), num(floor_ns),
        num(ck - floor_ns), num(ck),
        over > 0 and format("The miss is %s ns (%.0f %% over the target).", num(over),
          over / TARGET.contains_text4_ns * 100)
          or format("That is %s ns under the target: a margin the call overhead of a busier run can eat.",
            num(-over))))
    end
  end

  if r.callgrind then
    add("## 4. Client cost per request\n")
    add("CPU per request and peak RSS are in the tables of sections 1 and 2. Instruction counts "
      .. "(callgrind, deterministic; also in bench/callgrind.txt so regressions show in diffs):\n")
    add("```\n" .. callgrind_text(r) .. "```\n")
  end

  if r.soak then
    add("## 5. Soak\n")
    local p = r.soak.points
    rows = {}
    for _, x in ipairs(p) do rows[#rows + 1] = { num(x.done, 0), num(x.rss_kb, 0), num(x.lua_kb, 0) } end
    add(format("%s status updates through one client (%s s, %s req/s):\n", num(r.soak.requests, 0),
      num(r.soak.seconds, 1), num(r.soak.requests / r.soak.seconds, 0)))
    add(table_md({ "updates done", "VmRSS kB", "Lua heap kB" }, rows))
    add("")
  end

  if r.pace then
    local L = r.pace.limit
    add(format("## 6. Bulk at the server's pace\n"))
    add(format("%d items per scenario against the mock (spec/support/mock.lua) with its limiter set to %d requests "
      .. "per %g s (the server's 180 per 180 s, scaled: a sliding window; refused requests answer an empty 429 "
      .. "and do not count). Bound = requests the server processed / R x W; every cometkey scenario must finish "
      .. "every item within 1.15x of it with no failure. Scenarios run one after the other, the limiter emptied "
      .. "between them. \"refused\" counts the 429s (probes of the learned pace, retries of the others): they "
      .. "cost the server nothing.\n", L.items, L.requests, L.seconds))
    local NAMES = {
      status_update_many = "cometkey update_many, status changes (pace learned from 429s)",
      status_declared = "cometkey update_many, status changes, `rate_limit` declared",
      field_update_where = "cometkey update_where, field updates (list pages + one PUT each)",
      field_update_many = "cometkey update_many, field updates (records read from list pages)",
      naive_field_get_put = "naive loop: GET + PUT per key, retry on 429 after 1 s",
      naive_status = "naive loop: one PUT per key, retry on 429 after 1 s",
      v01_status_update_many = "cometkey 0.1 update_many, status changes",
      v01_field_update_many = "cometkey 0.1 update_many, field updates (GET + PUT per key)",
    }
    rows = {}
    for _, x in ipairs(r.pace.rows) do
      rows[#rows + 1] = { NAMES[x.name] or x.name, num(x.seconds, 1), num(x.bound, 1), format("**%.3fx**", x.ratio),
        num(x.accepted, 0), num(x.refused, 0), format("%.3f", x.per_item), num(x.failed, 0) }
    end
    add(table_md({ "scenario", "wall s", "bound s", "wall / bound", "requests processed", "429s", "requests per item",
      "failed items" }, rows))
    add("\nRead the naive and 0.1 rows with the scale in mind: a scaled window of " .. L.seconds .. " s is shorter "
      .. "than their waits (the naive loop sleeps 1 s; 0.1 backs off 0.25 to 8 s), so here they only lose the "
      .. "rest of a window per 429. Against the real 180 s window the same waits are far shorter than the "
      .. "window: the naive loop sends about one refused request per second for most of every window, and 0.1 "
      .. "gives an item up after its 30 s timeout (2 retries), so a run of more than 180 items fails the rest "
      .. "as `rate_limited`. The paced client's schedule is in units of W, so its ratio is the same at any scale "
      .. "(spec/bulk_pace_spec.lua checks 20 per 2 s, 7 per 0.5 s and 30 per 1 s).\n")
  end
  if r.stream then
    add(format("Streamed run: `update_many` over %s status updates taken from an iterator with `keep_results = "
      .. "false` and `on_result`, concurrency 16, against the bench nginx: %.1f s (%s req/s), %d failed, peak RSS "
      .. "(VmHWM) %s MB (%s MB before the run).\n", num(r.stream.requests, 0), r.stream.seconds,
      num(r.stream.requests / r.stream.seconds, 0), r.stream.failed, num(r.stream.hwm_kb / 1024, 1),
      num(r.stream.start_kb / 1024, 1)))
  end

  -- misses summary
  local misses = {}
  for i, t in ipairs(target_list) do
    if not t.pass then misses[#misses + 1] = format("T%d (%s): %s, %.0f %% short of the target", i, t.name,
      t.measured, (1 - (t.score or 0)) * 100) end
  end
  add("## Summary\n")
  if #misses == 0 then
    add("Every target passes.")
  else
    add(format("%d of %d targets pass. Missed:\n", #target_list - #misses, #target_list))
    for _, s in ipairs(misses) do add("- " .. s) end
  end
  add("\n![ratios](results.png)")

  local plot_dir = bench_dir .. "/out/plot"
  write_plot_data(plot_dir, r, target_list)
  util.write_file(dest .. "/RESULTS.md", concat(md, "\n") .. "\n")
  local cg = callgrind_text(r)
  if cg then util.write_file(dest .. "/callgrind.txt", cg) end
  local cmd = "gnuplot -e " .. util.quote(format("datadir='%s'; outfile='%s'", plot_dir, dest .. "/results.png"))
    .. " " .. util.quote(bench_dir .. "/plot.gp") .. " 2>&1"
  local out, ok = util.capture(cmd)
  if not ok then io.stderr:write("bench: gnuplot failed:\n", out, "\n") end
end

return M
