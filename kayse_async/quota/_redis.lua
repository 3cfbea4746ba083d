-- The RedisQuota scheduler: one hash per bucket, changed only here, on Redis's clock.
--
-- The rules are those of kayse_async/quota/_state.py (read its docstring first);
-- times are milliseconds of redis.call('TIME'), never a client's clock.
--
-- KEYS[1]  the bucket's hash
-- ARGV[1]  op: "acquire", "peek", "complete" or "release"
-- ARGV[2]  configured limit      ARGV[3] period (ms)
-- ARGV[4]  safety margin (ms)    ARGV[5] lease time-to-live (ms)
-- acquire / peek: ARGV[6] units needed for the eta (callers ahead + 1),
--                 ARGV[7] "1" for a priority retry, ARGV[8] how long a priority claim holds (ms)
-- complete:       ARGV[6] lease id, ARGV[7] status (-1: no response), ARGV[8] "1" when rate-limit headers came,
--                 ARGV[9] limit, ARGV[10] remaining, ARGV[11] reset after (ms),
--                 ARGV[12] retry after (ms) (each -1 when absent)
-- release:        ARGV[6] lease id
--
-- Fields: scalar state (limit, hdr, reset, low, blocked, probe_only, others,
-- headerless, prio, seq); "L:<id>" = "<probe>|<granted>|<expires>" for each
-- lease out; "D:<id>" = when a finished request leaves the rolling period.
--
-- Returns {granted (0/1), lease id or 0, wait (ms, -1: none), eta (ms, -1: unknown),
--          limit, remaining, reset in (ms, -1: unknown)}.

local key = KEYS[1]
local op = ARGV[1]
local cfg_limit = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local margin = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local NEVER = -1e18

local raw = redis.call('HGETALL', key)
local s = {}
local leases = {}
local log = {}
local out, probes = 0, 0
local expired = {}
for i = 1, #raw, 2 do
  local f, v = raw[i], raw[i + 1]
  local kind = string.sub(f, 1, 2)
  if kind == 'L:' then
    local p, g, e = string.match(v, '^(%d)|([^|]+)|([^|]+)$')
    p, g, e = tonumber(p), tonumber(g), tonumber(e)
    if e <= now then
      -- Its holder is gone (a crashed worker): spent for good, as if it ended at its expiry.
      redis.call('HDEL', key, f)
      table.insert(expired, {tonumber(string.sub(f, 3)), g})
      local leaves = e + period + margin
      if leaves > now then
        redis.call('HSET', key, 'D:' .. string.sub(f, 3), leaves)
        table.insert(log, leaves)
      end
    else
      leases[string.sub(f, 3)] = {p, g}
      out = out + 1
      probes = probes + p
    end
  elseif kind == 'D:' then
    local leaves = tonumber(v)
    if leaves <= now then
      redis.call('HDEL', key, f)
    else
      table.insert(log, leaves)
    end
  else
    s[f] = v
  end
end

local function num(name, default)
  local v = s[name]
  if v == nil then return default end
  return tonumber(v)
end

local limit = num('limit', cfg_limit)
local hdr = num('hdr', nil)
local reset_at = num('reset', NEVER)
local low = num('low', 0)
local blocked = num('blocked', NEVER)
local probe_only = num('probe_only', 0) == 1
local others = num('others', NEVER)
local headerless = num('headerless', 0) == 1
local prio = num('prio', NEVER)
local lost_sent_at = num('lost_at', NEVER)
-- Ids of requests that got no answer and may not be counted in 'low' yet.
local lost = {}
if s['lost'] ~= nil and s['lost'] ~= '' then
  for id in string.gmatch(s['lost'], '%d+') do table.insert(lost, tonumber(id)) end
end
-- An expired lease is a request that got no answer (as far as anyone will ever know).
local expired_any = #expired > 0
for _, e in ipairs(expired) do
  table.insert(lost, e[1])
  lost_sent_at = math.max(lost_sent_at, e[2])
end

local function log_count(t)
  local n = out
  for _, leaves in ipairs(log) do
    if leaves > t then n = n + 1 end
  end
  return n
end

local function probe_slot()
  -- Alone, and once per window: a request sent past the Reset that got no
  -- answer may already be counted in the new window.
  if probes ~= 0 or out ~= 0 then return 0 end
  if hdr == nil or lost_sent_at < reset_at then return 1 end
  return 0
end

local function allowance(t)
  if t < blocked then return 0 end
  local free = limit - log_count(t)
  if hdr == nil then
    if headerless then return math.max(0, free) end
    return math.min(math.max(0, free), probe_slot())
  end
  if t < reset_at then
    if probe_only or t < others then return math.max(0, hdr) end
    return math.max(0, hdr, free)
  end
  if probe_only or t < others then return math.max(0, hdr, probe_slot()) end
  return math.max(0, hdr, free, probe_slot())
end

local function is_probe(t)
  if hdr == nil then return not headerless end
  if t < reset_at or hdr > 0 then return false end
  if probe_only or t < others then return true end
  return limit - log_count(t) <= 0
end

local function estimate_remaining(t)
  if t < blocked then return 0 end
  local free = math.max(0, limit - log_count(t))
  if hdr == nil then return free end
  if t < reset_at then return allowance(t) end
  if probe_only or t < others then return math.max(hdr, 0) end
  return math.max(hdr, free)
end

local function next_event(t)
  local best = nil
  local function consider(x)
    if x > t and (best == nil or x < best) then best = x end
  end
  consider(blocked)
  consider(reset_at)
  consider(others)
  for _, leaves in ipairs(log) do consider(leaves) end
  return best
end

local function eta(t, need)
  if allowance(t) >= need then return t end
  local times = {blocked, reset_at, others}
  for _, leaves in ipairs(log) do table.insert(times, leaves) end
  table.sort(times)
  for _, x in ipairs(times) do
    if x > t and x >= blocked then
      if allowance(x) >= need then return x end
      if hdr ~= nil and x >= reset_at and limit - out >= need then return x end
    end
  end
  return nil
end

local function save()
  redis.call('HSET', key, 'limit', limit, 'reset', reset_at, 'low', low, 'blocked', blocked,
    'probe_only', probe_only and 1 or 0, 'others', others, 'headerless', headerless and 1 or 0, 'prio', prio,
    'lost_at', lost_sent_at, 'lost', table.concat(lost, ' '))
  if hdr == nil then redis.call('HDEL', key, 'hdr') else redis.call('HSET', key, 'hdr', hdr) end
  -- An idle bucket forgets itself once nothing in it can matter any more.
  redis.call('PEXPIRE', key, math.ceil(2 * (period + margin + ttl)))
end

local function reply(granted, id, wait, when)
  local reset_in = -1
  if hdr ~= nil and reset_at > now then reset_in = math.ceil(reset_at - now) end
  local w = -1
  if wait ~= nil then w = math.ceil(wait) end
  local e = -1
  if when ~= nil then e = math.ceil(when - now) end
  return {granted, id, w, e, limit, estimate_remaining(now), reset_in}
end

if op == 'acquire' or op == 'peek' then
  local need = tonumber(ARGV[6])
  local priority = ARGV[7] == '1'
  local claim = tonumber(ARGV[8])
  local held_for_retry = (not priority) and prio > now
  if op == 'acquire' and not held_for_retry and allowance(now) >= 1 then
    local id = redis.call('HINCRBY', key, 'seq', 1)
    local p = 0
    if is_probe(now) then p = 1 end
    redis.call('HSET', key, 'L:' .. id, p .. '|' .. now .. '|' .. (now + ttl))
    out = out + 1
    probes = probes + p
    if hdr ~= nil then hdr = hdr - 1 end
    if priority then prio = NEVER end
    save()
    return reply(1, id, nil, now)
  end
  if op == 'acquire' and priority then
    -- A retry keeps its place across processes: others hold back while its claim lasts.
    prio = now + claim
    save()
  end
  local nxt = next_event(now)
  local wait = nil
  if nxt ~= nil then wait = nxt - now end
  if held_for_retry then wait = math.min(wait or claim, prio - now) end
  if expired_any then save() end
  return reply(0, 0, wait, eta(now, need))
end

local id = ARGV[6]
local lease = leases[id]

if op == 'release' then
  if lease ~= nil then
    redis.call('HDEL', key, 'L:' .. id)
    out = out - 1
    probes = probes - lease[1]
    if hdr ~= nil then hdr = hdr + 1 end
  end
  save()
  return reply(0, 0, nil, nil)
end

-- complete
local sent_at = NEVER
if lease ~= nil then
  redis.call('HDEL', key, 'L:' .. id)
  out = out - 1
  probes = probes - lease[1]
  sent_at = lease[2]
  local leaves = now + period + margin
  redis.call('HSET', key, 'D:' .. id, leaves)
  table.insert(log, leaves)
end
local status = tonumber(ARGV[7])
local has_info = ARGV[8] == '1'
local h_limit = tonumber(ARGV[9])
local h_remaining = tonumber(ARGV[10])
local h_reset = tonumber(ARGV[11])
local h_retry = tonumber(ARGV[12])
if h_limit > 0 then limit = h_limit end
if status == 429 then
  local wait = period / math.max(1, limit)
  if h_retry >= 0 then
    wait = h_retry
  elseif h_reset >= 0 then
    wait = h_reset
  end
  blocked = math.max(blocked, now + wait + margin)
  reset_at = blocked
  hdr = -out
  probe_only = true
  save()
  return reply(0, 0, nil, nil)
end
if not has_info or h_remaining < 0 then
  if status < 0 and lease ~= nil then
    -- No answer: the server may count it after any answer we have seen.
    table.insert(lost, tonumber(id))
    lost_sent_at = math.max(lost_sent_at, sent_at)
  end
  if status >= 0 and hdr == nil and not has_info then headerless = true end
  save()
  return reply(0, 0, nil, nil)
end
local reset_after = period
if h_reset >= 0 then reset_after = h_reset end
local new_reset = now + reset_after + margin
if hdr == nil or (lease ~= nil and sent_at >= reset_at) or h_remaining <= low then
  low = h_remaining
  reset_at = new_reset
  -- Requests granted before this one reached the server before it: counted.
  local keep = {}
  for _, other in ipairs(lost) do
    if other > tonumber(id) then table.insert(keep, other) end
  end
  lost = keep
end
hdr = low - out - #lost
probe_only = false
headerless = false
if limit - h_remaining > log_count(now) then others = reset_at + period end
save()
return reply(0, 0, nil, nil)
