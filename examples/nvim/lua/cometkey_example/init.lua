--- cometkey_example: a small Neovim plugin over cometkey that lists, enables
-- and disables CometAPI keys without freezing the editor. Every request runs
-- asynchronously (curl children on Neovim's loop, through cometkey's nvim
-- transport); results land in a scratch buffer or in vim.notify.
--
-- Install (Neovim 0.7+, curl on $PATH):
--   1. Build cometkey's C core for Neovim's LuaJIT, in the cometkey checkout:
--        make build-luajit          -> build/luajit/cometkey/core.so
--   2. Make cometkey and this plugin visible to Neovim, e.g. in init.lua:
--        local ck = vim.fn.expand("~/src/cometkey")          -- your checkout
--        package.cpath = ck .. "/build/luajit/?.so;" .. package.cpath
--        package.path = ck .. "/lua/?.lua;" .. ck .. "/lua/?/init.lua;" .. package.path
--        vim.opt.runtimepath:append(ck .. "/examples/nvim")  -- loads plugin/cometkey.lua
--      (or copy examples/nvim/ into a plugin manager's directory).
--   3. Export the token before starting Neovim (it is never written anywhere):
--        export COMETAPI_ACCESS_TOKEN=...      # required: the access token
--        export COMETAPI_BASE_URL=...          # optional, default https://api.cometapi.com
--        export COMETAPI_USER_ID=...           # optional, sent as New-Api-User
--
-- Commands (plugin/cometkey.lua): :CometkeyList, :CometkeyEnable {id}, :CometkeyDisable {id}.
local M = {}

local STATUS_NAMES = { "enabled", "disabled", "expired", "exhausted" }
local MAX_PAGES = 20 -- :CometkeyList shows at most 20 pages of 100 keys

local client   -- created on first use
local known_ids = {} -- ids of the last listing, for command-line completion

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "cometkey" })
end

-- The shared client, or nil after telling the user what is missing.
local function get_client()
  if client then return client end
  local token = os.getenv("COMETAPI_ACCESS_TOKEN")
  if not token or token == "" then
    notify("cometkey: set $COMETAPI_ACCESS_TOKEN (your CometAPI access token) before starting Neovim",
      vim.log.levels.ERROR)
    return nil
  end
  local ok, cometkey = pcall(require, "cometkey")
  if not ok then
    notify("cometkey: cannot load the cometkey module; see the install notes in "
      .. "lua/cometkey_example/init.lua\n" .. tostring(cometkey), vim.log.levels.ERROR)
    return nil
  end
  local base_url = os.getenv("COMETAPI_BASE_URL")
  local user_id = os.getenv("COMETAPI_USER_ID")
  local made
  ok, made = pcall(cometkey.new, {
    token = token,
    base_url = base_url ~= "" and base_url or nil,
    user_id = user_id ~= "" and user_id or nil,
  })
  if not ok then -- a bad option (the message never contains the token)
    notify(tostring(made), vim.log.levels.ERROR)
    return nil
  end
  client = made
  return client
end

local function expiry(t)
  if t == nil or t == -1 then return "never" end
  return os.date("!%Y-%m-%d %H:%M", t)
end

local function quota(key)
  if key.unlimited_quota then return "unlimited" end
  return string.format("%.0f", key.remain_quota or 0)
end

local function format_keys(keys, total)
  local lines = {
    string.format("%d key(s)%s   -- :CometkeyEnable {id} / :CometkeyDisable {id}", #keys,
      total and total > #keys and (" of " .. total) or ""),
    string.format("%-8s %-10s %-14s %-17s %s", "id", "status", "quota", "expires (UTC)", "name"),
  }
  for _, key in ipairs(keys) do
    lines[#lines + 1] = string.format("%-8s %-10s %-14s %-17s %s", tostring(key.id),
      STATUS_NAMES[key.status] or tostring(key.status), quota(key), expiry(key.expired_time), key.name or "")
  end
  return lines
end

-- Shows lines in the scratch buffer "cometkey://keys", reusing its window if visible.
local function show(lines)
  local name = "cometkey://keys"
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
    vim.api.nvim_buf_set_option(buf, "bufhidden", "hide")
    vim.api.nvim_buf_set_option(buf, "filetype", "cometkey")
  end
  vim.api.nvim_buf_set_option(buf, "modifiable", true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.api.nvim_buf_set_option(buf, "modifiable", false)
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd("botright split")
    vim.api.nvim_win_set_buf(0, buf)
  end
end

--- list(): fetches every key page by page (asynchronously) and shows them.
function M.list()
  local c = get_client()
  if not c then return end
  local keys = {}
  local function fetch(page)
    c:list({ page = page, page_size = 100 }, function(err, result)
      if err then return notify(err, vim.log.levels.ERROR) end
      for _, key in ipairs(result.items) do keys[#keys + 1] = key end
      if #result.items == 100 and #keys < result.total and page < MAX_PAGES then
        return fetch(page + 1)
      end
      known_ids = {}
      for i, key in ipairs(keys) do known_ids[i] = tostring(key.id) end
      show(format_keys(keys, result.total))
    end)
  end
  notify("cometkey: listing keys...")
  fetch(1)
end

local function parse_id(text)
  local id = tonumber(text)
  if not id or id < 1 or id ~= math.floor(id) then
    notify("cometkey: expected a key id (a positive integer), got '" .. tostring(text) .. "'",
      vim.log.levels.ERROR)
    return nil
  end
  return id
end

-- Sets a key's status (1 enabled, 2 disabled) and reports the outcome.
local function set_status(text, status)
  local id = parse_id(text)
  local c = id and get_client()
  if not c then return end
  local verb = STATUS_NAMES[status]
  c:update({ id = id, status = status }, function(err, key, info)
    if err then
      local hint = info and info.kind == "not_found" and " (no such key)" or ""
      return notify(err .. hint, vim.log.levels.ERROR)
    end
    notify(string.format("cometkey: key %d (%s) is now %s", key.id, key.name or "",
      STATUS_NAMES[key.status] or tostring(key.status)))
    if key.status ~= status then -- e.g. the server kept an expired key expired
      notify(string.format("cometkey: key %d was not %s by the server", key.id, verb), vim.log.levels.WARN)
    end
  end)
end

--- enable(id) / disable(id): id as typed on the command line.
function M.enable(text) set_status(text, 1) end
function M.disable(text) set_status(text, 2) end

--- complete_id(lead): ids from the last :CometkeyList, for -complete.
function M.complete_id(lead)
  local out = {}
  for _, id in ipairs(known_ids) do
    if id:sub(1, #lead) == lead then out[#out + 1] = id end
  end
  return out
end

return M
