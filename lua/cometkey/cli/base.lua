--- cometkey.cli.base: exit codes and the failure value the command-line tool
-- carries to cometkey.cli.main. Pure Lua, no I/O.
local error, setmetatable, tostring, type, ipairs, pcall = error, setmetatable, tostring, type, ipairs, pcall
local format = string.format

local M = {}

M.EXIT_OK, M.EXIT_FAILURE, M.EXIT_USAGE, M.EXIT_DENIED = 0, 1, 2, 3

-- A failure carried to main: { code = exit status, message = text after "cometkey: " }.
M.Failure = {}

function M.fail(code, message) error(setmetatable({ code = code, message = message }, M.Failure), 0) end

function M.usage_error(f, ...) M.fail(M.EXIT_USAGE, format(f, ...)) end

--- need(value, message) --> value, or exit 2 with message (a parser's nil, message)
function M.need(value, message)
  if value == nil then M.fail(M.EXIT_USAGE, message) end
  return value
end

--- clean(message) --> a library message without "file.lua:12: " and "cometkey: " prefixes.
-- An error cometkey raised (bad input) is read as data through cometkey.errors: its rule.
function M.clean(message)
  local ok, errors = pcall(require, "cometkey.errors")
  local raised = ok and type(errors) == "table" and errors.raised and errors.raised(message)
  if raised and type(raised.rule) == "string" then return raised.rule end
  message = tostring(message)
  local prev
  repeat
    prev = message
    message = message:gsub("^[^:\n]*:%d+: ", ""):gsub("^cometkey[.:] ?", "")
  until message == prev
  return message
end

--- world_message(message, info) --> text led by its kind (conflict:, network:, ...) with the request id
function M.world_message(message, info)
  local text = M.clean(message)
  local kind = type(info) == "table" and info.kind
  if kind and text:sub(1, #kind + 1) ~= kind .. ":" then text = kind .. ": " .. text end
  local rid = type(info) == "table" and info.request_id
  if rid and not text:find(tostring(rid), 1, true) then text = text .. " (request id " .. tostring(rid) .. ")" end
  return text
end

function M.world_failure(message, info) M.fail(M.EXIT_FAILURE, M.world_message(message, info)) end

--- distance(a, b) --> Levenshtein distance (for "did you mean")
function M.distance(a, b)
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    cur[0] = i
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

--- suggest(word, candidates) --> the closest candidate within distance 2 (or a prefix match) | nil
function M.suggest(word, candidates)
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = M.distance(word, c)
    if #word >= 3 and c:sub(1, #word) == word then d = math.min(d, 1) end
    if d <= 2 and d < #c and (best_d == nil or d < best_d) then best, best_d = c, d end
  end
  return best
end

return M
