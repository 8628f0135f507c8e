-- spec/support/nvim/plugin.lua: drives the example plugin (examples/nvim/) in
-- `nvim --headless` for spec/nvim_spec.lua: puts it on the runtimepath, runs
-- :CometkeyList, :CometkeyDisable, :CometkeyEnable and a bad id, captures the
-- scratch buffer and vim.notify, and writes them as JSON. Same input file as
-- run.lua ($CK_NVIM_INPUT); the token reaches the plugin through the
-- environment (set here, never on a command line). Watchdog: 10 s.
-- luacheck: globals vim
local vim = vim
local uv = vim.loop

local input, sys = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "input.lua")
uv.os_setenv("COMETAPI_ACCESS_TOKEN", input.token)
uv.os_setenv("COMETAPI_BASE_URL", input.url)
uv.os_setenv("COMETAPI_USER_ID", tostring(input.user_id))

local result = { notes = {}, commands = {} }
local done = false

local function finish(err)
  if done then return end
  done = true
  result.ok = err == nil
  result.error = err
  sys.write_file(input.plugin_result, vim.json.encode(result))
  vim.cmd("qa!")
end

local watchdog = uv.new_timer()
watchdog:start(10000, 0, vim.schedule_wrap(function() finish("watchdog: the plugin did not finish within 10 s") end))

vim.notify = function(message, level)
  result.notes[#result.notes + 1] = { message = message, level = level or vim.log.levels.INFO }
end

-- Polls cond every 20 ms on the main loop, then runs next_step.
local function wait_for(label, cond, next_step)
  local timer = uv.new_timer()
  timer:start(20, 20, vim.schedule_wrap(function()
    local ok, met = pcall(cond)
    if not ok then
      timer:stop(); timer:close()
      return finish(label .. ": " .. tostring(met))
    end
    if met then
      timer:stop(); timer:close()
      local ran, err = xpcall(next_step, debug.traceback)
      if not ran then finish(label .. ": " .. tostring(err)) end
    end
  end))
end

local function notes_after(n) return #result.notes > n end

local function buffer_lines()
  local buf = vim.fn.bufnr("cometkey://keys")
  if buf == -1 then return nil end
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  if #lines < 3 then return nil end
  return lines
end

local ok, err = xpcall(function()
  vim.opt.runtimepath:append(input.repo .. "/examples/nvim")
  vim.cmd("runtime! plugin/cometkey.lua")
  result.commands_defined = vim.fn.exists(":CometkeyList") == 2 and vim.fn.exists(":CometkeyEnable") == 2
    and vim.fn.exists(":CometkeyDisable") == 2

  local t0 = uv.hrtime()
  vim.cmd("CometkeyList")
  result.list_returned_ms = (uv.hrtime() - t0) / 1e6 -- the command returns before the answer
  wait_for("list", buffer_lines, function()
    result.list_lines = buffer_lines()
    local n = #result.notes
    vim.cmd("CometkeyDisable " .. input.ids.update)
    wait_for("disable", function() return notes_after(n) end, function()
      n = #result.notes
      vim.cmd("CometkeyEnable " .. input.ids.update)
      wait_for("enable", function() return notes_after(n) end, function()
        n = #result.notes
        vim.cmd("CometkeyEnable not-a-number")
        wait_for("bad id", function() return notes_after(n) end, function()
          n = #result.notes
          vim.cmd("CometkeyDisable " .. input.ids.missing)
          wait_for("missing id", function() return notes_after(n) end, function() finish(nil) end)
        end)
      end)
    end)
  end)
end, debug.traceback)
if not ok then finish(err) end
