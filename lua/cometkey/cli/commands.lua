--- cometkey.cli.commands: the commands of the cometkey tool. Each command is
-- { name, usage, summary, help, flags, min_args, max_args, args_name, no_client,
-- run = function(ctx, client, opts, args) }; ctx (made by cometkey.cli) carries
-- the output streams, the environment and the library. Failures raise
-- cometkey.cli.base failures; nothing here exits the process.
local base = require "cometkey.cli.base"
local args_mod = require "cometkey.cli.args"
-- cometkey.cli.values reads the C schema: loaded on first use, so --help, --version
-- and completion run without the C modules.
local values = setmetatable({}, { __index = function(_, k) return require("cometkey.cli.values")[k] end })
local fmt = require "cometkey.cli.format"
local lib = require "cometkey.cli.lib"

local type, pairs, ipairs, pcall, next, setmetatable = type, pairs, ipairs, pcall, next, setmetatable
local format, rep = string.format, string.rep
local concat, sort = table.concat, table.sort

local fail, usage_error, need = base.fail, base.usage_error, base.need
local world_failure, world_message, clean = base.world_failure, base.world_message, base.clean
local EXIT_FAILURE, EXIT_USAGE, EXIT_DENIED = base.EXIT_FAILURE, base.EXIT_USAGE, base.EXIT_DENIED
local JSON_FLAG, SHOW_KEY_FLAG, FIELD_FLAGS, joined =
  args_mod.JSON_FLAG, args_mod.SHOW_KEY_FLAG, args_mod.FIELD_FLAGS, args_mod.joined

local M = { list = {}, by_name = {} }

local function command(def)
  def.flags = def.flags or {}
  M.by_name[def.name] = def
  M.list[#M.list + 1] = def.name
end

local function json_array(t) return setmetatable(t or {}, { __jsontype = "array" }) end
M.json_array = json_array

-- Ids from the arguments, duplicates merged (first occurrence kept).
local function ids_from(args)
  local ids, seen = {}, {}
  for _, a in ipairs(args) do
    local id = need(values.id(a))
    if not seen[id] then
      seen[id] = true
      ids[#ids + 1] = id
    end
  end
  return ids
end
M.ids_from = ids_from

-- A copy of key with its secret masked, or revealed when show is set (nil, message, info on failure).
local function shown_key(_, client, key, show)
  if type(key) ~= "table" or key.key == nil then return key end
  local copy = {}
  for k, v in pairs(key) do copy[k] = v end
  if show then
    local secret, message, info = lib.reveal(client, key)
    if not secret then world_failure(message, info) end
    copy.key = secret
  else
    copy.key = fmt.mask(key.key)
  end
  return copy
end

local function shown_keys(ctx, client, keys, show)
  local out = json_array()
  for i, key in ipairs(keys) do out[i] = shown_key(ctx, client, key, show) end
  return out
end

-- Prints keys as a table (or "no keys match"), or as JSON.
local function print_keys(ctx, client, keys, opts)
  if opts.json then return ctx.emit_json(shown_keys(ctx, client, keys, opts.show_key)) end
  if #keys == 0 then return ctx.out("no keys match\n") end
  ctx.out(fmt.keys_table(keys, ctx.colour))
end

---------------------------------------------------------------- field flags

-- The library fields named by the field flags in opts (exit 2 on a bad value).
local function fields_from(opts)
  for _, pair in ipairs { { "unlimited", "limited" }, { "models", "no_models" }, { "allow_ip", "no_allow_ips" } } do
    if opts[pair[1]] ~= nil and opts[pair[2]] ~= nil then
      usage_error("--%s and --%s cannot be combined", (pair[1]:gsub("_", "-")), (pair[2]:gsub("_", "-")))
    end
  end
  local f = {}
  f.name = opts.name
  if opts.status then f.status = need(values.status(opts.status, "--status")) end
  if opts.expires then f.expired_time = need(values.expires(opts.expires, "--expires")) end
  if opts.quota then f.remain_quota = need(values.quota(opts.quota, "--quota")) end
  if opts.unlimited then f.unlimited_quota = true end
  if opts.limited then f.unlimited_quota = false end
  if opts.models then f.model_limits, f.model_limits_enabled = opts.models, true end
  if opts.no_models then f.model_limits, f.model_limits_enabled = "", false end
  if opts.allow_ip then f.allow_ips = opts.allow_ip end
  if opts.no_allow_ips then f.allow_ips = "" end
  f.group = opts.group
  if opts.cross_group_retry then
    f.cross_group_retry = need(values.bool(opts.cross_group_retry, "--cross-group-retry"))
  end
  return f
end

-- Warnings on values that are valid but probably not meant: a past expiry, or
-- enabling a key that would be expired or exhausted at once.
local function warn_risky(ctx, fields, now)
  local past = type(fields.expired_time) == "number" and fields.expired_time ~= -1 and fields.expired_time <= now
  if past then
    ctx.warn(format("--expires %s is in the past: the key is expired as soon as it is written",
      fmt.time(fields.expired_time, true)))
  end
  if fields.status == values.STATUS.enabled then
    if past then
      ctx.warn("--status enabled with a past expiry: the server refuses to enable an expired key")
    elseif fields.remain_quota == 0 and fields.unlimited_quota ~= true then
      ctx.warn("--status enabled with --quota 0 on a limited key: the server refuses to enable an exhausted key")
    end
  end
end

-- Every problem cometkey.validate finds in fields, as one exit-2 line.
local function validate(ctx, fields, mode)
  local ok, problems = ctx.library().cometkey.validate(fields, mode)
  if ok then return end
  local parts = {}
  for i, p in ipairs(problems) do parts[i] = p.message end
  fail(EXIT_USAGE, concat(parts, "; "))
end

---------------------------------------------------------------- commands

command {
  name = "list", usage = "list [--json [--show-key]]", min_args = 0, max_args = 0,
  summary = "list every key (all pages)",
  help = "Lists every key, newest first: id, name, status, remaining quota, expiry (UTC) and the number of "
    .. "allowlist entries (0: no IP restriction). --json prints an array of the server's records with each "
    .. "key's secret masked (--show-key: in full).",
  flags = { JSON_FLAG, SHOW_KEY_FLAG },
  run = function(ctx, client, opts)
    local keys, message, info = lib.all_keys(client)
    if not keys then world_failure(message, info) end
    print_keys(ctx, client, keys, opts)
  end,
}

command {
  name = "get", usage = "get ID [--json] [--show-key]", min_args = 1, max_args = 1, args_name = "ID",
  summary = "show one key",
  help = "Shows one key field by field. The key's secret is masked, in --json too, unless --show-key is given "
    .. "(on a server that masks keys, --show-key reveals it with one more request).",
  flags = { JSON_FLAG, SHOW_KEY_FLAG },
  run = function(ctx, client, opts, args)
    local key, message, info = client:get(need(values.id(args[1])))
    if not key then world_failure(message, info) end
    key = shown_key(ctx, client, key, opts.show_key)
    if opts.json then return ctx.emit_json(key) end
    ctx.out(fmt.key_view(key, true))
  end,
}

command {
  name = "search", usage = "search KEYWORD [--json [--show-key]]", min_args = 1, max_args = 1,
  args_name = "KEYWORD",
  summary = "find keys by name",
  help = "Finds keys by name. Current servers match KEYWORD exactly unless it holds a % wildcard (at most "
    .. "two, e.g. %prod%); older servers match every name containing KEYWORD.",
  flags = { JSON_FLAG, SHOW_KEY_FLAG },
  run = function(ctx, client, opts, args)
    local keys, message, info = lib.search_all(client, args[1])
    if not keys then world_failure(message, info) end
    print_keys(ctx, client, keys, opts)
  end,
}

command {
  name = "create", usage = "create --name NAME [field flags] [--json [--show-key]]", min_args = 0, max_args = 0,
  summary = "create a key",
  help = "Creates a key and prints the new record (found by listing: the server returns none). Omitted "
    .. "fields take the server's defaults: never expires, quota 0 (limited), no model or IP limits.",
  flags = joined(FIELD_FLAGS, { JSON_FLAG, SHOW_KEY_FLAG }),
  run = function(ctx, client, opts)
    if opts.name == nil then usage_error("create: --name is required") end
    local fields = fields_from(opts)
    validate(ctx, fields, "create")
    warn_risky(ctx, fields, ctx.now())
    local key, message, info = ctx.checked_call(client.create, client, fields)
    if not key then world_failure(message, info) end
    key = shown_key(ctx, client, key, opts.show_key)
    if opts.json then return ctx.emit_json(key) end
    ctx.out(fmt.key_view(key, true))
  end,
}

-- The dry run's diff and planned requests, as text or one JSON document.
local function print_plan(ctx, plan, as_json)
  local core, null = ctx.library().core, ctx.library().cometkey.null
  if as_json then
    local requests = json_array()
    for i, r in ipairs(plan.requests) do
      local body = type(r.body) == "string" and core.json_decode(r.body) or r.body
      requests[i] = { method = r.method, path = r.path, query = r.query, body = body }
    end
    local current = plan.current
    if type(current) == "table" and current.key ~= nil then
      current = shown_key(ctx, nil, current, false)
    end
    return ctx.emit_json { dry_run = true, id = plan.id, diff = plan.diff, requests = requests, current = current }
  end
  ctx.out("dry run for key ", fmt.int(plan.id), ": nothing was written\n")
  local names, width = {}, 0
  for f in pairs(plan.diff) do
    names[#names + 1] = f
    width = math.max(width, #f)
  end
  sort(names)
  ctx.out(#names == 0 and "changes: none (the stored values already match)\n" or "changes:\n")
  for _, f in ipairs(names) do
    local d = plan.diff[f]
    local from, to = fmt.value(d.from, null), fmt.value(d.to, null)
    local note = (f == "expired_time" and fmt.time) or (f == "status" and fmt.status)
    if note then from, to = from .. " (" .. note(d.from) .. ")", to .. " (" .. note(d.to) .. ")" end
    ctx.out("  ", fmt.pad(f, width), "  ", from, " -> ", to, "\n")
  end
  ctx.out("planned requests:\n")
  for _, r in ipairs(plan.requests) do
    ctx.out("  ", r.method, " ", r.path, r.query and r.query ~= "" and ("?" .. r.query) or "",
      r.body and (" " .. fmt.safe(r.body)) or "", "\n")
  end
end

command {
  name = "update", usage = "update ID [field flags] [--expect FIELD=VALUE]... [--dry-run] [--json [--show-key]]",
  min_args = 1, max_args = 1, args_name = "ID",
  summary = "change the named fields of a key",
  help = "Changes only the named fields; every other field keeps its stored value. --expect FIELD=VALUE "
    .. "(repeatable) refuses the update with a conflict when the stored value differs. --dry-run reads the "
    .. "key, prints the field-by-field diff and the requests it would send, and writes nothing.",
  flags = joined(FIELD_FLAGS, {
    { "--expect", key = "expect", value = "FIELD=VALUE", multi = true,
      help = "require a stored value first (e.g. status=enabled, remain_quota=100)" },
    { "--dry-run", key = "dry_run", help = "show the diff and the planned requests; write nothing" },
    JSON_FLAG, SHOW_KEY_FLAG,
  }),
  run = function(ctx, client, opts, args)
    local fields = fields_from(opts)
    local expect = opts.expect and need(values.expect(opts.expect))
    if next(fields) == nil then usage_error("update: nothing to change (give at least one field flag)") end
    fields.id = need(values.id(args[1]))
    validate(ctx, fields, "update")
    warn_risky(ctx, fields, ctx.now())
    local result, message, info = ctx.checked_call(client.update, client, fields,
      { dry_run = opts.dry_run or nil, expect = expect })
    if not result then
      if type(info) == "table" and info.kind == "conflict" and info.status == nil then
        -- Refused before writing (an --expect mismatch, a stored state that cannot be echoed):
        -- the library's message names the PUT it would have sent; none was sent.
        message = format("key %s: %s; nothing was sent", fmt.int(fields.id),
          (clean(message):gsub("^PUT /api/token/?: ", "")))
      end
      world_failure(message, info)
    end
    if opts.dry_run then return print_plan(ctx, result, opts.json) end
    result = shown_key(ctx, client, result, opts.show_key)
    if opts.json then return ctx.emit_json(result) end
    ctx.out(fmt.key_view(result, true))
  end,
}

-- A progress bar on stderr when stderr is a terminal.
local function progress_bar(ctx)
  if not ctx.isatty(2) then return nil end
  local width = 30
  return function(done, total, eta)
    local filled = math.floor(width * done / total)
    -- eta: the client's pace knows the server's limit; while it waits, say so instead of looking hung
    local left = (type(eta) == "number" and eta >= 1 and done < total)
      and format(" ~%d s left (paced to the server's rate limit)", math.floor(eta + 0.5)) or ""
    ctx.stderr:write(format("\r[%s%s] %d/%d%s\27[K", rep("#", filled), rep(".", width - filled), done, total, left))
    if done >= total then ctx.stderr:write("\r\27[K") end
    ctx.stderr:flush()
  end
end

-- enable / disable: one status change per id through update_many.
local function set_status(name)
  return function(ctx, client, opts, args)
    local list, ids = {}, ids_from(args)
    for i, id in ipairs(ids) do list[i] = { id = id, status = values.STATUS[name] } end
    if type(client.update_many) ~= "function" then
      fail(EXIT_FAILURE, "this cometkey library has no client:update_many")
    end
    local results = ctx.checked_call(client.update_many, client, list,
      { concurrency = 8, on_progress = progress_bar(ctx) })
    local failed, report = 0, json_array()
    for i, r in ipairs(results) do
      if r.ok then
        report[i] = { id = ids[i], ok = true, status = r.key and r.key.status }
        if not opts.json then ctx.out(fmt.int(ids[i]), " ", name, "\n") end
      else
        failed = failed + 1
        report[i] = { id = ids[i], ok = false, error = clean(r.error), kind = r.info and r.info.kind }
        ctx.err_line("cometkey: key " .. fmt.int(ids[i]) .. ": " .. world_message(r.error, r.info))
      end
    end
    if opts.json then ctx.emit_json(report) end
    if failed > 0 then fail(EXIT_FAILURE, format("%d of %d keys could not be %s", failed, #results, name)) end
  end
end

command {
  name = "enable", usage = "enable ID... [--json]", min_args = 1, args_name = "ID",
  summary = "enable keys", flags = { JSON_FLAG }, run = set_status("enabled"),
  help = "Enables the given keys (status-only requests, up to 8 at a time; a progress bar on a terminal; "
    .. "repeated ids count once). The server refuses to enable an expired or exhausted key: give it a new "
    .. "expiry or quota first, e.g. cometkey update ID --expires +30d --status enabled (which sends both in "
    .. "the right order).",
}

command {
  name = "disable", usage = "disable ID... [--json]", min_args = 1, args_name = "ID",
  summary = "disable keys", flags = { JSON_FLAG }, run = set_status("disabled"),
  help = "Disables the given keys (status-only requests, up to 8 at a time; a progress bar on a terminal; "
    .. "repeated ids count once).",
}

command {
  name = "delete", usage = "delete ID... [--yes] [--json]", min_args = 1, args_name = "ID",
  summary = "delete keys (asks first)",
  help = "Deletes keys permanently (repeated ids count once). On a terminal it shows the keys and asks y/N; "
    .. "without a terminal it refuses unless --yes is given.",
  flags = { { "-y", "--yes", key = "yes", help = "delete without asking" }, JSON_FLAG },
  run = function(ctx, client, opts, args)
    local ids = ids_from(args)
    if not opts.yes then
      if not ctx.isatty(0) then
        usage_error("delete: refusing to delete without confirmation (stdin is not a terminal); pass --yes")
      end
      for _, id in ipairs(ids) do
        local key, message, info = client:get(id)
        if not key then world_failure(message, info) end
        ctx.stderr:write(format("  %s  %s  (%s)\n", fmt.int(id), fmt.truncate(type(key.name) == "string" and
          key.name or "", fmt.NAME_WIDTH), fmt.status(key.status)))
      end
      ctx.stderr:write(format("Delete %d key%s permanently? [y/N] ", #ids, #ids == 1 and "" or "s"))
      local answer = ctx.stdin:read("*l")
      if not answer or not answer:match("^%s*[yY][eE]?[sS]?%s*$") then
        fail(EXIT_FAILURE, "nothing deleted")
      end
    end
    local results = lib.delete_ids(client, ids)
    local failed, report = 0, json_array()
    for i, r in ipairs(results) do
      if r.ok then
        report[i] = { id = r.id, ok = true }
        if not opts.json then ctx.out(fmt.int(r.id), " deleted\n") end
      else
        failed = failed + 1
        report[i] = { id = r.id, ok = false, error = clean(r.message), kind = r.info and r.info.kind }
        ctx.err_line("cometkey: key " .. fmt.int(r.id) .. ": " .. world_message(r.message, r.info))
      end
    end
    if opts.json then ctx.emit_json(report) end
    if failed > 0 then fail(EXIT_FAILURE, format("%d of %d keys could not be deleted", failed, #ids)) end
  end,
}

command {
  name = "check-ip", usage = "check-ip ID IP [--json]", min_args = 2, max_args = 2, args_name = "ID and IP",
  summary = "would the key accept requests from IP?",
  help = "Fetches the key and tests IP against its allowlist as current servers do (addresses and CIDRs, "
    .. "IPv4 and IPv6; an empty allowlist means no restriction; invalid stored entries are ignored, but a "
    .. "non-empty list still restricts). Prints \"allowed\" (exit 0) or \"denied\" (exit 3); --json prints "
    .. "{\"id\",\"ip\",\"allowed\",\"restricted\",\"ignored\"} with the same exit status.",
  flags = { JSON_FLAG },
  run = function(ctx, client, opts, args)
    local id, ip = need(values.id(args[1])), args[2]
    local allowlist = ctx.library().cometkey.allowlist
    if ip:find("/", 1, true) or not pcall(allowlist.compile, { ip }) then
      usage_error("check-ip: %q is not an IP address", ip)
    end
    local key, message, info = client:get(id)
    if not key then world_failure(message, info) end
    -- The library reads the stored string as the server does (cometkey.allowlist, as = "server").
    local stored = type(key.allow_ips) == "string" and key.allow_ips or ""
    local SERVER = { as = "server" }
    local _, skipped, restricted = allowlist.parse(stored, SERVER)
    local ignored = json_array()
    for _, e in ipairs(skipped or {}) do
      ignored[#ignored + 1] = e
      if not opts.json then
        ctx.warn(format("key %s: allowlist entry %s is invalid; the server ignores it", fmt.int(id), fmt.quote(e)))
      end
    end
    local allowed = not restricted or allowlist.compile(stored, SERVER):contains(ip)
    if opts.json then
      ctx.emit_json { id = id, ip = ip, allowed = allowed, restricted = restricted, ignored = ignored }
    else
      ctx.out(allowed and "allowed\n" or "denied\n")
    end
    if not allowed then fail(EXIT_DENIED, nil) end
  end,
}

command {
  name = "completion", usage = "completion bash|zsh|fish", min_args = 1, max_args = 1, args_name = "SHELL",
  no_client = true,
  summary = "print a shell completion script",
  help = "Prints the completion script for bash, zsh or fish. make install puts them where the shells look: "
    .. "PREFIX/share/bash-completion/completions/cometkey, PREFIX/share/zsh/site-functions/_cometkey and "
    .. "PREFIX/share/fish/vendor_completions.d/cometkey.fish. By hand: eval \"$(cometkey completion bash)\".",
  run = function(ctx, _, _, args)
    local complete = require "cometkey.cli.complete"
    local script = complete[args[1]]
    if type(script) ~= "function" then
      usage_error("completion: unknown shell %q (bash, zsh or fish)", args[1])
    end
    ctx.out(script(M))
  end,
}

command {
  name = "mock", usage = "mock [--port N]", min_args = 0, max_args = 0, no_client = true,
  summary = "run the local mock server (source checkout only)",
  help = "Runs the local mock of the token API in the foreground until Ctrl-C (lua5.4 tools/mock.lua), to "
    .. "try commands with --base-url http://127.0.0.1:PORT. Only available in a source checkout.",
  flags = { { "--port", key = "port", value = "N", help = "port to listen on" } },
  run = function(ctx, _, opts)
    local mock = (ctx.script_dir or ".") .. "/../tools/mock.lua"
    local f = io.open(mock, "r")
    if not f then
      usage_error("mock: the mock server is only available in a source checkout (tools/mock.lua)")
    end
    f:close()
    local cmd = "lua5.4 " .. ctx.shell_quote(mock)
    if opts.port then
      local port = values.integer(opts.port)
      if not port or port < 1 or port > 65535 then usage_error("--port must be 1-65535 (got %q)", opts.port) end
      cmd = cmd .. " --port " .. fmt.int(port)
    end
    ctx.stdout:flush()
    local a, how, code = os.execute(cmd)
    if type(a) == "number" then return a == 0 and 0 or EXIT_FAILURE end
    return how == "signal" and 128 + code or code or EXIT_FAILURE
  end,
}

return M
