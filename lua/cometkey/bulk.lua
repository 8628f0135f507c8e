--- cometkey.bulk: client:update_many. Every item is validated before anything
-- is sent; then each item's update runs as a coroutine and a small scheduler
-- keeps up to `concurrency` of them in flight on the transport's multi
-- interface (libcurl multi), with per-item retries and pacing that halves the
-- in-flight limit and pauses when the server answers 429. Transports without a
-- multi interface run the same schedule one request at a time.
local coroutine, type, pairs, ipairs, tostring, error, pcall =
  coroutine, type, pairs, ipairs, tostring, error, pcall
local min, max, floor = math.min, math.max, math.floor
local concat, remove = table.concat, table.remove

local M = {}

M.DEFAULT_CONCURRENCY = 8
M.MAX_PROBLEMS = 20 -- invalid items named in update_many's raise (the count is always given)

local OPTS = { concurrency = true, on_progress = true, replace = true, dry_run = true }

local function raise(message, level) error("cometkey.update_many: " .. message, level + 1) end

-- Validates every item; one raise lists all the bad ones.
local function prepare(client, list, opts, level)
  local fns, bad, nbad = {}, {}, 0
  local item_opts = { replace = opts.replace, dry_run = opts.dry_run }
  for i = 1, #list do
    local ok, fn = pcall(client._update_fn, client, list[i], item_opts, 1)
    if ok then
      fns[i] = fn
    else
      nbad = nbad + 1
      if nbad <= M.MAX_PROBLEMS then -- the raise lists the first few, not 10^6 of them
        local message = tostring(fn):gsub("^.-cometkey%.update: ", "")
        bad[nbad] = "item " .. i .. ": " .. message
      end
    end
  end
  if nbad > 0 then
    raise(nbad .. " invalid item(s): " .. concat(bad, "; ")
      .. (nbad > M.MAX_PROBLEMS and ("; ... and " .. (nbad - M.MAX_PROBLEMS) .. " more") or ""), level + 1)
  end
  return fns
end

--- run(client, list, opts, level) --> results
-- results[i] = { ok = true, key = key } or { ok = false, error = message, info = info }
function M.run(client, list, opts, level)
  level = (level or 1) + 1
  if type(list) ~= "table" then raise("list must be an array of field tables", level) end
  opts = opts or {}
  if type(opts) ~= "table" then raise("opts must be a table", level) end
  for k in pairs(opts) do
    if not OPTS[k] then raise("unknown option '" .. tostring(k) .. "'", level) end
  end
  local concurrency = opts.concurrency or M.DEFAULT_CONCURRENCY
  if type(concurrency) ~= "number" or concurrency < 1 or concurrency > 256 or floor(concurrency) ~= concurrency then
    raise("concurrency must be an integer from 1 to 256", level)
  end
  local on_progress = opts.on_progress
  if on_progress ~= nil and type(on_progress) ~= "function" then raise("on_progress must be a function", level) end

  local fns = prepare(client, list, opts, level)
  local total = #fns
  local results = {}
  if total == 0 then return results end

  local t = client.transport
  local multi = t.multi_add ~= nil
  local now = function() return t:now() end
  local ctx = {
    request = function(req) return coroutine.yield("request", req) end,
    sleep = function(s) return coroutine.yield("sleep", s) end,
    now = now,
  }

  local cos = {}          -- item index -> coroutine (the active items)
  local ready_i, ready_req = {}, {} -- FIFO of requests waiting for a slot: item index, req
  local head, tail = 1, 0 -- the FIFO's first and last positions
  local sleepers = {}     -- { i, wake }
  local inflight, limit, pause_until = 0, concurrency, 0
  local next_item, done, streak, active = 1, 0, 0, 0

  local function finish(i, ok, value, message, info)
    if not ok then
      results[i] = { ok = false, error = "cometkey: internal error: " .. tostring(value), info = { kind = "internal" } }
    elseif value == nil then
      results[i] = { ok = false, error = message, info = info }
    else
      results[i] = { ok = true, key = value }
    end
    cos[i] = nil
    active = active - 1
    done = done + 1
    if on_progress then on_progress(done, total) end
  end

  local function resume(i, ...)
    local co = cos[i]
    local ok, what, a, b, c = coroutine.resume(co, ...)
    if coroutine.status(co) == "dead" then return finish(i, ok, what, a, b, c) end
    if what == "request" then
      tail = tail + 1
      ready_i[tail], ready_req[tail] = i, a
    else
      sleepers[#sleepers + 1] = { i, now() + a }
    end
  end

  -- A completed request: adjust the pacing, then hand the result to its item.
  local function complete(i, res, message, info)
    inflight = inflight - 1
    if res and res.status == 429 then
      limit = max(1, floor(limit / 2))
      local ra = require("cometkey.retry_after").parse(res.headers and res.headers["retry-after"])
      pause_until = max(pause_until, now() + (ra or 1))
      streak = 0
    elseif res then
      streak = streak + 1
      if streak >= limit and limit < concurrency then limit, streak = limit + 1, 0 end
    end
    resume(i, res, message, info)
  end

  while done < total do
    -- Start items while fewer than `concurrency` are active.
    while active < concurrency and next_item <= total do
      local i = next_item
      next_item = i + 1
      cos[i] = coroutine.create(fns[i])
      fns[i] = nil -- the coroutine holds it now; a finished item keeps only its result
      active = active + 1
      resume(i, ctx)
    end
    -- Wake sleepers whose time has come.
    local t_now = now()
    for k = #sleepers, 1, -1 do
      if sleepers[k][2] <= t_now then
        local i = sleepers[k][1]
        remove(sleepers, k)
        resume(i)
      end
    end
    -- Dispatch ready requests within the pacing limit.
    if pause_until <= t_now or now() >= pause_until then
      while head <= tail and inflight < limit do
        local i, req = ready_i[head], ready_req[head]
        ready_i[head], ready_req[head] = nil, nil
        head = head + 1
        inflight = inflight + 1
        if multi then
          t:multi_add(i, req)
        else
          complete(i, t:request(req))
        end
      end
    end
    local waiting = head <= tail -- requests ready but not dispatched
    -- Wait for completions (or the next sleeper / end of a pause).
    if inflight > 0 and multi then
      local wait = 1
      for _, s in ipairs(sleepers) do wait = min(wait, max(s[2] - now(), 0)) end
      if waiting and pause_until > now() then wait = min(wait, pause_until - now()) end
      for _, c in ipairs(t:multi_wait(wait)) do complete(c.tag, c.res, c.err, c.info) end
    elseif done < total and not waiting and active > 0 then
      -- Only sleepers (or a pause) left: sleep until the earliest one.
      local wake = math.huge
      for _, s in ipairs(sleepers) do wake = min(wake, s[2]) end
      if wake ~= math.huge then t:sleep(max(wake - now(), 0)) end
    elseif waiting and pause_until > now() then
      t:sleep(pause_until - now())
    end
  end
  return results
end

return M
