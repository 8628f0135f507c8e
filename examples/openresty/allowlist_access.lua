--- allowlist_access: an access_by_lua* hook that lets a request through only
-- when the client address is in an allowlist written like a CometAPI key's
-- allow_ips (IPv4/IPv6 addresses and CIDRs, one per line or comma-separated).
-- The list is compiled once per worker in init_worker_by_lua*; each request
-- is one lookup of the binary address nginx already holds, with no parsing.
--
--   init_worker_by_lua_block { require("allowlist_access").init("127.0.0.1\n10.0.0.0/8") }
--   location /internal/ { access_by_lua_block { require("allowlist_access").check() } ... }
local cometkey = require "cometkey"

local M = {}

local matcher -- this worker's compiled list

--- init(list): list as cometkey.allowlist.compile takes it; raises on an invalid entry.
function M.init(list)
  matcher = cometkey.allowlist.compile(list)
end

--- check(): 403 unless the peer address is in the list (call from access_by_lua*).
function M.check()
  if not matcher then
    ngx.log(ngx.ERR, "allowlist_access: call init() from init_worker_by_lua* first")
    return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
  end
  if not matcher:contains(ngx.var.binary_remote_addr, "binary") then
    return ngx.exit(ngx.HTTP_FORBIDDEN)
  end
end

return M
