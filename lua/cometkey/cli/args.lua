--- cometkey.cli.args: the command line of the cometkey tool — flag tables,
-- parsing of argv into (command, options, positional arguments) and "did you
-- mean" suggestions. Pure Lua, no I/O: failures raise cometkey.cli.base failures.
local base = require "cometkey.cli.base"

local ipairs, select = ipairs, select

local usage_error, suggest = base.usage_error, base.suggest

local M = {}

-- Flag specs: names..., key (field of the options table), value (metavariable;
-- none for switches), multi (repeatable), complete (completion kind), help.
M.GLOBAL_FLAGS = {
  { "--profile", key = "profile", value = "NAME", complete = "profile",
    help = "use the named profile of ~/.config/cometkey/config (default $COMETKEY_PROFILE, else [default])" },
  { "--token-file", key = "token_file", value = "PATH", complete = "file",
    help = "read the access token from PATH (first line; mode 600, owned by you)" },
  { "--base-url", key = "base_url", value = "URL", help = "API base URL (default $COMETAPI_BASE_URL or "
    .. "https://api.cometapi.com)" },
  { "--user-id", key = "user_id", value = "ID", help = "send New-Api-User: ID (default $COMETAPI_USER_ID)" },
  { "--timeout", key = "timeout", value = "SECONDS", help = "deadline per request, retries included (default 30)" },
  { "--ca-file", key = "ca_file", value = "PATH", complete = "file", help = "CA bundle to verify the server with" },
  { "--insecure", key = "insecure", help = "do not verify TLS certificates (the token can be read on the way)" },
  { "--allow-http", key = "allow_http", help = "allow http:// to a host other than loopback (sends the token "
    .. "in clear text)" },
  { "-v", "--verbose", key = "verbose", help = "show each request line on stderr (never the token)" },
  { "-h", "--help", key = "help", help = "show help" },
}

M.JSON_FLAG = { "--json", key = "json", help = "print one JSON document (keys masked unless --show-key)" }
M.SHOW_KEY_FLAG = { "--show-key", key = "show_key",
  help = "show the keys' secrets unmasked (revealed from the server when it masks them)" }

M.FIELD_FLAGS = {
  { "--name", key = "name", value = "NAME", help = "key name (at most 50 bytes, no control characters)" },
  { "--status", key = "status", value = "S", complete = "status",
    help = "enabled|disabled|expired|exhausted or 1-4" },
  { "--expires", key = "expires", value = "WHEN", help = "never | UNIX time | YYYY-MM-DD (UTC) | +30d | +12h" },
  { "--quota", key = "quota", value = "N", help = "remaining quota (integer units)" },
  { "--unlimited", key = "unlimited", help = "unlimited quota" },
  { "--limited", key = "limited", help = "limited quota (the remaining quota applies)" },
  { "--models", key = "models", value = "A,B", help = "allow only these models (turns model limits on)" },
  { "--no-models", key = "no_models", help = "turn model limits off and clear the list" },
  { "--allow-ip", key = "allow_ip", value = "IP|CIDR", multi = true, help = "allowed client address (repeatable)" },
  { "--no-allow-ips", key = "no_allow_ips", help = "remove the IP restriction" },
  { "--group", key = "group", value = "G", help = "group (empty: the account's default)" },
  { "--cross-group-retry", key = "cross_group_retry", value = "on|off", complete = "onoff",
    help = "cross-group retry" },
}

--- joined(list, ...) --> one array of every element of the given arrays
function M.joined(...)
  local all = {}
  for i = 1, select("#", ...) do
    for _, v in ipairs((select(i, ...))) do all[#all + 1] = v end
  end
  return all
end

local function flag_index(flags)
  local index, names = {}, {}
  for _, f in ipairs(flags) do
    for _, name in ipairs(f) do
      index[name] = f
      names[#names + 1] = name
    end
  end
  return index, names
end

local function did_you_mean(word, candidates)
  local s = suggest(word, candidates)
  return s and ("; did you mean " .. s .. "?") or ""
end

-- Applies the flag at argv[i] to opts; returns the next index. Only the flag's
-- name is ever echoed (its value could be a secret typed in the wrong place).
local function take_flag(index, names, argv, i, opts, where)
  local name, inline = argv[i]:match("^(%-[^=]*)=(.*)$") -- "-v=x", "--=x" too: x is never echoed
  name = name or argv[i]
  if name == "--token" then
    usage_error("--token is refused: a token in the arguments is visible to other users (ps, /proc) and stays "
      .. "in the shell history; set COMETAPI_ACCESS_TOKEN or use --token-file PATH")
  end
  local f = index[name]
  if not f then
    local shown = name
    if #shown > 40 or shown:find("[%c\128-\255]") then shown = "(a flag)" end
    usage_error("unknown flag %s%s%s (see --help)", shown, where, did_you_mean(name, names))
  end
  local value = true
  if f.value then
    value = inline or argv[i + 1]
    if value == nil then usage_error("%s needs a value (%s)", name, f.value) end
    if not inline then i = i + 1 end
  elseif inline then
    usage_error("%s takes no value", name)
  end
  if f.multi then
    opts[f.key] = opts[f.key] or {}
    opts[f.key][#opts[f.key] + 1] = value
  else
    if opts[f.key] ~= nil and f.value then usage_error("%s given twice", name) end
    opts[f.key] = value
  end
  return i + 1
end

--- parse(argv, commands, order) --> command name | nil, options, positional arguments
-- commands: name -> { flags, min_args, max_args, usage, args_name }; order: the names.
-- Global flags go before or after the command; command flags after it; "--" ends flags.
function M.parse(argv, commands, order)
  local opts, positional = {}, {}
  local gindex, gnames = flag_index(M.GLOBAL_FLAGS)
  local i, n, cmd = 1, #argv, nil
  while i <= n and cmd == nil do
    local a = argv[i]
    if a == "--version" then return "version", opts, positional end
    if a:sub(1, 1) == "-" and a ~= "-" then
      i = take_flag(gindex, gnames, argv, i, opts, " before the command (command flags go after it)")
    else
      cmd, i = a, i + 1
    end
  end
  if cmd == nil or cmd == "help" then return cmd, opts, { argv[i] } end
  local def = commands[cmd]
  if not def then
    local shown = (#cmd > 40 or cmd:find("[%c\128-\255]")) and "(that word)" or ("%q"):format(cmd)
    usage_error("unknown command %s%s (see cometkey --help)", shown, did_you_mean(cmd, order))
  end
  for k = i, n do
    if argv[k] == "--" then break end
    if argv[k] == "-h" or argv[k] == "--help" then
      opts.help = true
      return cmd, opts, positional
    end
  end
  local index, names = flag_index(M.joined(def.flags, M.GLOBAL_FLAGS))
  local rest = false
  while i <= n do
    local a = argv[i]
    if rest or a:sub(1, 1) ~= "-" or a == "-" then
      positional[#positional + 1] = a
      i = i + 1
    elseif a == "--" then
      rest, i = true, i + 1
    else
      i = take_flag(index, names, argv, i, opts, " for " .. cmd)
    end
  end
  if #positional < def.min_args then
    usage_error("%s: missing %s (usage: cometkey %s)", cmd, def.args_name, def.usage)
  end
  if def.max_args and #positional > def.max_args then
    usage_error("%s: unexpected argument %q (usage: cometkey %s)", cmd, positional[def.max_args + 1], def.usage)
  end
  return cmd, opts, positional
end

return M
