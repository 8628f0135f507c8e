--- cometkey.pace: one request budget per client, shared by every call of the
-- client (call.lua asks it before each request). The server's limiter counts
-- the requests it accepted in a window of W seconds and refuses the R+1st with
-- an empty 429 and no Retry-After; refused requests do not count.
--
-- The budget keeps the send times of the client's own accepted requests (a ring
-- of the last MAX_LOG) and, once R and W are known, admits a request only when
-- the R-th most recent accepted one has left the window: it mirrors a sliding
-- window limiter exactly (bursts of R, then one request per freed slot), and a
-- fixed window one after a second measurement.
--
-- R and W are declared (`rate_limit = { requests, seconds }`) or learned:
--   free     no limit known: no waiting.
--   probing  after a 429: one request at a time, every `delta` seconds (2% of
--            the window seen so far), until one is accepted. The first accepted
--            probe fixes W (its time minus the R-th most recent accepted send),
--            R being the number accepted before the first refusal.
--   paced    the mirror schedule. A refusal with fewer than R accepted in the
--            window lowers R; with R accepted it means W is longer: probe again.
--            Every 2 W without a refusal, R grows by one (probing back up).
-- Retry-After holds every request of the client until then (capped by the
-- caller to one call's timeout).
local max, min, floor, huge = math.max, math.min, math.floor, math.huge

local M = {}

M.MAX_LOG = 4096          -- accepted send times remembered (largest R that can be learned)
M.PROBE_FRACTION = 0.03   -- probe interval, as a fraction of the window seen so far
M.PROBE_MIN, M.PROBE_MAX = 0.05, 5
M.MARGIN_FRACTION = 0.01  -- slack added to W: the server's clock sees our sends a little later
M.MARGIN_MIN = 0.01

local Pace = {}
Pace.__index = Pace

--- new([limit]) --> pace; limit: { requests = R, seconds = W } (declared) or nil (learned)
function M.new(limit)
  local self = setmetatable({
    t = {}, live = {}, head = 1, tail = 0, -- ring of granted send times (absolute indexes)
    state = "free", hold = 0, n_accepted = 0, n_refused = 0,
  }, Pace)
  if limit then
    self.declared = true
    self.state = "paced"
    self.R, self.W = limit.requests, limit.seconds
  end
  return self
end

--- check(value, fail) --> normalised limit (fail(message) raises: options.lua)
function M.check(v, fail)
  if type(v) ~= "table" then fail("rate_limit must be a table { requests = N, seconds = W }") end
  for k in pairs(v) do
    if k ~= "requests" and k ~= "seconds" then
      fail("rate_limit has an unknown field '" .. tostring(k) .. "' (requests, seconds)")
    end
  end
  local r, w = v.requests, v.seconds
  if type(r) ~= "number" or r ~= r or r < 1 or r > M.MAX_LOG or floor(r) ~= r then
    fail("rate_limit.requests must be an integer from 1 to " .. M.MAX_LOG)
  end
  if type(w) ~= "number" or w ~= w or w <= 0 or w == huge or w > 86400 then
    fail("rate_limit.seconds must be a positive finite number of seconds (at most 86400)")
  end
  return { requests = r, seconds = w }
end

local function slot(i) return i % M.MAX_LOG + 1 end

-- Records a grant at time at; returns its token (absolute index).
local function record(self, at)
  local i = self.tail + 1
  self.tail = i
  local s = slot(i)
  self.t[s], self.live[s] = at, true
  if i - self.head >= M.MAX_LOG then self.head = i - M.MAX_LOG + 1 end
  return i
end

-- Time of the n-th most recent live grant at or before index `from` (nil when fewer).
local function nth_recent(self, n, from)
  local seen = 0
  for i = from or self.tail, self.head, -1 do
    local s = slot(i)
    if self.live[s] then
      seen = seen + 1
      if seen == n then return self.t[s] end
    end
  end
  return nil
end

-- Live grants with a time in (from, to).
local function count_between(self, from, to, before)
  local n = 0
  for i = before or self.tail, self.head, -1 do
    local s = slot(i)
    local at = self.t[s]
    if at <= from then break end
    if self.live[s] and at < to then n = n + 1 end
  end
  return n
end

local function margin(self) return max(self.W * M.MARGIN_FRACTION, M.MARGIN_MIN) end

local function delta(self, now)
  local seen = self.W
  if not seen then
    local oldest -- the oldest remembered accepted send
    for i = self.head, self.tail do
      if self.live[slot(i)] then oldest = self.t[slot(i)]; break end
    end
    seen = oldest and (now - oldest) or 0
  end
  return min(max(seen * M.PROBE_FRACTION, M.PROBE_MIN), M.PROBE_MAX)
end

--- admit(now) --> token, at (send at time at >= now) | nil, retry_at (ask again then)
function Pace:admit(now)
  if now < self.hold then return nil, self.hold end
  local state = self.state
  if state == "free" then return record(self, now), now end
  if state == "probing" then
    if self.probe then
      if now < self.probe_expires then return nil, min(now + delta(self, now), self.probe_expires) end
      self.probe = nil -- its outcome never came (the run was abandoned)
    end
    if now < self.next_probe then return nil, self.next_probe end
    local token = record(self, now)
    self.probe, self.probe_expires = token, now + (self.timeout or 30) + 1
    return token, now
  end
  -- paced: the R-th most recent grant must have left the window
  local at = now
  local oldest = nth_recent(self, self.R)
  if oldest then at = max(at, oldest + self.W + margin(self)) end
  local last = self.tail >= self.head and self.t[slot(self.tail)] or nil
  if last and last > at then at = last end
  return record(self, at), at
end

--- eta(requests, now) --> seconds the budget needs for `requests` more (nil: no limit known)
function Pace:eta(requests, now)
  if self.state == "free" or not self.R then return nil end
  local wait = max(self.hold - now, 0)
  return wait + requests / self.R * self.W
end

--- cancel(token): a grant that was not used (its call gave up before sending)
function Pace:cancel(token)
  if token and token >= self.head and token <= self.tail then self.live[slot(token)] = false end
  if token == self.probe then self.probe = nil end
end

--- abort(): forget an outstanding probe (its run was abandoned)
function Pace:abort()
  self.probe = nil
end

--- accepted(token, now): the server answered something else than 429
function Pace:accepted(token, now)
  self.n_accepted = self.n_accepted + 1
  if self.declared then return end
  if self.state == "probing" and token == self.probe then
    self.probe = nil
    if not self.R then
      -- R: every request accepted before this probe (the burst that met the
      -- limit, in flight ones included); W: from the R-th most recent to this probe
      self.R = max(count_between(self, -huge, huge, token - 1), 1)
    end
    local from = nth_recent(self, self.R, token - 1)
    local at = self.t[slot(token)]
    self.W = max(from and (at - from) or (at - (self.first_refusal or at)), 0.001)
    self.state, self.ok_since = "paced", now
  elseif self.state == "paced" and now - (self.ok_since or now) >= 2 * self.W then
    self.R, self.ok_since = self.R + 1, now -- probe back up
  end
end

--- refused(token, now, retry_after, learn): the server answered 429 (retry_after:
-- seconds, already capped). Only bulk requests teach the budget (learn = true):
-- a single call keeps its own retry policy, and fault injection or a one-off
-- refusal does not slow down the calls that follow.
function Pace:refused(token, now, retry_after, learn)
  self.n_refused = self.n_refused + 1
  local at = now
  if token and token >= self.head and token <= self.tail then
    local s = slot(token)
    self.live[s] = false
    at = self.t[s]
  end
  if token == self.probe then self.probe = nil end
  if not learn then return end
  if retry_after then
    self.hold = max(self.hold, now + retry_after)
    return
  end
  if self.declared then
    self.hold = max(self.hold, now + self.W / self.R) -- traffic we do not see: one slot's time
    return
  end
  if self.state == "free" then
    self.state, self.first_refusal = "probing", at
    self.next_probe = now + delta(self, now)
  elseif self.state == "paced" then
    local inside = count_between(self, at - self.W, at, token and token - 1)
    self.ok_since = now
    if inside < self.R then
      self.R = max(inside, 1)
    else
      self.state = "probing"
      self.next_probe = now + delta(self, now)
    end
  else -- probing
    self.next_probe = max(self.next_probe or now, now + delta(self, now))
  end
end

--- wait(pace, ctx, deadline) --> token | nil, seconds_needed
-- Sleeps through ctx until the budget admits a request. With a deadline (single
-- calls), gives up when the slot lies beyond it; without (bulk items), waits.
function M.wait(pace, ctx, deadline)
  while true do
    local now = ctx.now()
    local token, at = pace:admit(now)
    if deadline and at > deadline then
      if token then pace:cancel(token) end
      return nil, at - now
    end
    if at > now then ctx.sleep(at - now) end
    if token then return token end
  end
end

--- stats() --> { state, requests (R), seconds (W), accepted, refused }
function Pace:stats()
  return { state = self.state, requests = self.R, seconds = self.W, accepted = self.n_accepted,
    refused = self.n_refused, declared = self.declared or false }
end

return M
