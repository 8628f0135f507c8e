-- tools/demo.lua - `make demo`: starts the local mock with a few keys, runs
-- examples/update.lua against it (the same script that runs against the real
-- API), shows the mock's stored rows before and after, and stops the mock.
local root = (arg and arg[0] or ""):match("^(.*)/tools/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. package.path
local mock = dofile(root .. "/spec/support/mock.lua")
local sys = dofile(root .. "/spec/support/sys.lua")

local build = os.getenv("CK_BUILD") or (root .. "/build/5.4")
local now = os.time()
local keys = {
  { id = 11, name = "cometkey-demo-web", status = 1, remain_quota = 500000, expired_time = -1,
    allow_ips = "10.0.0.0/8", model_limits_enabled = true, model_limits = "gpt-4o,claude-sonnet-4" },
  { id = 12, name = "cometkey-demo-batch", status = 1, remain_quota = 123456789012345,
    expired_time = now + 30 * 86400, group = "default" },
  { id = 13, name = "cometkey-demo-old", status = 3, remain_quota = 1000, expired_time = now - 86400 },
  { id = 14, name = "someone-elses-key", status = 1, remain_quota = 42, expired_time = -1 },
}

local function rows(m, label)
  print(label)
  for _, k in ipairs(m:keys()) do
    print(string.format("  #%-3d %-24s status=%d quota=%s expires=%s allow_ips=%s models=%s",
      k.id, k.name, k.status, string.format("%d", k.remain_quota), tostring(k.expired_time),
      (string.format("%q", tostring(k.allow_ips)):gsub("\\\n", "\\n")), string.format("%q", tostring(k.model_limits))))
  end
end

local m = mock.start { keys = keys }
local ok, err = pcall(function()
  print("cometkey demo: mock CometAPI at " .. m.url)
  for _, line in ipairs(mock.describe(m:config())) do print("  " .. line) end
  print()
  rows(m, "Stored rows before (what the server holds):")
  print("\n== lua5.4 examples/update.lua\n")
  local cmd = string.format(
    "COMETAPI_ACCESS_TOKEN=%q COMETAPI_USER_ID=%q COMETAPI_BASE_URL=%q LUA_PATH=%q LUA_CPATH=%q lua5.4 %s"
      .. "/examples/update.lua",
    m.token, tostring(m.user_id), m.url, root .. "/lua/?.lua;;", build .. "/?.so;;", root)
  if not sys.execute(cmd) then error("examples/update.lua failed", 0) end
  print()
  rows(m, "Stored rows after:")
end)
m:stop()
if not ok then
  io.stderr:write("cometkey demo: ", tostring(err), "\n")
  os.exit(1)
end
print("\nDemo done: every change above was made through cometkey; fields it was not told to change kept their values.")
