--- bench/paths.lua: points package.path/cpath at this checkout's lua/ and its
-- build directory (CK_BUILD, default build/5.4, build/5.1 or build/luajit for
-- the running interpreter), so a bench script runs without installing cometkey.
--   local bench_dir = dofile("bench/paths.lua")   -- returns the absolute bench dir
local util = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "util.lua")

local bench_dir = util.dir_of(debug.getinfo(1, "S").source)
local root = bench_dir:gsub("/bench$", "")

local build = os.getenv("CK_BUILD")
if build == nil or build == "" then
  if rawget(_G, "jit") then
    build = "build/luajit"
  elseif _VERSION == "Lua 5.1" then
    build = "build/5.1"
  else
    build = "build/5.4"
  end
end
if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end

package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. bench_dir .. "/?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

return bench_dir
