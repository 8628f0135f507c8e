--- spec.support.certs: test-time TLS material, made with the openssl CLI in a
-- fresh temporary directory: a CA, a server certificate for 127.0.0.1 and
-- localhost signed by it, a self-signed server certificate, and a CA-signed
-- certificate for another host name. Nothing is kept in the repository.
--
--   local certs = require("spec.support.certs").generate()
--   certs.ca                          -- CA certificate (PEM path), for ca_file
--   certs.server      = { cert, key } -- CN/SAN 127.0.0.1 + localhost, signed by the CA
--   certs.self_signed = { cert, key } -- SAN 127.0.0.1 + localhost, signed by itself
--   certs.wrong_host  = { cert, key } -- SAN wrong.example.invalid only, signed by the CA
--   certs:cleanup()                   -- removes the directory
local sys = require "spec.support.sys"

local M = {}

local sh_quote = sys.quote

local function run(cmd)
  -- openssl chatters on stderr; keep it for the failure message only.
  if not sys.execute(cmd .. " >/dev/null 2>>" .. sh_quote(M.log)) then
    error("spec.support.certs: command failed: " .. cmd .. "\n" .. (sys.read_file(M.log) or ""), 2)
  end
end

-- An EC P-256 key (fast to make) at path.
local function new_key(path)
  run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. sh_quote(path))
end

-- A leaf certificate for san, signed by the CA (or by its own key when ca is nil).
local function leaf(dir, name, cn, san, ca)
  local key, cert = dir .. "/" .. name .. ".key", dir .. "/" .. name .. ".crt"
  local csr, ext = dir .. "/" .. name .. ".csr", dir .. "/" .. name .. ".ext"
  new_key(key)
  sys.write_file(ext, table.concat({
    "basicConstraints = critical, CA:FALSE",
    "keyUsage = critical, digitalSignature, keyEncipherment",
    "extendedKeyUsage = serverAuth",
    "subjectAltName = " .. san,
  }, "\n") .. "\n")
  run("openssl req -new -key " .. sh_quote(key) .. " -subj " .. sh_quote("/CN=" .. cn)
    .. " -out " .. sh_quote(csr))
  if ca then
    run("openssl x509 -req -in " .. sh_quote(csr) .. " -CA " .. sh_quote(ca.cert)
      .. " -CAkey " .. sh_quote(ca.key) .. " -CAcreateserial -days 2 -sha256 -extfile "
      .. sh_quote(ext) .. " -out " .. sh_quote(cert))
  else
    run("openssl x509 -req -in " .. sh_quote(csr) .. " -signkey " .. sh_quote(key)
      .. " -days 2 -sha256 -extfile " .. sh_quote(ext) .. " -out " .. sh_quote(cert))
  end
  return { cert = cert, key = key }
end

local Certs = {}
Certs.__index = Certs

function Certs:cleanup()
  if self.dir then
    sys.remove_dir(self.dir)
    self.dir = nil
  end
end

--- generate() --> certs (see the header); raises when openssl fails
function M.generate()
  local dir = sys.temp_dir("cometkey-certs")
  M.log = dir .. "/openssl.log"
  local ca = { cert = dir .. "/ca.crt", key = dir .. "/ca.key" }
  new_key(ca.key)
  run("openssl req -x509 -new -key " .. sh_quote(ca.key) .. " -subj '/CN=cometkey test CA' -days 2"
    .. " -sha256 -addext 'basicConstraints=critical,CA:TRUE'"
    .. " -addext 'keyUsage=critical,keyCertSign,cRLSign' -out " .. sh_quote(ca.cert))
  return setmetatable({
    dir = dir,
    ca = ca.cert,
    server = leaf(dir, "server", "127.0.0.1", "IP:127.0.0.1, DNS:localhost", ca),
    self_signed = leaf(dir, "self-signed", "127.0.0.1", "IP:127.0.0.1, DNS:localhost", nil),
    wrong_host = leaf(dir, "wrong-host", "wrong.example.invalid", "DNS:wrong.example.invalid", ca),
  }, Certs)
end

return M
