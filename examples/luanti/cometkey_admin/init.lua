-- cometkey_admin: manage CometAPI keys from chat with cometkey. Needs
--   secure.trusted_mods = cometkey_admin
-- and the settings in settingtypes.txt (token file, base URL). See docs/luanti.md.
--
--   /ckey list                  the newest keys (id, name, status)
--   /ckey disable ID            /ckey enable ID
--   /ckey rename ID NAME
--
-- Everything is asynchronous: the command answers when the server has answered,
-- and the game never waits for the network.
local S = minetest.settings
local PRIV = "cometkey_admin"

-- ------------------------------------------------------------ loading cometkey
-- Only init.lua of a trusted mod gets the insecure environment. It is used to load
-- cometkey (and read the token file) and then dropped: cometkey itself never sees it.
local ie = minetest.request_insecure_environment()
if not ie then
  error("cometkey_admin: add cometkey_admin to secure.trusted_mods in minetest.conf", 0)
end

local lua_path, lua_cpath = S:get("cometkey_admin.lua_path"), S:get("cometkey_admin.lua_cpath")
local loader
if lua_path and lua_path ~= "" then
  loader = ie.dofile(assert(ie.package.searchpath("cometkey.luanti", lua_path)))
else
  loader = ie.require("cometkey.luanti")
end
local cometkey = loader.load(ie, {
  path = lua_path ~= "" and lua_path or nil,
  cpath = lua_cpath ~= "" and lua_cpath or nil,
})

local function read_token(path)
  if not path or path == "" then return nil, "cometkey_admin.token_file is not set" end
  local f, err = ie.io.open(path, "r")
  if not f then return nil, "cannot read cometkey_admin.token_file: " .. tostring(err) end
  local token = (f:read("*l") or ""):match("^%s*(.-)%s*$")
  f:close()
  if token == "" then return nil, "cometkey_admin.token_file is empty" end
  return token
end
local token, why = read_token(S:get("cometkey_admin.token_file"))
ie = nil -- luacheck: ignore (nothing keeps the insecure environment)

local client
if token then
  client = cometkey.new {
    token = token,
    base_url = S:get("cometkey_admin.base_url") or "https://api.cometapi.com",
    user_id = S:get("cometkey_admin.user_id") ~= "" and S:get("cometkey_admin.user_id") or nil,
    timeout = 15,
  } -- transport "luanti" is picked by itself; closed when the server shuts down
  token = nil -- luacheck: ignore 311 (drop the reference)
else
  minetest.log("error", "[cometkey_admin] " .. why .. "; /ckey will only say so")
end

-- ------------------------------------------------------------ the command
minetest.register_privilege(PRIV, {
  description = "Can manage CometAPI keys with /ckey",
  give_to_singleplayer = false,
})

local STATUS = { [1] = "enabled", [2] = "disabled", [3] = "expired", [4] = "exhausted" }

local function tell(name, text)
  minetest.chat_send_player(name, "[ckey] " .. text)
end

-- A key id as typed: a positive whole number, nothing else.
local function parse_id(text)
  if not text or not text:match("^%d+$") then return nil end
  local id = tonumber(text)
  if id < 1 or id > 9007199254740991 then return nil end
  return id
end

local function show(key)
  return string.format("#%d %q %s", key.id, key.name or "", STATUS[key.status] or tostring(key.status))
end

local USAGE = "usage: /ckey list | disable ID | enable ID | rename ID NAME"

local function run(name, param)
  if not client then return false, "[ckey] not configured: " .. why end
  local verb, rest = param:match("^%s*(%S*)%s*(.-)%s*$")
  if verb == "list" and rest == "" then
    client:list({ page = 1, page_size = 20 }, function(err, page)
      if err then return tell(name, err) end
      tell(name, page.total .. " key(s); newest " .. #page.items .. ":")
      for _, key in ipairs(page.items) do tell(name, show(key)) end
    end)
    return true
  end
  if verb == "disable" or verb == "enable" then
    local id = parse_id(rest)
    if not id then return false, "[ckey] " .. verb .. ": ID must be a key id (a positive whole number); " .. USAGE end
    client:update({ id = id, status = verb == "enable" and "enabled" or "disabled" }, function(err, key)
      if err then return tell(name, err) end
      tell(name, verb .. "d " .. show(key))
    end)
    return true
  end
  if verb == "rename" then
    local id_text, new_name = rest:match("^(%S+)%s+(.-)$")
    local id = parse_id(id_text or rest)
    if not id then return false, "[ckey] rename: ID must be a key id (a positive whole number); " .. USAGE end
    if not new_name or new_name == "" then return false, "[ckey] rename: give the new NAME; " .. USAGE end
    local ok, problems = cometkey.validate { id = id, name = new_name }
    if not ok then return false, "[ckey] rename: " .. problems[1].message end
    client:update({ id = id, name = new_name }, function(err, key)
      if err then return tell(name, err) end
      tell(name, "renamed " .. show(key))
    end)
    return true
  end
  return false, "[ckey] " .. USAGE
end

minetest.register_chatcommand("ckey", {
  params = "list | disable <id> | enable <id> | rename <id> <name>",
  description = "Manage CometAPI keys",
  privs = { [PRIV] = true },
  func = run,
})
