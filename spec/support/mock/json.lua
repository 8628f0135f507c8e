-- Small JSON encoder for the mock server and its launcher: exact integers (lua-cjson 2.1
-- writes 14 significant digits), stable key order, Go-style HTML escaping, a null sentinel.
-- Runs in nginx's LuaJIT and in plain Lua 5.1/5.4.

local json = {}

local has_cjson, cjson = pcall(require, "cjson")

-- JSON null: the NULL lightuserdata shared with cjson.null and ngx.null when cjson is present.
json.null = has_cjson and cjson.null or setmetatable({}, { __tostring = function() return "null" end })

local array_mt = { __jsonarray = true }

-- Marks a table as a JSON array (needed for empty arrays).
function json.array(t)
  return setmetatable(t or {}, array_mt)
end

-- Marks a table as a JSON object whose keys come out in `order` first (the rest sorted).
function json.ordered(t, order)
  return setmetatable(t, { __jsonorder = order })
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  ["<"] = "\\u003c", [">"] = "\\u003e", ["&"] = "\\u0026",
}

local function escape_char(c)
  return escapes[c] or string.format("\\u%04x", c:byte())
end

-- Strings are written byte for byte (invalid UTF-8 passes through unchanged); like Go's
-- encoder, <, > and & and U+2028/U+2029 are escaped.
local function encode_string(s)
  s = s:gsub('[%c"\\<>&]', escape_char)
  s = s:gsub("\226\128\168", "\\u2028"):gsub("\226\128\169", "\\u2029")
  return '"' .. s .. '"'
end

local math_type = math.type

local function encode_number(n)
  if math_type and math_type(n) == "integer" then
    return string.format("%d", n)
  end
  if n ~= n or n == math.huge or n == -math.huge then
    error("json: cannot encode " .. tostring(n), 0)
  end
  if n == math.floor(n) and n > -2 ^ 63 and n < 2 ^ 63 then
    return string.format("%.0f", n)
  end
  return string.format("%.17g", n)
end

local function is_array(t)
  local mt = getmetatable(t)
  if mt and mt.__jsonarray then
    return true
  end
  local n = #t
  if n == 0 then
    return false
  end
  local count = 0
  for _ in pairs(t) do
    count = count + 1
  end
  return count == n
end

local function sorted_keys(t, order)
  local keys, seen = {}, {}
  if order then
    for _, k in ipairs(order) do
      if t[k] ~= nil then
        keys[#keys + 1] = k
        seen[k] = true
      end
    end
  end
  local rest = {}
  for k in pairs(t) do
    if not seen[k] then
      rest[#rest + 1] = k
    end
  end
  table.sort(rest, function(a, b)
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(rest) do
    keys[#keys + 1] = k
  end
  return keys
end

local encode_value

local function encode_table(t, out, depth)
  if depth > 200 then
    error("json: nesting too deep", 0)
  end
  if is_array(t) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then
        out[#out + 1] = ","
      end
      encode_value(t[i], out, depth + 1)
    end
    out[#out + 1] = "]"
    return
  end
  local mt = getmetatable(t)
  local keys = sorted_keys(t, mt and mt.__jsonorder)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then
      out[#out + 1] = ","
    end
    out[#out + 1] = encode_string(tostring(k))
    out[#out + 1] = ":"
    encode_value(t[k], out, depth + 1)
  end
  out[#out + 1] = "}"
end

encode_value = function(v, out, depth)
  local tv = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "table" then
    encode_table(v, out, depth)
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

-- Encodes a Lua value; raises on functions, NaN/inf and cycles deeper than 200 levels.
function json.encode(v)
  local out = {}
  encode_value(v, out, 0)
  return table.concat(out)
end

-- Replaces every invalid UTF-8 sequence with U+FFFD, as Go's JSON decoder does.
function json.fix_utf8(s)
  if not s:find("[\128-\255]") then
    return s
  end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, min = 0, 0
    if c < 0x80 then
      len = 1
    elseif c >= 0xC2 and c <= 0xDF then
      len, min = 2, 0x80
    elseif c >= 0xE0 and c <= 0xEF then
      len, min = 3, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then
      len, min = 4, 0x10000
    end
    local ok = len > 0 and i + len - 1 <= n
    if ok and len > 1 then
      local cp = c % (2 ^ (7 - len))
      for j = i + 1, i + len - 1 do
        local b = s:byte(j)
        if b < 0x80 or b > 0xBF then
          ok = false
          break
        end
        cp = cp * 64 + (b - 0x80)
      end
      if ok and (cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF)) then
        ok = false
      end
    end
    if ok then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = "\239\191\189"
      i = i + 1
    end
  end
  return table.concat(out)
end

return json
