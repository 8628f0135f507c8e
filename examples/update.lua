--- examples/update.lua - the main job: update CometAPI keys safely.
--
-- Against the local mock (what `make demo` does):
--   make demo
-- Against the real API (creates, changes and finally deletes three keys named
-- "cometkey-demo-*" in your account):
--   COMETAPI_ACCESS_TOKEN=... [COMETAPI_USER_ID=...] lua5.4 examples/update.lua --cleanup
-- Environment: COMETAPI_ACCESS_TOKEN (required), COMETAPI_BASE_URL (default
-- https://api.cometapi.com), COMETAPI_USER_ID (sent as New-Api-User when set).
local cometkey = require "cometkey"

local token = os.getenv("COMETAPI_ACCESS_TOKEN")
if not token or token == "" then
  io.stderr:write("examples/update.lua: set COMETAPI_ACCESS_TOKEN (your access token)\n")
  os.exit(2)
end
local cleanup = arg and arg[1] == "--cleanup"

local client = cometkey.new {
  token = token,
  base_url = os.getenv("COMETAPI_BASE_URL"),
  user_id = os.getenv("COMETAPI_USER_ID"),
}

local STATUS = { "enabled", "disabled", "expired", "exhausted" }

local function expiry(t)
  if t == -1 then return "never" end
  return os.date("!%Y-%m-%d %H:%M", t) .. " UTC"
end

local function show(label, key)
  print(string.format("  %-8s #%d %-24s %-9s quota=%s expires=%s allow_ips=%s models=%s",
    label, key.id, key.name, STATUS[key.status] or tostring(key.status),
    key.unlimited_quota and "unlimited" or string.format("%d", key.remain_quota),
    expiry(key.expired_time), key.allow_ips and key.allow_ips ~= "" and key.allow_ips:gsub("\n", ",") or "-",
    key.model_limits_enabled and key.model_limits or "-"))
end

-- A value quoted on one line (newlines shown as \n).
local function quoted(v)
  return (string.format("%q", tostring(v)):gsub("\\\n", "\\n"))
end

-- assert() for results: stops the example with the library's one-line message.
local function check(value, message, info)
  if value == nil then
    io.stderr:write(message, " [kind=", tostring(info and info.kind), "]\n")
    os.exit(1)
  end
  return value
end

-- Finds the demo keys by name, creating the ones that are missing.
local wanted = {
  { name = "cometkey-demo-web", remain_quota = 500000, expired_time = -1, allow_ips = "10.0.0.0/8" },
  { name = "cometkey-demo-batch", remain_quota = 123456789012345, expired_time = os.time() + 30 * 86400 },
  { name = "cometkey-demo-old", remain_quota = 1000, expired_time = os.time() - 86400 },
}
local keys = {}
for key in client:each() do
  keys[key.name] = key
end
for _, fields in ipairs(wanted) do
  if not keys[fields.name] then keys[fields.name] = check(client:create(fields)) end
end

print("1. The keys:")
for _, w in ipairs(wanted) do show("", keys[w.name]) end

local web, batch, old = keys["cometkey-demo-web"], keys["cometkey-demo-batch"], keys["cometkey-demo-old"]

print("\n2. Disable a key (one PUT ?status_only=1; nothing else is touched):")
show("before", web)
show("after", check(client:update { id = web.id, status = "disabled" }))

print("\n3. Rename a key: quota, expiry and allowlist stay as they were (read, merge, one full PUT):")
show("before", batch)
local renamed = check(client:update { id = batch.id, name = "cometkey-demo-nightly" })
show("after", renamed)
assert(renamed.remain_quota == batch.remain_quota and renamed.expired_time == batch.expired_time
  and renamed.allow_ips == batch.allow_ips, "a field the update did not name changed")

print("\n4. Re-enable an expired key with a new expiry (the expiry lands first, then the status):")
show("before", old)
show("after", check(client:update { id = old.id, status = "enabled", expired_time = os.time() + 90 * 86400 }))

print("\n5. Set an IP allowlist from a Lua array (checked like the server's Go parser, sent newline-joined):")
local plan = check(client:update({ id = web.id, allow_ips = { "192.168.1.10", "2001:db8::/32", "10.1.2.3/8" } },
  { dry_run = true }))
for field, change in pairs(plan.diff) do
  print(string.format("  dry run: %s: %s -> %s", field, quoted(change.from), quoted(change.to)))
end
show("after", check(client:update { id = web.id, allow_ips = { "192.168.1.10", "2001:db8::/32", "10.1.2.3/8" } }))

print("\n6. A mistake is caught before anything is sent:")
local ok, err = pcall(client.update, client, { id = web.id, allow_ips = { "10.0.0.1:8080" }, name = ("x"):rep(51) })
print("  " .. tostring(ok) .. ": " .. tostring(err))

print("\n7. Reveal a key: servers from 2026-03 mask it in every answer (the full key is a secret: not printed):")
print("  as listed: " .. tostring(check(client:get(web.id)).key))
local full, err7, info7 = client:reveal(web.id)
if full then
  print(string.format("  revealed: %d characters, ends with ...%s", #full, full:sub(-4)))
else
  print("  " .. err7 .. " [kind=" .. tostring(info7 and info7.kind) .. "]") -- servers before 2026-03
end

if cleanup then
  for _, key in pairs({ web, renamed, old }) do check(client:delete(key.id)) end
  print("\nDeleted the demo keys.")
end
client:close()
