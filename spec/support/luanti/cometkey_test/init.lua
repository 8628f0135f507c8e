-- cometkey_test: the engine side of spec/luanti_spec.lua. A trusted mod that loads
-- cometkey with cometkey.luanti under mod security and drives it from minetest.after:
--   bad input (no callback, transports that make no sense here) -> raises, nothing sent;
--   every ordered pair of operations, one after another, while cometkey_other fires
--   DELETE/PUT/GET through the engine's HTTP API;
--   every operation at once, several rounds; /ckey chat commands of cometkey_admin;
--   calls that retry (429s) or wait (a slow answer), timing the server's steps;
--   walks of everything reachable from the module and the client (an ordinary mod's
--   walk in cometkey_probe, and one with upvalues here);
--   a call still running at shutdown.
-- It writes its findings to <world>/cometkey_results.json on shutdown; the spec
-- judges them together with the mock's request log.
local S = minetest.settings
local function setting(k) return S:get("cometkey_test." .. k) end

local R = { checks = {}, asks = {}, gaps = {}, counts = {} }
local function check(name, ok, detail)
  R.checks[#R.checks + 1] = { name = name, ok = ok and true or false,
    detail = detail ~= nil and tostring(detail) or nil }
end
local function log(...)
  minetest.log("action", "[cometkey_test] " .. table.concat({ ... }, " "))
end

-- ------------------------------------------------------------------ loading
local ie = minetest.request_insecure_environment()
if not ie then error("cometkey_test: add cometkey_test to secure.trusted_mods", 0) end

local lua_path, lua_cpath = setting("lua_path"), setting("lua_cpath")
local loader = ie.dofile(assert(ie.package.searchpath("cometkey.luanti", lua_path)))
local loaded, cometkey = pcall(loader.load, ie, { path = lua_path, cpath = lua_cpath })
check("loader: cometkey loads under mod security", loaded, not loaded and cometkey or nil)
if not loaded then error(cometkey, 0) end

local f = assert(ie.io.open(setting("token_file"), "r"))
local token = f:read("*l")
f:close()

-- The yardstick of the walks: every table and function of the insecure environment
-- that the secure one does not have (io.popen, os.execute, require, package.loadlib,
-- debug.getupvalue, the original library tables, ie itself ...).
local forbidden = { [ie] = "ie" }
local function forbid(v, label)
  local t = type(v)
  if (t == "table" or t == "function" or t == "userdata") and forbidden[v] == nil then forbidden[v] = label end
end
for k, v in pairs(ie) do
  local safe = rawget(_G, k)
  if safe ~= v then forbid(v, "ie." .. tostring(k)) end
  if type(v) == "table" and k ~= "_G" then
    for k2, v2 in pairs(v) do
      if not (type(safe) == "table" and rawget(safe, k2) == v2) then forbid(v2, "ie." .. k .. "." .. tostring(k2)) end
    end
  end
end
local must = { io_popen = ie.io.popen, io_open = ie.io.open, os_execute = ie.os.execute, require = ie.require,
  package_loadlib = ie.package.loadlib, debug_getupvalue = ie.debug.getupvalue }
for name, v in pairs(must) do check("walk yardstick holds " .. name, forbidden[v] ~= nil) end
local getupvalue, dgetfenv, dgetmetatable = ie.debug.getupvalue, ie.debug.getfenv, ie.debug.getmetatable
ie = nil -- luacheck: ignore 311

-- ------------------------------------------------------------------ the client
local asks = R.asks
local client = cometkey.new {
  token = token, base_url = setting("base_url"), user_id = setting("user_id"), timeout = 10, connect_timeout = 5,
  user_agent = "cometkey-test/1",
  debug = function(line)
    local what = line:match("^cometkey: %-> (%u+ %S+) %(attempt")
    if what then asks[#asks + 1] = what end
  end,
}
check("transport: picked by itself inside Luanti", client.transport.name == "luanti", client.transport.name)
cometkey_test = { client = client, cometkey = cometkey }

local answers = {}   -- call label -> number of callbacks
local function answered(label)
  answers[label] = (answers[label] or 0) + 1
  return answers[label]
end

-- ------------------------------------------------------------------ step timing
local last_us, gap_phase
local max_gap = { all = 0 }
minetest.register_globalstep(function()
  local now = minetest.get_us_time()
  if last_us and gap_phase then
    local gap = (now - last_us) / 1000
    if gap > (max_gap[gap_phase] or 0) then max_gap[gap_phase] = gap end
    if gap > max_gap.all then max_gap.all = gap end
  end
  last_us = now
end)

-- ------------------------------------------------------------------ phases
local phases, current = {}, 0
local deadline_job
local function next_phase()
  current = current + 1
  local p = phases[current]
  if not p then return end
  gap_phase = p.name
  log("phase", p.name)
  local finished = false
  local t0 = minetest.get_us_time()
  local job
  job = minetest.after(p.limit or 20, function()
    if finished then return end
    finished = true
    check(p.name .. ": finished in time", false, "still waiting after " .. (p.limit or 20) .. " s")
    minetest.after(0, next_phase)
  end)
  deadline_job = job
  p.run(function()
    if finished then return end
    finished = true
    job:cancel()
    R.gaps[p.name] = { max_ms = max_gap[p.name] or 0, seconds = (minetest.get_us_time() - t0) / 1e6 }
    minetest.after(0, next_phase)
  end)
end

local function phase(name, limit, run)
  phases[#phases + 1] = { name = name, limit = limit, run = run }
end

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok, tostring(err)
end

-- ------------------------------------------------------------------ bad input
phase("bad_input", 5, function(done)
  local before = #asks
  local r, err = raises(client.get, client, 1)
  check("bad input: get without a callback raises", r and err:find("callback-only", 1, true), err)
  r, err = raises(client.list, client, { page = 1 })
  check("bad input: list without a callback raises", r and err:find("callback-only", 1, true), err)
  r, err = raises(client.update, client, { id = 1, status = "disabled" })
  check("bad input: update without a callback raises", r and err:find("callback-only", 1, true), err)
  r, err = raises(client.update_many, client, { { id = 1, name = "x" } })
  check("bad input: update_many without a callback raises", r, err)
  local before_each = #asks
  r, err = raises(function() return client:each()() end)
  check("bad input: each without a callback raises", r and err:find("callback-only", 1, true), err)
  -- each() without a callback returns its iterator; the first step reaches call.perform,
  -- which logs "-> GET ... (attempt 1)" and then calls the transport's request(), which
  -- raises callback-only before anything is sent. That debug line is no request: take it
  -- out of asks (at most one, and only that list page). The spec compares asks with the
  -- mock's log, so a list page that did reach the server would still be caught there.
  local refused = 0
  for i = #asks, before_each + 1, -1 do
    if asks[i] == "GET /api/token/?p=1&page_size=100" and refused == 0 then
      table.remove(asks, i)
      refused = refused + 1
    end
  end
  R.counts.refused_attempts = refused
  r, err = raises(client.update, client, { id = 1, name = string.rep("n", 51) }, function() answered("bad") end)
  check("bad input: a bad field raises even with a callback", r and err:find("name", 1, true), err)
  for _, t in ipairs({ "curl", "nvim", "resty" }) do
    r, err = raises(cometkey.new, { token = token, base_url = setting("base_url"), transport = t })
    check("bad input: transport " .. t .. " raises in Luanti",
      r and err:find("makes no sense in a Luanti server", 1, true), err)
  end
  r, err = raises(cometkey.new, { token = token, base_url = setting("base_url"), transport = "luanti", bogus = 1 })
  check("bad input: unknown option raises", r and err:find("bogus", 1, true), err)
  check("bad input: the token is in no message", not err:find(token, 1, true))
  minetest.after(0.3, function()
    local sent = {}
    for i = before + 1, #asks do sent[#sent + 1] = asks[i] end
    check("bad input: nothing was sent", #sent == 0, table.concat(sent, ", "))
    check("bad input: no callback ran", answers.bad == nil)
    done()
  end)
end)

-- ------------------------------------------------------------------ the model
local model = { name = {}, status = {} }   -- live keys of the token's user: id -> name / status
for id = 1, 4 do model.name[id], model.status[id] = "seed-" .. id, 1 end
for id = 10, 49 do model.name[id], model.status[id] = "pool-" .. id, 1 end
model.name[70], model.status[70] = "retry-target", 1
model.name[80], model.status[80] = "delay-target", 1
local pool = {}    -- ids nobody else touches, to delete / rename / toggle
for id = 10, 49 do pool[#pool + 1] = id end
local made = 0

local function take() return table.remove(pool, 1) end
local function give(id) pool[#pool + 1] = id end
local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- One call of each operation: start(done) runs it with a callback that checks its answer.
local ops = {}
local last_id -- the id the previous operation touched (the next one picks another)

local function other_id()
  for i = 1, #pool do
    if pool[i] ~= last_id then return table.remove(pool, i) end
  end
  return take()
end

ops.get = function(label, done)
  local id = other_id()
  client:get(id, function(err, key)
    answered(label)
    check(label, not err and key and key.id == id and key.name == model.name[id], err or (key and key.name))
    give(id)
    last_id = id
    done()
  end)
end
ops.list = function(label, done)
  -- Calls running at the same time (create, delete) may land before or after the list.
  local slack = label:find("^together") and 1 or 0
  client:list({ page = 1, page_size = 100 }, function(err, page)
    answered(label)
    local n = count(model.name)
    local ok = not err and math.abs(page.total - n) <= slack and #page.items == page.total
    if ok then
      for _, key in ipairs(page.items) do
        if model.name[key.id] ~= nil and model.name[key.id] ~= key.name then ok = false end
      end
    end
    check(label, ok, err or (page and ("total " .. tostring(page.total) .. " vs " .. count(model.name))))
    done()
  end)
end
ops.search = function(label, done)
  local id = other_id()
  local keyword = model.name[id]
  client:search({ keyword = keyword }, function(err, result)
    answered(label)
    local items = result and (result.items or result) or {}
    local found = false
    for _, key in ipairs(items) do
      if key.id == id then found = true end
    end
    check(label, not err and found and #items == 1, err or (#items .. " item(s)"))
    give(id)
    done()
  end)
end
ops.create = function(label, done)
  made = made + 1
  local name = "made-" .. made
  client:create({ name = name, remain_quota = 1000 + made }, function(err, key)
    answered(label)
    local ok = not err and key and key.name == name and model.name[key.id] == nil and key.remain_quota == 1000 + made
    check(label, ok, err or (key and (key.id .. " " .. key.name)))
    if ok then
      model.name[key.id], model.status[key.id] = name, 1
      give(key.id)
      last_id = key.id
    end
    done()
  end)
end
ops.update = function(label, done)
  local id = other_id()
  local name = "renamed-" .. id .. "-" .. label:match("%d+$")
  client:update({ id = id, name = name }, function(err, key)
    answered(label)
    local ok = not err and key and key.id == id and key.name == name and key.status == model.status[id]
    check(label, ok, err or (key and key.name))
    if ok then model.name[id] = name end
    give(id)
    last_id = id
    done()
  end)
end
ops.status = function(label, done)
  local id = other_id()
  local target = model.status[id] == 1 and 2 or 1
  client:update({ id = id, status = target }, function(err, key)
    answered(label)
    check(label, not err and key and key.id == id and key.status == target and key.name == model.name[id],
      err or (key and key.status))
    if key and key.status == target then model.status[id] = target end
    give(id)
    last_id = id
    done()
  end)
end
ops.delete = function(label, done)
  local id = other_id()
  client:delete(id, function(err, result)
    answered(label)
    check(label, not err and result == true, err)
    if result == true then model.name[id], model.status[id] = nil, nil end
    last_id = id
    done()
  end)
end
-- Operations of cometkey 0.2 that this client may have (added by other work).
if type(client.reveal) == "function" then
  ops.reveal = function(label, done)
    local id = other_id()
    client:reveal(id, function(err, key)
      answered(label)
      check(label, not err and type(key) == "string" and #key >= 16, err)
      give(id)
      last_id = id
      done()
    end)
  end
end
if type(client.delete_many) == "function" then
  ops.delete_many = function(label, done)
    local a, b = other_id(), other_id()
    client:delete_many({ a, b }, function(err, n)
      answered(label)
      check(label, not err and n == 2, err or n)
      if n == 2 then model.name[a], model.name[b], model.status[a], model.status[b] = nil, nil, nil, nil end
      last_id = b
      done()
    end)
  end
end
if type(client.reveal_many) == "function" then
  ops.reveal_many = function(label, done)
    local a, b = other_id(), other_id()
    client:reveal_many({ a, b }, function(err, keys)
      answered(label)
      check(label, not err and type(keys) == "table" and type(keys[a]) == "string" and type(keys[b]) == "string", err)
      give(a)
      give(b)
      last_id = b
      done()
    end)
  end
end
if type(client.server_settings) == "function" then
  ops.server_settings = function(label, done)
    client:server_settings(function(err, s)
      answered(label)
      check(label, not err and type(s) == "table", err)
      done()
    end)
  end
end

local names = {}
for name in pairs(ops) do names[#names + 1] = name end
table.sort(names)
R.operations = names

-- A de Bruijn sequence of order 2: every ordered pair of operations appears once
-- as neighbours (k*k pairs in k*k + 1 calls).
local function every_pair(k)
  local a, seq = {}, {}
  for i = 0, 2 * k do a[i] = 0 end
  local function db(t, p)
    if t > 2 then
      if 2 % p == 0 then
        for j = 1, p do seq[#seq + 1] = a[j] + 1 end
      end
    else
      a[t] = a[t - p]
      db(t + 1, p)
      for j = a[t - p] + 1, k - 1 do
        a[t] = j
        db(t + 1, t)
      end
    end
  end
  db(1, 1)
  seq[#seq + 1] = seq[1]
  return seq
end

phase("every_pair", 40, function(done)
  local seq = every_pair(#names)
  local pairs_seen, distinct = {}, 0
  for i = 2, #seq do
    local key = seq[i - 1] * 100 + seq[i]
    if not pairs_seen[key] then pairs_seen[key], distinct = true, distinct + 1 end
  end
  check("every pair: the sequence holds every ordered pair", distinct == #names * #names, distinct)
  R.counts.sequence = #seq
  cometkey_other.active = true
  local i = 0
  local function step()
    i = i + 1
    if i > #seq then
      cometkey_other.active = false
      return done()
    end
    local op = names[seq[i]]
    ops[op]("pair " .. op .. " #" .. i, function() minetest.after(0, step) end)
  end
  step()
end)

-- ------------------------------------------------------------------ all at once
phase("all_at_once", 20, function(done)
  cometkey_other.active = true
  local rounds, round = 3, 0
  local function go()
    round = round + 1
    if round > rounds then
      cometkey_other.active = false
      return done()
    end
    local pending = #names
    last_id = nil
    for _, op in ipairs(names) do
      ops[op]("together " .. op .. " round " .. round, function()
        pending = pending - 1
        if pending == 0 then minetest.after(0, go) end
      end)
    end
  end
  go()
end)

-- ------------------------------------------------------------------ /ckey (cometkey_admin)
local chat = {}
local send = minetest.chat_send_player
minetest.chat_send_player = function(name, text)
  if name:sub(1, 3) == "ck_" then
    chat[name] = chat[name] or {}
    table.insert(chat[name], text)
  end
  return send(name, text)
end

local function say(name, message)
  for _, fn in ipairs(minetest.registered_on_chat_messages) do
    if fn(name, message) then return end
  end
end

phase("ckey", 20, function(done)
  local auth = minetest.get_auth_handler()
  for _, who in ipairs({ "ck_admin", "ck_guest" }) do
    if not auth.get_auth(who) then auth.create_auth(who, "") end
  end
  minetest.set_player_privs("ck_admin", { cometkey_admin = true, interact = true })
  minetest.set_player_privs("ck_guest", { interact = true })
  local script = {
    -- { player, command, pattern the last reply must match, replies to wait for }
    { "ck_guest", "/ckey list", "permission" },
    { "ck_admin", "/ckey disable abc", "ID must be a key id" },
    { "ck_admin", "/ckey enable 0", "ID must be a key id" },
    { "ck_admin", "/ckey disable 99999999999999999999", "ID must be a key id" },
    { "ck_admin", "/ckey rename 3", "give the new NAME" },
    { "ck_admin", "/ckey rename x y", "ID must be a key id" },
    { "ck_admin", "/ckey rename 3 " .. string.rep("n", 51), "at most 50 bytes" },
    { "ck_admin", "/ckey frobnicate 3", "usage" },
    { "ck_admin", "/ckey list", "^%[ckey%] #", "list" },
    { "ck_admin", "/ckey disable 3", "^%[ckey%] disabled #3 \"seed%-3\" disabled$" },
    { "ck_admin", "/ckey enable 3", "^%[ckey%] enabled #3 \"seed%-3\" enabled$" },
    { "ck_admin", "/ckey rename 3 chat renamed", "^%[ckey%] renamed #3 \"chat renamed\" enabled$" },
  }
  local i = 0
  local function step()
    i = i + 1
    local line = script[i]
    if not line then return done() end
    local who, command, want, kind = line[1], line[2], line[3], line[4]
    chat[who] = {}
    say(who, command)
    local waited = 0
    local function wait()
      local replies = chat[who]
      local last = replies[#replies]
      local complete = last ~= nil
      if kind == "list" then
        complete = #replies >= 2 and #replies >= 1 + (tonumber(replies[1]:match("newest (%d+)")) or 99)
      end
      if complete then
        check("ckey: " .. who .. " " .. command:sub(1, 40), last:find(want) ~= nil, table.concat(replies, " | "))
        return minetest.after(0, step)
      end
      waited = waited + 1
      if waited > 300 then
        check("ckey: " .. who .. " " .. command:sub(1, 40), false, "no reply")
        return minetest.after(0, step)
      end
      minetest.after(0.01, wait)
    end
    wait()
  end
  step()
end)
-- model.name[3] is "chat renamed" from here on (not used by later phases).

-- ------------------------------------------------------------------ retries and slow answers
phase("retry", 20, function(done)
  local pending = 2
  local function finish()
    pending = pending - 1
    if pending == 0 then done() end
  end
  local t0 = minetest.get_us_time()
  local before = #asks
  client:get(70, function(err, key, info)
    answered("retry get 70")
    local tries = 0
    for i = before + 1, #asks do
      if asks[i] == "GET /api/token/70" then tries = tries + 1 end
    end
    R.counts.retry_seconds = (minetest.get_us_time() - t0) / 1e6
    check("retry: get after two 429s succeeds", not err and key and key.id == 70, err or (info and info.kind))
    check("retry: three attempts were sent", tries == 3, tries)
    finish()
  end)
  client:get(80, function(err, key)
    answered("slow get 80")
    R.counts.slow_seconds = (minetest.get_us_time() - t0) / 1e6
    check("slow: a slow answer arrives", not err and key and key.id == 80, err)
    finish()
  end)
end)

-- ------------------------------------------------------------------ walks
-- What is reachable from the module and the client, with upvalues and the real
-- environments of C functions and userdata too (the probe mod has none of these).
-- Values every mod has (the standard globals and their library tables) are not followed:
-- a C function of the standard library has the insecure table as its real environment
-- whoever holds it, and an ordinary mod cannot read it (getfenv gives its own).
local function strong_walk(roots)
  local seen, queue, hits, from = {}, {}, {}, {}
  local public = cometkey_probe.own_values()
  local n = 0
  local function push(v, parent, how)
    local t = type(v)
    if (t == "table" or t == "function" or t == "userdata" or t == "thread") and not seen[v]
      and v ~= _G and v ~= minetest and not public[v] then
      seen[v] = true
      from[v] = { parent, how }
      queue[#queue + 1] = v
    end
  end
  local function path(v)
    local parts = {}
    while v ~= nil and from[v] and #parts < 12 do
      table.insert(parts, 1, from[v][2])
      v = from[v][1]
    end
    return table.concat(parts, " ")
  end
  for i, r in ipairs(roots) do push(r, nil, "root" .. i) end
  local i = 1
  while i <= #queue do
    local v = queue[i]
    i = i + 1
    n = n + 1
    if forbidden[v] then hits[#hits + 1] = forbidden[v] .. " via " .. path(v) end
    local t = type(v)
    if t == "table" then
      for k, x in next, v do
        push(k, v, "key")
        push(x, v, "." .. tostring(k))
      end
      push(dgetmetatable(v), v, "<metatable>")
    elseif t == "userdata" then
      push(dgetmetatable(v), v, "<metatable>")
      push(dgetfenv(v), v, "<env>")
    elseif t == "function" then
      push(dgetfenv(v), v, "<env>")
      local u = 1
      while true do
        local name, x = getupvalue(v, u)
        if name == nil then break end
        push(x, v, "<upvalue " .. name .. ">")
        u = u + 1
      end
    end
  end
  return n, hits
end

local function walks(label)
  local roots = { cometkey, client, loader }
  local probe = cometkey_probe.run(roots)
  local bad = {}
  for k, v in ipairs(probe.values) do
    if forbidden[v] then bad[#bad + 1] = forbidden[v] .. " via " .. probe.paths[k] end
  end
  check("walk (" .. label .. "): an ordinary mod reaches nothing of the insecure environment", #bad == 0,
    table.concat(bad, ", "))
  check("walk (" .. label .. "): an ordinary mod's escape attempts all fail", #probe.escapes == 0,
    table.concat(probe.escapes, "; "))
  check("walk (" .. label .. "): an ordinary mod's walk reaches cometkey's functions and their environments",
    probe.visited > 100 and probe.envs > 20, probe.visited .. " values, " .. probe.envs .. " environments")
  local n, hits = strong_walk(roots)
  check("walk (" .. label .. "): the walk with upvalues reaches more", n > probe.visited, n)
  check("walk (" .. label .. "): with upvalues too, nothing of the insecure environment", #hits == 0,
    table.concat(hits, "; "))
  R.counts["walk_" .. label] = { probe_values = probe.visited, probe_envs = probe.envs, strong_values = n }
  R.engine_getfenv_hole = probe.engine_hole
end

phase("walks", 20, function(done) -- (the walks themselves take a while: not a cometkey gap)
  -- While a call is in flight (its coroutine, callbacks and queues are reachable too).
  client:get(80, function(err)
    answered("shutdown get 80")
    R.shutdown_answer = err or "answered with a key"
  end)
  minetest.after(0.2, function()
    walks("in flight")
    done()
  end)
end)

phase("shutdown", 5, function(done)
  walks("end")
  -- The get of key 80 is still waiting for its (5 s) answer: the shutdown must answer it.
  R.counts.pending_at_shutdown = client.transport:pending()
  done()
  minetest.request_shutdown("cometkey_test done", false, 0)
end)

minetest.register_on_shutdown(function()
  R.max_gap_ms = max_gap
  R.answers = answers
  R.other = { asks = cometkey_other.asks, answers = cometkey_other.answers }
  local ok, stats = pcall(client.transport.stats, client.transport)
  R.stats = ok and stats or tostring(stats)
  R.phases_run, R.phases_total = current, #phases
  R.closed_wiped = not pcall(function() return client.conf.secret:reveal() end)
  local out = assert(io.open(minetest.get_worldpath() .. "/cometkey_results.json", "w"))
  out:write(minetest.write_json(R))
  out:close()
end)

minetest.after(0.5, next_phase)
local _ = deadline_job
