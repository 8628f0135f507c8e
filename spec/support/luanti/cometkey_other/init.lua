-- cometkey_other: "another mod" that uses the engine's own HTTP API (secure.http_mods)
-- while cometkey works: DELETE, PUT and GET requests of another user's token, fired
-- from a globalstep while cometkey_other.active is true. It records what it asked
-- for; the spec compares that with the mock's request log (engine bug #14394 shows
-- there as a request whose method is not the one asked for).
local http = minetest.request_http_api()
if not http then error("cometkey_other: add cometkey_other to secure.http_mods", 0) end
local S = minetest.settings
local base, token = S:get("cometkey_other.base_url"), S:get("cometkey_other.token")
local key_id = tonumber(S:get("cometkey_other.key_id"))
local user_id = S:get("cometkey_other.user_id")

cometkey_other = { asks = {}, answers = 0, active = false }

local n = 0
local function fire(method, path, body)
  local asks = cometkey_other.asks
  asks[#asks + 1] = method .. " " .. path
  http.fetch({
    url = base .. path, method = method, data = body, timeout = 5,
    extra_headers = { "Authorization: " .. token, "Content-Type: application/json", "New-Api-User: " .. user_id },
  }, function() cometkey_other.answers = cometkey_other.answers + 1 end)
end

minetest.register_globalstep(function()
  if not cometkey_other.active then return end
  n = n + 1
  local k = n % 6
  if k == 0 then
    fire("DELETE", "/api/token/999999")
  elseif k == 2 then
    fire("PUT", "/api/token/", minetest.write_json({
      id = key_id, name = "other-" .. n, expired_time = -1, remain_quota = 1000, unlimited_quota = false,
      model_limits_enabled = false, model_limits = "", allow_ips = "", group = "", cross_group_retry = false,
    }))
  elseif k == 4 then
    fire("GET", "/api/token/" .. key_id)
  end
end)
