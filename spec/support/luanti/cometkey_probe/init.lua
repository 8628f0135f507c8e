-- cometkey_probe: an ordinary mod (not trusted, no http) that gets hold of cometkey's
-- module and client and tries to escape through them with what any mod has: pairs,
-- getmetatable, getfenv (no debug.getupvalue: secure mods do not get it). It returns
-- every value it reached (the trusted test mod compares them with the insecure
-- environment) and the escapes that worked (there must be none).
local DANGEROUS = { "popen", "execute", "loadlib", "getupvalue", "setupvalue", "getregistry", "getlocal", "setlocal",
  "upvaluejoin" }
local CODE = { "require", "loadstring", "load", "dofile", "loadfile", "getfenv", "setfenv", "package", "io" }
local MODULES = { "io", "os", "debug", "package", "ffi", "jit", "socket", "cometkey.luanti", "cometkey.cli.format",
  "_G", "string" }

cometkey_probe = {}

-- What this mod has without cometkey: the standard globals and their library tables. Whatever is
-- reachable from those is not cometkey's doing, so the walk does not follow them.
local STD = { "assert", "collectgarbage", "error", "getfenv", "getmetatable", "ipairs", "next", "pairs", "pcall",
  "print", "rawequal", "rawget", "rawset", "select", "setfenv", "setmetatable", "tonumber", "tostring", "type",
  "unpack", "_VERSION", "xpcall", "coroutine", "string", "table", "math", "bit", "io", "os", "debug", "package", "jit",
  "dofile", "load", "loadfile", "loadstring", "require" }

local function own_values()
  local public = {}
  for _, name in ipairs(STD) do
    local v = rawget(_G, name)
    if v ~= nil then public[v] = true end
    if type(v) == "table" then
      for _, x in pairs(v) do public[x] = true end
    end
  end
  return public
end

cometkey_probe.own_values = own_values

function cometkey_probe.run(roots)
  local own = _G
  local public = own_values()
  local seen, queue, values, escapes, from = {}, {}, {}, {}, {}
  local envs = 0
  local function push(v, parent, how)
    local t = type(v)
    if (t == "table" or t == "function" or t == "userdata") and not seen[v] and v ~= own and v ~= minetest
      and not public[v] then
      seen[v] = true
      from[v] = { parent, how }
      queue[#queue + 1] = v
    end
  end
  local function path(v)
    local parts = {}
    while v ~= nil and from[v] and #parts < 12 do
      table.insert(parts, 1, from[v][2])
      v = from[v][1]
    end
    return table.concat(parts, " ")
  end
  for i, r in ipairs(roots) do push(r, nil, "root" .. i) end
  local i = 1
  while i <= #queue do
    local v = queue[i]
    i = i + 1
    values[#values + 1] = v
    local t = type(v)
    if t == "table" then
      for k, x in pairs(v) do
        push(k, v, "key")
        push(x, v, "." .. tostring(k))
        if type(k) == "string" then
          for _, bad in ipairs(DANGEROUS) do
            if k == bad and type(x) == "function" then escapes[#escapes + 1] = path(v) .. " holds " .. k end
          end
        end
      end
      push(getmetatable(v), v, "<metatable>")
    elseif t == "userdata" then
      push(getmetatable(v), v, "<metatable>")
    else -- function: its environment, and what that environment offers
      local env = getfenv(v)
      if env ~= own then
        envs = envs + 1
        for _, name in ipairs(CODE) do
          local x = rawget(env, name)
          if x ~= nil and name ~= "require" then escapes[#escapes + 1] = path(v) .. " <env> holds " .. name end
        end
        local req = rawget(env, "require")
        if type(req) == "function" then
          for _, m in ipairs(MODULES) do
            local ok, got = pcall(req, m)
            if ok then
              escapes[#escapes + 1] = path(v) .. " <env>.require(\"" .. m .. "\") worked: " .. tostring(got)
            end
          end
        end
      end
      push(env, v, "<env>")
    end
  end
  local paths = {}
  for k, v in ipairs(values) do paths[k] = path(v) end
  -- The engine's own hole (Luanti before #16985, with LuaJIT): a library function written
  -- in Lua has the insecure environment, and any mod can getfenv() it.
  local hole = rawget(getfenv(table.remove), "require") ~= rawget(own, "require")
  return { values = values, paths = paths, escapes = escapes, visited = #values, envs = envs, engine_hole = hole }
end
