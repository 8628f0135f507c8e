-- Runs the local CometAPI token-API mock in the foreground until Ctrl-C (`make mock`).
--   lua5.4 tools/mock.lua [--port N] [--token T] [--masked-keys] [--require-user-header]
--                         [--language en|zh|auto] [--search-style paged|array]
-- If the process is killed another way, nginx notices within a second and stops itself.

local root = (arg and arg[0] or ""):match("^(.*)/tools/[^/]*$") or "."
local mock = dofile(root .. "/spec/support/mock.lua")
local sys = dofile(root .. "/spec/support/sys.lua")

local USAGE = [==[
usage: lua5.4 tools/mock.lua [--port N] [--token T] [--masked-keys] [--require-user-header]
                             [--language en|zh|auto] [--search-style paged|array]]==]

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
    elseif a == "--require-user-header" then
      opts.require_user_header = true
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
print("  try: curl -s -H 'Authorization: " .. m.token .. "' " .. m.url .. "/api/token/")
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
