---@meta
-- luacheck: ignore
--- cometkey.types: lua-language-server annotations of cometkey's public API
-- (the module `cometkey` and the client's methods). Never loaded at run time:
-- the language server reads it from the rock or the checkout. Kept complete by
-- tools/check-annotations.lua (run by `make lint`): a public function or field of
-- lua/cometkey.lua or lua/cometkey/client.lua without an annotation fails it.

---@alias cometkey.Kind "invalid"|"auth"|"forbidden"|"not_found"|"conflict"|"rate_limited"|"server"|"network"|"timeout"|"tls"|"decode"|"api"|"http"|"unsupported"|string

---What a world failure carries besides its message (the third return value).
---@class cometkey.Info
---@field kind cometkey.Kind what went wrong
---@field status? integer HTTP status, when the server answered
---@field request_id? string the server's request id, when it sent one
---@field retryable? boolean whether trying again may succeed
---@field attempts? integer requests made, retries included
---@field field? string the field a conflict is about
---@field expected? any an --expect / opts.expect value that did not match
---@field actual? any the stored value it was compared with

---One problem found by cometkey.validate.
---@class cometkey.Problem
---@field field string the field's name
---@field message string "field: rule" in words

---A key record as the server stores it.
---@class cometkey.Key
---@field id integer
---@field name string at most 50 bytes
---@field key string the secret (masked by 2026 servers; see Client:reveal)
---@field status integer 1 enabled, 2 disabled, 3 expired, 4 exhausted
---@field expired_time integer Unix seconds, -1 for never
---@field remain_quota integer
---@field unlimited_quota boolean
---@field used_quota? integer
---@field model_limits_enabled boolean
---@field model_limits string comma-separated model names
---@field allow_ips string newline-separated addresses and CIDRs ("" = no restriction)
---@field group string
---@field cross_group_retry boolean
---@field created_time? integer
---@field accessed_time? integer
---@field user_id? integer

---The editable fields of an update or create (id required by update).
---@class cometkey.Fields
---@field id? integer
---@field name? string
---@field status? integer|"enabled"|"disabled"|"expired"|"exhausted"
---@field expired_time? integer
---@field remain_quota? integer
---@field remain_quota_usd? number USD, converted with the server's quota_per_unit
---@field unlimited_quota? boolean
---@field model_limits_enabled? boolean
---@field model_limits? string|string[]
---@field allow_ips? string|string[]
---@field group? string
---@field cross_group_retry? boolean

---A page of keys.
---@class cometkey.Page
---@field items cometkey.Key[]
---@field total integer
---@field page integer
---@field page_size integer

---Options of cometkey.new.
---@class cometkey.Options
---@field token string the access token (never shown in messages)
---@field base_url? string default https://api.cometapi.com
---@field user_id? integer sent as New-Api-User
---@field timeout? number seconds per call, retries included
---@field connect_timeout? number
---@field retries? integer
---@field ca_file? string
---@field verify? boolean default true
---@field allow_http? boolean allow http:// to a non-loopback host
---@field transport? "auto"|"curl"|"resty"|"nvim"|"luanti"|function|table
---@field rate_limit? { requests: integer, seconds: number }
---@field user_agent? string
---@field warn? fun(message: string)
---@field debug? fun(line: string)

---Options of Client:update.
---@class cometkey.UpdateOptions
---@field replace? boolean one PUT of all nine editable fields
---@field dry_run? boolean return the plan, write nothing
---@field expect? table<string, any> refuse with kind "conflict" when a stored value differs

---A compiled allowlist.
---@class cometkey.Matcher
local Matcher = {}

---Whether ip is allowed.
---@param ip string
---@param form? "text"|"binary"
---@return boolean
function Matcher:contains(ip, form) end

---@class cometkey.allowlist
local allowlist = {}

---Normalized entries of an allowlist (raises on an invalid entry).
---@param value string|string[]
---@param opts? { as: "server" } read as the server does (invalid entries skipped)
---@return string[]
function allowlist.parse(value, opts) end

---The server's newline-joined form ("" for none).
---@param value string|string[]
---@return string
function allowlist.format(value) end

---A matcher for the entries.
---@param value string|string[]
---@return cometkey.Matcher
function allowlist.compile(value) end

---@class cometkey
---@field _VERSION string "cometkey X.Y.Z"
---@field null lightuserdata JSON null (a field sent as null)
---@field status { enabled: 1, disabled: 2, expired: 3, exhausted: 4 }
---@field allowlist cometkey.allowlist
local cometkey = {}

---Checks fields without sending anything; never raises for bad values.
---@param fields cometkey.Fields
---@param mode? "update"|"create"|"replace"|"expect"
---@return true|nil ok
---@return cometkey.Problem[]? problems
function cometkey.validate(fields, mode) end

---A client; raises on a bad option (the token never appears in the message).
---@param opts cometkey.Options
---@return cometkey.Client
function cometkey.new(opts) end

---@alias cometkey.Callback fun(result: any, message: string?, info: cometkey.Info?)

---A connection to the token API. Every call returns `value` or `nil, message, info`;
---with a callback (async hosts) it returns nothing and calls back with the same values.
---@class cometkey.Client
local Client = {}

---One key.
---@param id integer
---@param callback? cometkey.Callback
---@return cometkey.Key|nil key
---@return string? message
---@return cometkey.Info? info
function Client:get(id, callback) end

---One page of keys, newest first.
---@param args? { page?: integer, page_size?: integer }
---@param callback? cometkey.Callback
---@return cometkey.Page|nil page
---@return string? message
---@return cometkey.Info? info
function Client:list(args, callback) end

---Keys by name (keyword) or by secret (token), one page.
---@param args { keyword?: string, token?: string, page?: integer, page_size?: integer }|string
---@param callback? cometkey.Callback
---@return cometkey.Page|cometkey.Key[]|nil result
---@return string? message
---@return cometkey.Info? info
function Client:search(args, callback) end

---Every key (or those matching filter), across pages. Without a callback: an iterator
---that raises on failure; with one: callback(err, key) per key, then callback(nil, nil).
---@param filter? fun(key: cometkey.Key): boolean|table<string, any>|{ keyword?: string, token?: string }
---@param callback? fun(err: string?, key: cometkey.Key?)
---@return fun(): cometkey.Key?
function Client:each(filter, callback) end

---Deletes one key.
---@param id integer
---@param callback? cometkey.Callback
---@return true|nil ok
---@return string? message
---@return cometkey.Info? info
function Client:delete(id, callback) end

---Deletes keys in batches of 100 (never one DELETE each).
---@param ids integer[]
---@param callback? cometkey.Callback
---@return integer|nil deleted
---@return string? message
---@return cometkey.Info? info
function Client:delete_many(ids, callback) end

---Creates a key and returns its record.
---@param fields cometkey.Fields
---@param callback? cometkey.Callback
---@return cometkey.Key|nil key
---@return string? message
---@return cometkey.Info? info
function Client:create(fields, callback) end

---Changes the named fields only.
---@param fields cometkey.Fields
---@param opts? cometkey.UpdateOptions
---@param callback? cometkey.Callback
---@return cometkey.Key|table|nil key the record, or the plan with opts.dry_run
---@return string? message
---@return cometkey.Info? info
function Client:update(fields, opts, callback) end

---Updates many keys; results[i] = { ok, key | error, info } in list order.
---@param list cometkey.Fields[]
---@param opts? { concurrency?: integer, on_progress?: fun(done: integer, total: integer), on_result?: fun(i: integer, result: table), keep_results?: boolean, dry_run?: boolean, replace?: boolean }
---@param callback? fun(err: string?, results: table?)
---@return table results
function Client:update_many(list, opts, callback) end

---Updates every key matching filter (one pass over the pages, then one PUT each).
---@param filter fun(key: cometkey.Key): boolean|table<string, any>
---@param fields cometkey.Fields
---@param opts? table as update_many
---@return table results
function Client:update_where(filter, fields, opts) end

---The full secret of a key (2026 servers mask it elsewhere).
---@param id integer
---@param callback? cometkey.Callback
---@return string|nil key
---@return string? message
---@return cometkey.Info? info
function Client:reveal(id, callback) end

---The full secrets of keys, 100 ids a request.
---@param ids integer[]
---@param callback? cometkey.Callback
---@return table<integer, string>|nil keys
---@return string? message
---@return cometkey.Info? info
function Client:reveal_many(ids, callback) end

---The server's settings (GET /api/status), read once per client.
---@param callback? cometkey.Callback
---@return { quota_per_unit: number }|nil settings
---@return string? message
---@return cometkey.Info? info
function Client:server_settings(callback) end

---Closes connections and wipes the token; idempotent.
function Client:close() end

return cometkey
