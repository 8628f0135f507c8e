--- fuzz/fuzz_cli_args.lua - a deterministic, bounded Lua fuzz loop for the command-line
-- parser of the cometkey tool: cometkey.cli.args.parse when the CLI is a module, else
-- parse_argv of bin/cometkey (its source loaded without running main).
--
--   lua5.4 fuzz/fuzz_cli_args.lua SECONDS [SEED] [MAX_RUNS]     (from the repository root)
--
-- Checks: the parser returns (command, options table, positional table) or raises its
-- usage failure (exit status 2, a string message) - never another error; a value given
-- inline to a flag ("--flag=VALUE") is never echoed in a message (it may be a secret
-- typed in the wrong place); each argv takes < 0.5 s of CPU. Exits 1 with the argv
-- printed on failure.
local build = os.getenv("CK_BUILD") or "build/5.4"
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local SECONDS = tonumber(arg[1]) or 10
local SEED = tonumber(arg[2]) or 16
local MAX_RUNS = tonumber(arg[3]) or 1000000
local MARK = "SeCrEt-4e2f"

local parse, is_failure, names
local ok_args, args = pcall(require, "cometkey.cli.args")
if ok_args then
  local commands = require "cometkey.cli.commands"
  local base = require "cometkey.cli.base"
  local order = {}
  for i, v in ipairs(commands.list) do order[i] = type(v) == "table" and v.name or v end
  parse = function(argv) return args.parse(argv, commands.by_name, order) end
  is_failure = function(e) return getmetatable(e) == base.Failure and e.code == base.EXIT_USAGE end
  names = order
else
  local f = assert(io.open("bin/cometkey", "rb"))
  local src = f:read("*a")
  f:close()
  local cut = src:find("\nlocal ok, problem = pcall(main, arg or {})", 1, true)
  assert(cut, "bin/cometkey: its last lines changed; update fuzz/fuzz_cli_args.lua")
  src = src:sub(1, cut) .. "return parse_argv, Failure, COMMANDS\n"
  src = src:gsub("^#![^\n]*", "")
  local chunk = assert(load(src, "=bin/cometkey"))
  local parse_argv, Failure, COMMANDS = chunk()
  parse = parse_argv
  is_failure = function(e) return getmetatable(e) == Failure and e.code == 2 end
  names = {}
  for name in pairs(COMMANDS) do names[#names + 1] = name end
  table.sort(names)
end

math.randomseed(SEED)
local random = math.random

local FLAGS = { "--token-file", "--base-url", "--user-id", "--timeout", "--ca-file", "--insecure", "--allow-http",
  "-v", "--verbose", "-h", "--help", "--version", "--json", "--show-key", "--name", "--status", "--expires",
  "--quota", "--unlimited", "--limited", "--models", "--no-models", "--allow-ip", "--no-allow-ips", "--group",
  "--cross-group-retry", "--dry-run", "--replace", "--expect", "--page", "--page-size", "--port", "--profile",
  "--token", "--", "-", "-x", "---", "--=", "" }
local WORDS = { "1", "0", "-1", "abc", "enabled", "2026-01-01", "+30d", "10.0.0.0/8", "on", "off", "\0", "\n",
  "\255\254", ("x"):rep(1000), "=", "--name=", "help", "version" }

local function word()
  local r = random(1, 10)
  if r <= 3 then return names[random(#names)] end
  if r <= 6 then return FLAGS[random(#FLAGS)] end
  if r == 7 then return FLAGS[random(#FLAGS - 1)] .. "=" .. MARK .. random(1000) end -- (not the last, "")
  if r == 8 then return WORDS[random(#WORDS)] end
  local t = {}
  for i = 1, random(0, 12) do t[i] = string.char(random(0, 255)) end
  return table.concat(t)
end

local function show(argv)
  local out = {}
  for i, a in ipairs(argv) do out[i] = string.format("%q", a) end
  return "{ " .. table.concat(out, ", ") .. " }"
end

local started, runs = os.clock(), 0
while runs < MAX_RUNS and os.clock() - started < SECONDS do
  runs = runs + 1
  local argv = {}
  for i = 1, random(0, 10) do argv[i] = word() end
  local t0 = os.clock()
  local r = table.pack(pcall(parse, argv))
  local took = os.clock() - t0
  local problem
  if r[1] then
    if not ((r[2] == nil or type(r[2]) == "string") and type(r[3]) == "table" and type(r[4]) == "table") then
      problem = "bad results"
    end
  elseif not is_failure(r[2]) then
    problem = "raised something else than a usage failure: " .. tostring(r[2])
  elseif type(r[2].message) ~= "string" then
    problem = "a failure without a message"
  elseif r[2].message:find(MARK, 1, true) and not table.concat(argv, "\0"):find("%z%-%-%z.*" .. MARK:gsub("%p", "%%%0"))
    and argv[1] ~= "--" then -- (after "--" every word is positional, and may be echoed)
    problem = "echoed an inline flag value: " .. r[2].message
  end
  if took > 0.5 then problem = string.format("took %.2f s of CPU", took) end
  if problem then
    io.stderr:write("fuzz_cli_args: FAILED: ", problem, "\n  argv: ", show(argv), "\n")
    os.exit(1)
  end
end
print(string.format("fuzz_cli_args: ok, %d runs in %.1f s (seed %d, parser: %s)", runs, os.clock() - started,
  SEED, ok_args and "cometkey.cli.args" or "bin/cometkey"))
