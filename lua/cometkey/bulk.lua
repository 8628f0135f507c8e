--- cometkey.bulk: the generic bulk scheduler. A run takes thunks fn(ctx) (each
-- performs one item through cometkey.call with a yielding context) and keeps up
-- to `concurrency` of them in flight: on the transport's multi interface
-- (libcurl multi) when blocking, one request at a time on other blocking
-- transports, and through request_async / sleep_async when the caller gave a
-- callback (hosts with their own loop: nothing blocks). The client's pace
-- (cometkey.pace) decides when each request may go.
--
-- A run owns its transfers: each carries a tag the run issued, a completion with
-- a tag it does not know is dropped, and when a run raises (an on_progress or
-- on_result error, a bug) or is abandoned everything it started is cancelled
-- before the error leaves. One run at a time per client: a bulk call from
-- on_progress, on_result or a callback raises.
--
-- update_many, update_where (and any builder of thunks) are thin layers over
-- M.run; M.source_of makes a source of an array of thunks.
local call = require "cometkey.call"

local coroutine, type, pairs, tostring, error, pcall, setmetatable =
  coroutine, type, pairs, tostring, error, pcall, setmetatable
local min, max, floor, huge = math.min, math.max, math.floor, math.huge

local M = {}

M.DEFAULT_CONCURRENCY = 8
M.MAX_PROBLEMS = 20 -- a raise for invalid items lists at most this many

--- WAIT: what a source returns when it has nothing to start until a running thunk finishes
M.WAIT = setmetatable({}, { __tostring = function() return "cometkey.bulk.WAIT" end })

local runs = 0 -- run identities (per process)
local tags = 0 -- request tags, unique across runs: a completion names the run's own request or nothing

--- source_of(thunks, method, level) --> source over an array of thunks; raises on holes
function M.source_of(thunks, method, level)
  if type(thunks) ~= "table" then
    error("cometkey." .. method .. ": thunks must be an array of functions", level + 1)
  end
  local n, count = #thunks, 0
  for k, v in pairs(thunks) do
    count = count + 1
    if type(k) ~= "number" or k < 1 or k > n or floor(k) ~= k or type(v) ~= "function" then
      error("cometkey." .. method .. ": thunks must be an array of functions without holes (bad entry at "
        .. tostring(k) .. ")", level + 1)
    end
  end
  if count ~= n then
    error("cometkey." .. method .. ": thunks must be an array of functions without holes", level + 1)
  end
  local i = 0
  return function()
    i = i + 1
    return thunks[i]
  end, n
end

--- check_opts(opts, known, method, level) --> concurrency, on_progress, on_result, keep
function M.check_opts(opts, known, method, level)
  level = level + 1
  local function raise(message) error("cometkey." .. method .. ": " .. message, level + 1) end
  if type(opts) ~= "table" then raise("opts must be a table") end
  for k in pairs(opts) do
    if not known[k] then raise("unknown option '" .. tostring(k) .. "'") end
  end
  local concurrency = opts.concurrency or M.DEFAULT_CONCURRENCY
  if type(concurrency) ~= "number" or concurrency < 1 or concurrency > 256 or floor(concurrency) ~= concurrency then
    raise("concurrency must be an integer from 1 to 256")
  end
  if opts.on_progress ~= nil and type(opts.on_progress) ~= "function" then raise("on_progress must be a function") end
  if opts.on_result ~= nil and type(opts.on_result) ~= "function" then raise("on_result must be a function") end
  local keep = opts.keep_results
  if keep ~= nil and type(keep) ~= "boolean" then raise("keep_results must be a boolean") end
  if keep == false and opts.on_result == nil then
    raise("keep_results = false returns only counts: give on_result(i, result) to receive each item's result")
  end
  return concurrency, opts.on_progress, opts.on_result, keep ~= false
end

local function internal(value)
  return { ok = false, error = "cometkey: internal error: " .. tostring(value), info = { kind = "internal" } }
end

--- run(client, source, opts, callback) --> results (sync) | nothing (callback(err, results))
-- source() --> thunk [, on_done] | M.WAIT | nil (no more). A thunk given with
-- on_done is not an item: on_done(value, message, info) receives its outcome
-- (page reads of update_where). opts: { concurrency, on_progress, on_result,
-- keep = bool, total = n (for progress), method = name for messages }.
-- results: array of { ok = true, key = value } | { ok = false, error, info }, or
-- { ok = n, failed = n } when keep is false.
function M.run(client, source, opts, callback)
  opts = opts or {}
  local method = opts.method or "bulk.run"
  local total = opts.total
  if type(source) == "table" then source, total = M.source_of(source, method, 2) end
  if type(source) ~= "function" then
    error("cometkey." .. method .. ": source must be an array of thunks or a function", 2)
  end
  if client._bulk then
    error("cometkey." .. method .. ": a bulk call is already running on this client (bulk calls are not "
      .. "re-entrant: do not start one from on_progress, on_result or a callback)", opts.level or 2)
  end
  runs = runs + 1
  local run = { id = runs }
  client._bulk = run

  local t, pace = client.transport, client.pace
  local async = callback ~= nil
  local multi = not async and t.multi_add ~= nil
  local concurrency = opts.concurrency or M.DEFAULT_CONCURRENCY
  local on_progress, on_result, keep = opts.on_progress, opts.on_result, opts.keep ~= false
  local ctx = call.context(t, "bulk")
  local now = ctx.now

  local results = keep and {} or nil
  local n_ok, n_failed = 0, 0
  local active, started, done, exhausted = 0, 0, 0, false
  local inflight = {}           -- tag -> slot, for the requests this run started
  local sleepers = {}           -- slot -> wake time (sync drivers)
  local q_head, q_tail, queue = 1, 0, {} -- completions and wake-ups to hand to their slots
  local t0 = now()

  local function push(slot, a, b, c, wake)
    q_tail = q_tail + 1
    queue[q_tail] = { slot, a, b, c, wake }
  end

  local function eta()
    if done == 0 or not total then return nil end
    local left = total - done
    local e = (now() - t0) / done * left
    local by_pace = pace and pace:eta(left, now())
    if by_pace and by_pace > e then e = by_pace end
    return e
  end

  local function finish(slot, ok, value, message, info)
    active = active - 1
    if slot.on_done then
      if not ok then error(value, 0) end
      return slot.on_done(value, message, info)
    end
    local r
    if not ok then
      r = internal(value)
    elseif value == nil then
      r = { ok = false, error = message, info = info }
    else
      r = { ok = true, key = value }
    end
    done = done + 1
    if r.ok then n_ok = n_ok + 1 else n_failed = n_failed + 1 end
    if results then results[slot.i] = r end
    if on_result then on_result(slot.i, r) end
    if on_progress then on_progress(done, total or started, eta()) end
  end

  local dispatch

  local function resume(slot, ...)
    local co = slot.co
    local ok, what, a, b, c = coroutine.resume(co, ...)
    if coroutine.status(co) == "dead" then return finish(slot, ok, what, a, b, c) end
    if what == "request" then return dispatch(slot, a) end
    -- sleep
    local seconds = max(a or 0, 0)
    if async then
      t:sleep_async(seconds, function()
        if run.dead then return end
        push(slot, nil, nil, nil, true)
        run.kick()
      end)
    else
      sleepers[slot] = now() + seconds
    end
  end

  dispatch = function(slot, req)
    tags = tags + 1
    local tag = tags
    inflight[tag] = slot
    if multi then
      t:multi_add(tag, req)
    elseif async then
      t:request_async(req, function(res, message, info)
        if run.dead or inflight[tag] ~= slot then return end -- a foreign or stale completion
        inflight[tag] = nil
        push(slot, res, message, info)
        run.kick()
      end)
    else
      local res, message, info = t:request(req)
      inflight[tag] = nil
      push(slot, res, message, info)
    end
  end

  local function start(thunk, on_done)
    local slot = { co = coroutine.create(thunk), on_done = on_done }
    if not on_done then
      started = started + 1
      slot.i = started
    end
    active = active + 1
    resume(slot, ctx)
  end

  -- Runs everything that can run without waiting.
  local function pump()
    while true do
      while q_head <= q_tail do
        local e = queue[q_head]
        queue[q_head] = nil
        q_head = q_head + 1
        if e[5] then resume(e[1]) else resume(e[1], e[2], e[3], e[4]) end
      end
      local progressed = false
      while active < concurrency and not exhausted do
        local thunk, on_done = source()
        if thunk == nil then
          exhausted = true
        elseif thunk == M.WAIT then
          if active == 0 then
            error("cometkey." .. method .. ": internal error: the source waits with nothing running", 0)
          end
          break
        else
          start(thunk, on_done)
          progressed = true
        end
      end
      if not async then
        local t_now = now()
        for slot, wake in pairs(sleepers) do
          if wake <= t_now then
            sleepers[slot] = nil
            push(slot, nil, nil, nil, true)
            progressed = true
          end
        end
      end
      if q_head > q_tail and not progressed then return end
    end
  end

  local function finished() return exhausted and active == 0 end

  -- Drops everything the run started: nothing it began can reach a later run.
  local function abandon()
    run.dead = true
    if multi and t.multi_cancel then t:multi_cancel() end
    if pace then pace:abort() end
    if client._bulk == run then client._bulk = nil end
  end

  local function outcome()
    if results then return results end
    return { ok = n_ok, failed = n_failed }
  end

  if not async then
    local ok, err = pcall(function()
      while true do
        pump()
        if finished() then return end
        local earliest = huge
        for _, wake in pairs(sleepers) do if wake < earliest then earliest = wake end end
        if multi and next(inflight) ~= nil then
          local wait = min(1, max(earliest - now(), 0))
          local got = t:multi_wait(wait)
          for k = 1, #got do
            local c = got[k]
            local slot = inflight[c.tag]
            if slot then -- a completion of this run (anything else is dropped)
              inflight[c.tag] = nil
              push(slot, c.res, c.err, c.info)
            end
          end
        elseif q_head > q_tail and earliest < huge then
          local wait = earliest - now()
          if wait > 0 then t:sleep(wait) end
        elseif q_head > q_tail then
          error("cometkey." .. method .. ": internal error: nothing to wait for", 0)
        end
      end
    end)
    if not ok then
      abandon()
      error(err, 0)
    end
    client._bulk = nil
    return outcome()
  end

  -- Callback driver: completions and timers kick the pump; it never blocks.
  local pumping, delivered = false, false
  local function deliver(err, value, info)
    if delivered then return end
    delivered = true
    t:defer(function() callback(err, value, info) end)
  end
  function run.kick()
    if pumping or run.dead then return end
    pumping = true
    local ok, err = pcall(pump)
    pumping = false
    if not ok then
      abandon()
      return deliver(tostring(err), nil, { kind = "internal" })
    end
    if finished() then
      client._bulk = nil
      return deliver(nil, outcome())
    end
  end
  run.kick()
end

-- ------------------------------------------------------------------ builders

local ceil = math.ceil
local concat = table.concat

M.PAGE = 100            -- list/search page size (the server's cap)
M.MAX_PREFETCH = 20000  -- records update_many reads from list pages at most (memory)

local MANY_OPTS = { concurrency = true, on_progress = true, on_result = true, keep_results = true,
  replace = true, dry_run = true }

local function fail_list(method, problems, count, level)
  local more = count > #problems and ("; ... and " .. (count - #problems) .. " more") or ""
  error("cometkey." .. method .. ": " .. count .. " invalid item(s): " .. concat(problems, "; ") .. more, level + 1)
end

local function item_problem(err)
  return (tostring(err):gsub("^.-cometkey%.update: ", ""))
end

-- Reads list pages into `want` (id -> record) while that costs fewer requests than
-- one GET per missing record; returns a source-like reader: step() --> thunk, on_done | nil.
local function page_reader(client, want, missing, stats)
  local page, pages, busy, stop = 0, nil, false, false
  return function()
    if stop or missing == 0 then return nil end
    if busy then return M.WAIT end
    busy, page = true, page + 1
    local p = page
    return function(ctx)
      return client:_send(ctx, "list", { page = p, page_size = M.PAGE })
    end, function(result)
      busy = false
      stats.pages = stats.pages + 1
      if not result then stop = true; return end -- the rest reads one GET each
      local items = result.items or {}
      for k = 1, #items do
        local key = items[k]
        if type(key) == "table" and want[key.id] == false then
          want[key.id] = key
          missing = missing - 1
        end
      end
      pages = pages or ceil((result.total or 0) / M.PAGE)
      -- Going on must be cheaper than the GETs it saves.
      if #items < M.PAGE or p >= pages or (pages - p) >= missing then stop = true end
    end
  end
end

--- update_many(client, list, opts, callback, level) --> results | nothing (callback)
function M.update_many(client, list, opts, callback, level)
  level = level + 1
  local method = "update_many"
  local function raise(message) error("cometkey.update_many: " .. message, level + 1) end
  if type(opts) == "function" and callback == nil then opts, callback = nil, opts end
  if callback ~= nil and type(callback) ~= "function" then raise("callback must be a function") end
  opts = opts or {}
  local concurrency, on_progress, on_result, keep = M.check_opts(opts, MANY_OPTS, method, level)
  local item_opts = { replace = opts.replace, dry_run = opts.dry_run }
  local stats = { pages = 0, gets = 0 }
  local source, total, want

  if type(list) == "function" then
    -- A stream of items: each is checked when it is taken; a bad one fails alone.
    source = function()
      local item = list()
      if item == nil then return nil end
      local ok, fn = pcall(client._update_fn, client, item, item_opts, 1)
      if not ok then
        local message = "cometkey.update_many: invalid item: " .. item_problem(fn)
        return function() return nil, message, { kind = "invalid", retryable = false } end
      end
      return fn
    end
  elseif type(list) == "table" then
    total = #list
    local count = 0
    for k in pairs(list) do
      count = count + 1
      if type(k) ~= "number" or k < 1 or k > total or floor(k) ~= k then
        raise("list must be an array of field tables without holes (bad key " .. tostring(k) .. ")")
      end
    end
    if count ~= total then raise("list must be an array of field tables without holes") end
    -- Every item is checked before anything is sent; the raise lists the first few.
    local problems, bad, reads, missing = {}, 0, {}, 0
    for i = 1, total do
      local ok, fn, need_read, id = pcall(client._update_fn, client, list[i], item_opts, 1)
      if not ok then
        bad = bad + 1
        if #problems < M.MAX_PROBLEMS then problems[#problems + 1] = "item " .. i .. ": " .. item_problem(fn) end
      elseif need_read and reads[id] == nil and missing <= M.MAX_PREFETCH then
        reads[id] = false -- wanted; becomes the record once a page holds it
        missing = missing + 1
      end
    end
    if bad > 0 then fail_list(method, problems, bad, level) end
    local reader
    -- A first page costs one request whatever it finds; it is worth it from 3 reads.
    if missing >= 3 and missing <= M.MAX_PREFETCH then
      want = reads
      reader = page_reader(client, want, missing, stats)
    end
    local i = 0
    source = function()
      if reader then
        local thunk, on_done = reader()
        if thunk ~= nil then return thunk, on_done end
        reader = nil
      end
      i = i + 1
      local item = list[i]
      if item == nil then return nil end
      local fn, need_read, id = client:_update_fn(item, item_opts, 1)
      local stored = want and want[id] or nil
      if need_read and not stored then stats.gets = stats.gets + 1 end
      if not stored then return fn end
      return function(ctx) return fn(ctx, stored) end
    end
  else
    raise("list must be an array of field tables (or an iterator function)")
  end

  local function summary(results)
    if not opts.dry_run or type(results) ~= "table" then return results end
    local writes = 0
    if keep then
      for k = 1, #results do
        local r = results[k]
        if r.ok and r.key.requests then writes = writes + #r.key.requests end
      end
    end
    results.plan = {
      reads = stats.pages > 0 and "list pages" or "one GET per key",
      read_requests = stats.pages + stats.gets, list_pages = stats.pages, gets = stats.gets,
      write_requests = keep and writes or nil,
      requests = keep and (stats.pages + stats.gets + writes) or nil,
    }
    return results
  end

  local run_opts = { concurrency = concurrency, on_progress = on_progress, on_result = on_result, keep = keep,
    total = total, method = method, level = level + 1 }
  if callback then
    M.run(client, source, run_opts, function(err, results, info)
      if err then return callback(err, nil, info) end
      return callback(nil, summary(results))
    end)
    return
  end
  local results = M.run(client, source, run_opts)
  return summary(results)
end

local WHERE_OPTS = { concurrency = true, on_progress = true, on_result = true, keep_results = true,
  dry_run = true }

--- update_where(client, filter, fields, opts, callback, level) --> results | nil, message, info
-- filter: function(key) --> boolean | { field = value, ... } | { keyword = ..., token = ... }
-- (search pages; other entries of the table then match fields of each found key).
function M.update_where(client, filter, fields, opts, callback, level)
  level = level + 1
  local method = "update_where"
  local function raise(message) error("cometkey.update_where: " .. message, level + 1) end
  if type(opts) == "function" and callback == nil then opts, callback = nil, opts end
  if callback ~= nil and type(callback) ~= "function" then raise("callback must be a function") end
  opts = opts or {}
  local concurrency, on_progress, on_result, keep = M.check_opts(opts, WHERE_OPTS, method, level)
  if type(fields) ~= "table" then raise("fields must be a table, got " .. type(fields)) end
  if fields.id ~= nil then raise("fields must not name id (the filter picks the keys)") end
  local item_opts = { dry_run = opts.dry_run }
  local function item_of(id)
    local item = { id = id }
    for k, v in pairs(fields) do item[k] = v end
    return item
  end
  do -- check the fields once, as any key would get them
    local ok, err = pcall(client._update_fn, client, item_of(1), item_opts, 1)
    if not ok then raise(item_problem(err)) end
  end

  local match, op, search
  if type(filter) == "function" then
    match, op = filter, "list"
  elseif type(filter) == "table" then
    local rest = {}
    for k, v in pairs(filter) do
      if k == "keyword" or k == "token" then
        if type(v) ~= "string" or v == "" then raise("filter." .. k .. " must be a non-empty string") end
        search = search or {}
        search[k] = v
      else
        rest[k] = v
      end
    end
    op = search and "search" or "list"
    if next(rest) ~= nil then
      local normalized, problems = require("cometkey.core").check(rest, "expect")
      if not normalized then
        local parts = {}
        for k = 1, #problems do parts[k] = problems[k].message end
        raise("filter: " .. concat(parts, "; "))
      end
      local mismatch = require("cometkey.plan").mismatch
      match = function(key) return mismatch(key, normalized) == nil end
    end
  else
    raise("filter must be a function(key), a table of field = value, or { keyword = ..., token = ... }")
  end

  local page, busy, last = 0, false, false
  local pending, p_head, p_tail = {}, 1, 0
  local seen = {}
  local failure -- message, info of a page read that failed: the pass stops there
  local stats = { pages = 0 }

  local function on_page(result, message, info)
    busy = false
    stats.pages = stats.pages + 1
    if not result then
      failure, last = { message, info }, true
      return
    end
    local items = result.items or {}
    for k = 1, #items do
      local key = items[k]
      local id = type(key) == "table" and key.id or nil
      if id ~= nil and not seen[id] then -- keys created meanwhile shift pages: skip repeats
        seen[id] = true
        if match == nil or match(key) then
          p_tail = p_tail + 1
          pending[p_tail] = key
        end
      end
    end
    if #items < M.PAGE or (result.total and page * M.PAGE >= result.total) then last = true end
  end

  local function source()
    if p_head <= p_tail then
      local key = pending[p_head]
      pending[p_head] = nil
      p_head = p_head + 1
      local ok, fn = pcall(client._update_fn, client, item_of(key.id), item_opts, 1)
      if not ok then -- a listed key whose id is not an integer: world data
        local message = "cometkey: GET /api/token/: a listed key has an invalid id (" .. tostring(key.id) .. ")"
        return function() return nil, message, { kind = "decode", field = "id", retryable = false } end
      end
      return function(ctx) return fn(ctx, key) end
    end
    if last then return nil end
    if busy then return M.WAIT end
    busy, page = true, page + 1
    local p = page
    return function(ctx)
      if search then
        return client:_send(ctx, "search", { keyword = search.keyword, token = search.token, page = p,
          page_size = M.PAGE })
      end
      return client:_send(ctx, op, { page = p, page_size = M.PAGE })
    end, on_page
  end

  local run_opts = { concurrency = concurrency, on_progress = on_progress, on_result = on_result, keep = keep,
    method = method, level = level + 1 }
  local function finish(results)
    if not failure then return results end
    local info = failure[2] or {}
    info.results = results
    return nil, tostring(failure[1]) .. " (the pass over the keys stopped there; info.results holds what was done)",
      info
  end
  if callback then
    M.run(client, source, run_opts, function(err, results, info)
      if err then return callback(err, nil, info) end
      local r, message, i = finish(results)
      if r == nil then return callback(message, nil, i) end
      return callback(nil, r)
    end)
    return
  end
  local results = M.run(client, source, run_opts)
  return finish(results)
end

return M
