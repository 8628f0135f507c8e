-- Runs the local CometAPI token-API mock in the foreground until Ctrl-C (`make mock`).
-- By default it behaves like today's upstream server (masked keys, New-Api-User, limiters);
-- the options below pick an older build or switch single behaviours. See --help.
-- If the process is killed another way, nginx notices within a second and stops itself.

local root = (arg and arg[0] or ""):match("^(.*)/tools/[^/]*$") or "."
local mock = dofile(root .. "/spec/support/mock.lua")
local sys = dofile(root .. "/spec/support/sys.lua")

local USAGE = [==[
usage: lua5.4 tools/mock.lua [options]
  --port N                  listen on 127.0.0.1:N (default: a free port)
  --token T                 the access token of user 1
  --server BUILD            2026 (default, = 2026-08) | 2026-03 | 2025 | pat
  --unmasked-keys           full keys in list/get/search/update (as in 2025)
  --masked-keys             masked keys (the 2026 default)
  --no-user-header          do not check New-Api-User (as in 2025)
  --require-user-header     require New-Api-User (the 2026 default)
  --no-rate-limit           no global, search or reveal limiter
  --rate-limit N/SECONDS    the global limiter (default 180/180)
  --quota-per-unit N        GET /api/status quota_per_unit (default 500000)
  --language en|zh|auto     --search-style paged|array]==]

local function parse(args)
  local opts, i = {}, 1
  local function value(name)
    i = i + 1
    if args[i] == nil then
      io.stderr:write("mock: " .. name .. " needs a value\n" .. USAGE .. "\n")
      os.exit(2)
    end
    return args[i]
  end
  while args[i] do
    local a = args[i]
    if a == "--port" then
      opts.port = tonumber(value(a))
      if not opts.port or opts.port < 1 or opts.port > 65535 or opts.port % 1 ~= 0 then
        io.stderr:write("mock: --port must be a port number\n")
        os.exit(2)
      end
    elseif a == "--token" then
      opts.token = value(a)
    elseif a == "--masked-keys" then
      opts.masked_keys = true
    elseif a == "--unmasked-keys" then
      opts.masked_keys = false
    elseif a == "--require-user-header" then
      opts.require_user_header = true
    elseif a == "--no-user-header" then
      opts.require_user_header = false
    elseif a == "--server" then
      opts.server = value(a)
    elseif a == "--no-rate-limit" then
      opts.rate_limit, opts.search_rate_limit, opts.critical_rate_limit = false, false, false
    elseif a == "--rate-limit" then
      local n, w = value(a):match("^(%d+)/(%d+%.?%d*)$")
      if not n then
        io.stderr:write("mock: --rate-limit must be N/SECONDS, e.g. 180/180\n")
        os.exit(2)
      end
      opts.rate_limit = { requests = tonumber(n), window = tonumber(w) }
    elseif a == "--quota-per-unit" then
      opts.quota_per_unit = tonumber(value(a))
      if not opts.quota_per_unit then
        io.stderr:write("mock: --quota-per-unit must be a number\n")
        os.exit(2)
      end
    elseif a == "--language" then
      opts.language = value(a)
    elseif a == "--search-style" then
      opts.search_style = value(a)
    elseif a == "-h" or a == "--help" then
      print(USAGE)
      os.exit(0)
    else
      io.stderr:write("mock: unknown argument " .. a .. "\n" .. USAGE .. "\n")
      os.exit(2)
    end
    i = i + 1
  end
  return opts
end

io.stdout:setvbuf("line")
local opts = parse(arg or {})
local ok, m = pcall(mock.start, opts)
if not ok then
  io.stderr:write(tostring(m) .. "\n")
  os.exit(1)
end

print("cometkey mock server: " .. m.url)
print("  access token  " .. m.token .. "   (user id " .. m.user_id .. ")")
print("  other user    " .. m.other_token .. "   (user id " .. m.other_user_id .. ")")
print("  admin API     " .. m.admin_url .. "/__mock/{reset,keys,config,fault,stats,requests}")
print("  try: curl -s -H 'Authorization: " .. m.token .. "' -H 'New-Api-User: " .. m.user_id .. "' "
  .. m.url .. "/api/token/")
print("Behaviours on:")
for _, line in ipairs(mock.describe(m:config())) do
  print("  " .. line)
end
print("Ctrl-C stops it.")

-- Ctrl-C raises "interrupted!" in the loop below; nginx dying ends it too.
local waited, err = pcall(function()
  while sys.process_alive(m.pid) do
    sys.sleep(0.25)
  end
  error("nginx exited; error log:\n" .. m:error_log(), 0)
end)
m:stop()
if not waited and not tostring(err):find("interrupted", 1, true) then
  io.stderr:write("mock: " .. tostring(err) .. "\n")
  os.exit(1)
end
print("\nmock stopped")
