--- cometkey.cli: the cometkey command-line tool as a module. main(argv [, io])
-- runs one command line and returns its exit status (0 success, 1 server or
-- network failure, 2 bad input with nothing sent, 3 check-ip: denied); bin/cometkey
-- is a launcher that calls it. io replaces the process's streams and environment
-- (for specs): { stdout, stderr, stdin, getenv = fn, isatty = fn(fd) -> boolean,
-- now = fn, script_dir = dir of the launcher }.
-- The C modules are loaded only by the commands that call the server, so --help,
-- --version and completion work without them.
local base = require "cometkey.cli.base"
local args_mod = require "cometkey.cli.args"
-- cometkey.cli.values reads the C schema: loaded on first use, so --help, --version
-- and completion run without the C modules.
local values = setmetatable({}, { __index = function(_, k) return require("cometkey.cli.values")[k] end })
local fmt = require "cometkey.cli.format"
local profile = require "cometkey.cli.profile"
local commands = require "cometkey.cli.commands"

local type, ipairs, tostring, pcall, select, error, getmetatable =
  type, ipairs, tostring, pcall, select, error, getmetatable
local format, concat, floor = string.format, table.concat, math.floor
local unpack = table.unpack or unpack -- luacheck: ignore 143

local fail, usage_error, need, clean = base.fail, base.usage_error, base.need, base.clean
local EXIT_OK, EXIT_FAILURE, EXIT_USAGE = base.EXIT_OK, base.EXIT_FAILURE, base.EXIT_USAGE
local COMMANDS, COMMAND_ORDER = commands.by_name, commands.list

local M = {}

M.VERSION = "0.2.0" -- the tool's version; the library's (cometkey._VERSION) is shown when it loads

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function sh_ok(command)
  local a, _, code = os.execute(command)
  if type(a) == "number" then return a == 0 end -- Lua 5.1
  return a == true and (code == nil or code == 0)
end

--- load_hint(message) --> why the C module did not load, in words, with what to run
function M.load_hint(message)
  message = tostring(message)
  local here = jit and "LuaJIT" or _VERSION:gsub("^Lua ", "Lua ")
  local target = jit and "luajit" or _VERSION:match("%d+%.%d+")
  local symbol = message:match("undefined symbol: ([%w_]+)")
  if symbol and symbol:match("^lua") then
    local built = (symbol == "lua_newuserdatauv" or symbol == "lua_resume" or symbol == "lua_setiuservalue"
      or symbol == "lua_getiuservalue") and "Lua 5.4" or (target == "5.4" and "Lua 5.1 or LuaJIT" or "Lua 5.4")
    return format("the C modules were built for %s, not %s (undefined symbol %s); run make build-%s and "
      .. "use CK_BUILD=build/%s, or install for this interpreter", built, here, symbol, target, target)
  end
  if message:find("module 'cometkey.core' not found", 1, true) or message:find("cometkey/core.so", 1, true) then
    return format("the C module cometkey.core was not found for %s; in a source checkout run make build-%s "
      .. "and set CK_BUILD=build/%s, else install cometkey (make install or luarocks)", here, target, target)
  end
  return (clean(message):gsub("%s+", " "))
end

---------------------------------------------------------------- help

local function flag_lines(flags)
  local rows, width = {}, 0
  for i, f in ipairs(flags) do
    rows[i] = { concat(f, ", ") .. (f.value and (" " .. f.value) or ""), f.help }
    width = math.max(width, #rows[i][1])
  end
  for i, r in ipairs(rows) do rows[i] = "  " .. fmt.pad(r[1], width) .. "  " .. r[2] end
  return concat(rows, "\n") .. "\n"
end

local function wrap(text, width)
  local lines, line = {}, ""
  for word in text:gmatch("%S+") do
    if line ~= "" and #line + #word + 1 > width then
      lines[#lines + 1], line = line, word
    else
      line = line == "" and word or (line .. " " .. word)
    end
  end
  lines[#lines + 1] = line
  return concat(lines, "\n") .. "\n"
end

local function tool_help()
  local rows, width = {}, 0
  for _, name in ipairs(COMMAND_ORDER) do width = math.max(width, #name) end
  for i, name in ipairs(COMMAND_ORDER) do rows[i] = "  " .. fmt.pad(name, width) .. "  " .. COMMANDS[name].summary end
  return concat {
    "usage: cometkey [global flags] <command> [arguments]\n\n",
    "Manages CometAPI API keys. The access token is read from $COMETAPI_ACCESS_TOKEN or --token-file PATH\n",
    "(or a profile's token_file), never from the command line.\n\ncommands:\n", concat(rows, "\n"),
    "\n\nglobal flags (before or after the command):\n",
    flag_lines(args_mod.joined(args_mod.GLOBAL_FLAGS, { { "--version", help = "print the version" } })),
    "\nexit status: 0 success, 1 server or network failure, 2 bad input (nothing sent), 3 check-ip: denied\n",
    "`cometkey <command> --help` shows a command's flags; man cometkey has the rest.\n",
  }
end

local function command_help(def)
  local text = { "usage: cometkey ", def.usage, "\n\n", wrap(def.help, 96) }
  if #def.flags > 0 then text[#text + 1] = "\nflags:\n" .. flag_lines(def.flags) end
  if not def.no_client then
    text[#text + 1] = "\nglobal flags: --profile, --token-file, --base-url, --user-id, --timeout, --ca-file, "
      .. "--insecure, --allow-http, -v (see cometkey --help)\n"
  end
  return concat(text)
end

---------------------------------------------------------------- context

local function default_io()
  return {
    stdout = io.stdout, stderr = io.stderr, stdin = io.stdin, getenv = os.getenv,
    isatty = function(fd) return sh_ok("[ -t " .. fd .. " ]") end,
    now = os.time,
  }
end

local function packed(ok, ...) return ok, { n = select("#", ...), ... } end

-- The per-run context the commands use (see cometkey.cli.commands).
local function new_context(stdio)
  local ctx = {
    stdout = stdio.stdout, stderr = stdio.stderr, stdin = stdio.stdin or io.stdin,
    isatty = stdio.isatty or function() return false end, now = stdio.now or os.time,
    script_dir = stdio.script_dir, shell_quote = shell_quote,
  }
  local getenv = stdio.getenv or os.getenv
  function ctx.getenv(name)
    local v = getenv(name)
    if v == "" then return nil end
    return v
  end
  local secret -- the access token once read: never written anywhere
  function ctx.set_secret(s) secret = s end
  local function scrub(s)
    s = tostring(s)
    if secret and #secret >= 4 then
      local a, b = s:find(secret, 1, true)
      while a do
        s = s:sub(1, a - 1) .. "[token]" .. s:sub(b + 1)
        a, b = s:find(secret, a + 7, true)
      end
    end
    return s
  end
  function ctx.out(...) ctx.stdout:write(...) end
  -- One line on stderr: control characters (newlines included) and bidi controls escaped.
  function ctx.err_line(s) ctx.stderr:write(fmt.safe(scrub(s)), "\n") end
  function ctx.warn(s) ctx.err_line("cometkey: warning: " .. s) end
  ctx.colour = ctx.isatty(1) and not ctx.getenv("NO_COLOR") and ctx.getenv("TERM") ~= "dumb"

  local lib
  function ctx.library()
    if lib then return lib end
    local ok, cometkey = pcall(require, "cometkey")
    if not ok then fail(EXIT_FAILURE, "cannot load the cometkey library: " .. M.load_hint(cometkey)) end
    lib = { cometkey = cometkey, core = require "cometkey.core" }
    return lib
  end
  -- JSON text with exact integers and sorted keys.
  function ctx.emit_json(value)
    local text, message = ctx.library().core.json_encode(value)
    if not text then fail(EXIT_FAILURE, "cannot write the output as JSON: " .. tostring(message)) end
    ctx.out(text, "\n")
  end
  -- Calls a library function that raises on bad input: a raise exits 2 (nothing was sent).
  function ctx.checked_call(fn, ...)
    local ok, results = packed(pcall(fn, ...))
    if not ok then
      if getmetatable(results[1]) == base.Failure then error(results[1], 0) end
      fail(EXIT_USAGE, clean(results[1]))
    end
    return unpack(results, 1, results.n)
  end
  return ctx
end

---------------------------------------------------------------- credentials and client

-- Refuses a token file that others could read or write, or that is not the user's
-- own (as ssh does with keys). A symlink is judged by its target.
local function check_token_file(_, path)
  local ok, curl = pcall(require, "cometkey.curl")
  if not ok then fail(EXIT_FAILURE, "cannot load the cometkey library: " .. M.load_hint(curl)) end
  local mode, owner, me = curl.file_mode(path)
  if not mode then usage_error("cannot read the token file %s: %s", path, tostring(owner)) end
  if owner ~= me then
    usage_error("the token file %s belongs to uid %d, not to you (uid %d); refusing to use it (chown it)",
      path, owner, me)
  end
  local group, other = floor(mode / 8) % 8, mode % 8
  if group ~= 0 or other ~= 0 then
    usage_error("the token file %s is accessible by %s (mode %03o); refusing to use it: run chmod 600 %s", path,
      other ~= 0 and "every user" or "its group", mode % 512, shell_quote(path))
  end
end

local function read_token_file(ctx, path)
  check_token_file(ctx, path)
  local f, message = io.open(path, "rb")
  if not f then usage_error("cannot read the token file: %s", message) end
  local line = f:read("*l")
  f:close()
  local token = line and fmt.trim(line) or ""
  if token == "" then usage_error("the token file %s is empty (its first line must be the access token)", path) end
  return token
end

-- The token: --token-file, else $COMETAPI_ACCESS_TOKEN, else the profile's token_file.
local function read_token(ctx, opts, prof)
  if opts.token_file then return read_token_file(ctx, opts.token_file) end
  local token = ctx.getenv("COMETAPI_ACCESS_TOKEN")
  if token and fmt.trim(token) ~= "" then return fmt.trim(token) end
  if prof.token_file then return read_token_file(ctx, prof.token_file) end
  usage_error("no access token: set COMETAPI_ACCESS_TOKEN, pass --token-file PATH or give the profile a token_file")
end

--- settings(ctx, opts) --> the client options: flags, then the environment, then the profile
function M.settings(ctx, opts)
  local prof, name = profile.load(ctx.getenv, opts.profile)
  local where = name and ("profile " .. name .. ": ") or ""
  local user_id = opts.user_id or ctx.getenv("COMETAPI_USER_ID") or prof.user_id
  if user_id then
    user_id = values.integer(user_id)
    if not user_id or user_id <= 0 then usage_error("--user-id must be a positive integer") end
  end
  local timeout = opts.timeout and need(values.seconds(opts.timeout, "--timeout"))
  local rate_limit = prof.rate_limit and need(profile.rate_limit(prof.rate_limit))
  if rate_limit == nil and prof.rate_limit then usage_error("%s bad rate_limit", where) end
  return {
    base_url = opts.base_url or ctx.getenv("COMETAPI_BASE_URL") or prof.base_url,
    user_id = user_id,
    timeout = timeout,
    connect_timeout = timeout and math.min(timeout, 10) or nil,
    ca_file = opts.ca_file,
    verify = not opts.insecure,
    allow_http = opts.allow_http or nil,
    rate_limit = rate_limit,
  }, prof
end

local function open_client(ctx, opts)
  local cometkey = ctx.library().cometkey
  local conf, prof = M.settings(ctx, opts)
  conf.token = read_token(ctx, opts, prof)
  ctx.set_secret(conf.token)
  conf.warn = ctx.err_line
  conf.debug = opts.verbose and ctx.err_line or nil
  local ok, client = pcall(cometkey.new, conf)
  if not ok then
    local message = clean(client):gsub("^new: ", "") -- (a message not raised through cometkey.errors)
    if message:find("allow_http", 1, true) then
      message = message:gsub("set allow_http = true", "pass --allow-http")
    end
    fail(EXIT_USAGE, message)
  end
  return client
end

---------------------------------------------------------------- main

local function run(ctx, argv)
  local cmd, opts, args = args_mod.parse(argv, COMMANDS, COMMAND_ORDER)
  if cmd == "version" then
    local ok, cometkey = pcall(require, "cometkey")
    ctx.out(ok and cometkey._VERSION or ("cometkey " .. M.VERSION), "\n")
    return EXIT_OK
  end
  if cmd == nil then
    if opts.help then
      ctx.out(tool_help())
      return EXIT_OK
    end
    usage_error("no command given (cometkey --help lists them)")
  end
  if cmd == "help" then
    if args[1] == nil then
      ctx.out(tool_help())
      return EXIT_OK
    end
    local def = COMMANDS[args[1]]
    if not def then
      local s = base.suggest(args[1], COMMAND_ORDER)
      usage_error("unknown command %q (see cometkey --help)%s", args[1], s and ("; did you mean " .. s .. "?") or "")
    end
    ctx.out(command_help(def))
    return EXIT_OK
  end
  local def = COMMANDS[cmd]
  if opts.help then
    ctx.out(command_help(def))
    return EXIT_OK
  end
  local client
  if not def.no_client then
    client = open_client(ctx, opts)
    ctx.client = client
  end
  local code = def.run(ctx, client, opts, args)
  return type(code) == "number" and code or EXIT_OK
end

--- main(argv [, io]) --> exit status; never exits the process
function M.main(argv, stdio)
  stdio = stdio or default_io()
  local ctx = new_context(stdio)
  local ok, result = pcall(run, ctx, argv or {})
  pcall(function() ctx.stdout:flush() end)
  if ctx.client then pcall(ctx.client.close, ctx.client) end
  if ok then return result end
  if getmetatable(result) == base.Failure then
    if result.message then ctx.err_line("cometkey: " .. result.message) end
    return result.code
  end
  ctx.err_line("cometkey: internal error: " .. clean(result))
  return EXIT_FAILURE
end

M.commands = commands
M.tool_help, M.command_help = tool_help, command_help

return M
