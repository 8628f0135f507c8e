-- bench/wrk_put.lua: wrk script sending the same request as the other clients.
--   wrk -c1 -t1 -d3s -s bench/wrk_put.lua URL -- METHOD BODY [HEADER ...]
-- wrk formats the request once, after init(), and replays it on every connection.
-- luacheck: globals wrk init

function init(args)
  wrk.method = args[1]
  wrk.body = args[2]
  for i = 3, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
end
