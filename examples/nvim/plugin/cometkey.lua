-- plugin/cometkey.lua: user commands of the cometkey example plugin. Loading is
-- cheap: cometkey itself is required only when a command runs. Setup and
-- environment variables: see lua/cometkey_example/init.lua.
if vim.g.loaded_cometkey_example then return end
vim.api.nvim_set_var("loaded_cometkey_example", true)

local function example() return require("cometkey_example") end

vim.api.nvim_create_user_command("CometkeyList", function() example().list() end,
  { nargs = 0, desc = "List CometAPI keys in a scratch buffer (asynchronous)" })

vim.api.nvim_create_user_command("CometkeyEnable", function(cmd) example().enable(cmd.args) end, {
  nargs = 1,
  desc = "Enable a CometAPI key by id (asynchronous)",
  complete = function(lead) return example().complete_id(lead) end,
})

vim.api.nvim_create_user_command("CometkeyDisable", function(cmd) example().disable(cmd.args) end, {
  nargs = 1,
  desc = "Disable a CometAPI key by id (asynchronous)",
  complete = function(lead) return example().complete_id(lead) end,
})
