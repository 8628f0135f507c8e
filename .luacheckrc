-- luacheck configuration for cometkey
std = "max"
max_line_length = 120
files["spec/"] = { std = "+busted" }
files["examples/openresty/"] = { read_globals = { "ngx" } }
files["examples/nvim/"] = { read_globals = { "vim" } }
files["examples/luanti/"] = { read_globals = { "minetest" } }
files["spec/support/luanti/"] = { globals = { "minetest", "cometkey_test", "cometkey_other", "cometkey_probe" } }
files["spec/support/nvim/"] = { globals = { "vim" } }
files["spec/support/mock/server.lua"] = { read_globals = { "ngx" } }
files["spec/support/nginx_app/"] = { read_globals = { "ngx" } }
files["lua/cometkey/transport/resty.lua"] = { read_globals = { "ngx" } }
files["lua/cometkey/transport/nvim.lua"] = { read_globals = { "vim" } }
exclude_files = { "build/", "bench/out/" }
