-- spec/support/nvim/input.lua: the common start of the Neovim scripts (run.lua, plugin.lua).
-- Reads the JSON input file named by $CK_NVIM_INPUT (written by spec/nvim_spec.lua) and
-- puts the checkout's lua/ and its LuaJIT build (input.build, default repo/build/luajit)
-- on package.path and package.cpath.
--   local input, sys = dofile(".../nvim/input.lua")   -- sys: spec/support/sys.lua
-- luacheck: globals vim
local sys = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "../sys.lua")

local input = vim.json.decode(assert(sys.read_file(assert(os.getenv("CK_NVIM_INPUT"), "CK_NVIM_INPUT not set"))))
package.path = input.repo .. "/lua/?.lua;" .. input.repo .. "/lua/?/init.lua;" .. package.path
package.cpath = (input.build or (input.repo .. "/build/luajit")) .. "/?.so;" .. package.cpath

return input, sys
