#!/usr/bin/env lua5.4
--- tools/check-annotations.lua [ROOT] - fails (exit 1) when a public function or
-- field of cometkey's API has no lua-language-server annotation. Debian has no
-- lua-language-server, so `make lint` runs this instead. Public means: functions and
-- fields of the module table in lua/cometkey.lua (M.x, allowlist.x) and the methods
-- of lua/cometkey/client.lua (Client:x, not starting with "_"). An annotation is a
-- ---@ comment right above the definition, or an entry in lua/cometkey/types.lua
-- (---@meta): `function cometkey.x(...)`, `function allowlist.x`, `function Client:x`
-- with a ---@param line for every parameter, or a ---@field of ---@class cometkey.
local root = arg[1] or "."

local function read(path)
  local f = io.open(root .. "/" .. path, "rb")
  if not f then
    io.stderr:write("check-annotations: cannot read ", root, "/", path, "\n")
    os.exit(2)
  end
  local text = f:read("*a")
  f:close()
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

local annotated, problems = {}, {}

-- lua/cometkey/types.lua: stubs with their comment blocks, and the module's fields.
do
  local lines = read("lua/cometkey/types.lua")
  local block, class = {}, nil
  for i, line in ipairs(lines) do
    if line:match("^%-%-%-") then
      block[#block + 1] = line
      local c = line:match("^%-%-%-@class%s+([%w_.]+)")
      if c then class = c end
      local field = line:match("^%-%-%-@field%s+([%w_]+)")
      if field and class == "cometkey" then annotated["cometkey." .. field] = true end
    else
      local owner, sep, name, params = line:match("^function%s+([%w_]+)([.:])([%w_]+)%((.-)%)")
      if owner then
        local key = (owner == "cometkey" and "cometkey." or owner == "Client" and "Client:" or (owner .. sep)) .. name
        if #block == 0 then
          problems[#problems + 1] = ("types.lua:%d: %s has no comment block"):format(i, key)
        else
          local text = table.concat(block, "\n")
          for p in params:gmatch("[%w_]+") do
            if not text:find("---@param " .. p .. "[?%s]") then
              problems[#problems + 1] = ("types.lua:%d: %s: no ---@param %s"):format(i, key, p)
            end
          end
          annotated[key] = true
        end
      end
      if not line:match("^%s*$") then block = {} end
    end
  end
end

-- The public definitions, and whether the source annotates them itself.
local function scan(path, patterns)
  local lines = read(path)
  for i, line in ipairs(lines) do
    for _, p in ipairs(patterns) do
      local name = line:match(p[1])
      if name and not name:match("^_") then
        local key = p[2] .. name
        local above = lines[i - 1] or ""
        if not annotated[key] and not above:match("^%-%-%-@") then
          problems[#problems + 1] = ("%s:%d: %s has no annotation (add it to lua/cometkey/types.lua)")
            :format(path, i, key)
        end
      end
    end
  end
end

scan("lua/cometkey.lua", {
  { "^function M%.([%w_]+)", "cometkey." },
  { "^M%.([%w_]+)%s*=", "cometkey." },
  { "^function allowlist%.([%w_]+)", "allowlist." },
})
scan("lua/cometkey/client.lua", {
  { "^function Client:([%w_]+)", "Client:" },
})

if #problems > 0 then
  for _, p in ipairs(problems) do io.stderr:write("check-annotations: ", p, "\n") end
  os.exit(1)
end
print("check-annotations: every public function and field of cometkey is annotated")
