--- cometkey.cli.lib: the few library calls the command-line tool makes that
-- span several requests. Each is one call into the public client API when the
-- library has it (client:search returning { items, total, ... }, client:delete_many,
-- client:reveal); the fallbacks below serve a library without them.
local ipairs, type = ipairs, type

local M = {}

--- all_keys(client) --> every key, newest first | nil, message, info
-- Pages through client:list, so a failure keeps its kind and request id.
function M.all_keys(client)
  local keys, seen = {}, {}
  for page = 1, 100000 do
    local result, message, info = client:list { page = page, page_size = 100 }
    if not result then return nil, message, info end
    for _, key in ipairs(result.items) do
      if not seen[key.id] then
        seen[key.id] = true
        keys[#keys + 1] = key
      end
    end
    if #result.items < 100 or page * 100 >= (result.total or 0) then break end
  end
  return keys
end

--- search_all(client, keyword) --> every matching key | nil, message, info
function M.search_all(client, keyword)
  local keys, seen = {}, {}
  for page = 1, 1000 do
    local result, message, info = client:search { keyword = keyword, page = page, page_size = 100 }
    if not result then return nil, message, info end
    local items = result.items or result -- 0.2 returns { items, total, page, page_size }
    local added = 0
    for _, key in ipairs(items) do
      if not seen[key.id] then
        seen[key.id], added = true, added + 1
        keys[#keys + 1] = key
      end
    end
    -- Old servers ignore paging and answer everything at once: stop when a page adds nothing.
    if #items < 100 or added == 0 or (result.total and #keys >= result.total) then break end
  end
  return keys
end

--- delete_ids(client, ids) --> array of { id, ok, message, info } per id
-- One batch call (client:delete_many) when the library has it.
function M.delete_ids(client, ids)
  local results = {}
  if type(client.delete_many) == "function" then
    local n, message, info = client:delete_many(ids)
    for i, id in ipairs(ids) do
      results[i] = { id = id, ok = n ~= nil, message = message, info = info }
    end
    return results, n
  end
  for i, id in ipairs(ids) do
    local ok, message, info = client:delete(id)
    results[i] = { id = id, ok = ok and true or false, message = message, info = info }
  end
  return results
end

--- is_masked(secret) --> true when the server sent the key masked (it holds '*')
function M.is_masked(secret) return type(secret) == "string" and secret:find("*", 1, true) ~= nil end

--- reveal(client, key) --> the full secret of key | nil, message, info
function M.reveal(client, key)
  if not M.is_masked(key.key) then return key.key end
  if type(client.reveal) ~= "function" then
    return nil, "the server masks keys and this cometkey library has no client:reveal", { kind = "unsupported" }
  end
  return client:reveal(key.id)
end

return M
