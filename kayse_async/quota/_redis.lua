-- The RedisQuota scheduler: one hash per bucket, changed only here, on Redis's clock.
--
-- The rules are those of kayse_async/quota/_state.py (read its docstring first);
-- times are milliseconds of redis.call('TIME'), never a client's clock.
--
-- KEYS[1]  the bucket's hash
-- ARGV[1]  op: "acquire", "peek", "complete" or "release"
-- ARGV[2]  configured limit      ARGV[3] configured period (ms)
-- ARGV[4]  safety margin (ms, -1: 1% of the window, at most 1 s)   ARGV[5] lease time-to-live (ms)
-- acquire / peek: ARGV[6] units needed for the eta (callers ahead + 1),
--                 ARGV[7] "1" for a priority retry, ARGV[8] how long a priority claim holds (ms),
--                 ARGV[9] how many units to grant at most (ids first .. first + granted - 1)
-- complete:       ARGV[6] lease id, ARGV[7] status (-1: no response), ARGV[8] "1" when rate-limit headers came,
--                 ARGV[9] limit, ARGV[10] remaining, ARGV[11] reset after (ms), ARGV[12] retry after (ms),
--                 ARGV[13] stated window (ms), ARGV[14] the Date an epoch Reset was read against (ms)
--                 (each -1 when absent)
-- release:        ARGV[6] lease id
--
-- Fields: scalar state (limit, window, stated, trusted, hdr, reset, low, drained, lost, passed, losses,
-- probe_at, blocked, others, headerless, clock_lo, clock_hi, prio, seq); "L:<id>" = "<probe>|<granted>|<expires>"
-- for each lease out; "D:<id>" = when a finished request came back (the log). Lease ids are the
-- order of grants, which stands in for the order of sending.
--
-- Returns {units granted, first lease id or 0, wait (ms, -1: none), eta (ms, -1: unknown), limit,
--          remaining (-1: unknown), reset in (ms, -1: unknown), window (ms, -1: unknown), headerless (0/1),
--          the window the rules use (ms), Redis's clock (µs)}.

local key = KEYS[1]
local op = ARGV[1]
local cfg_limit = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local cfg_margin = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local NEVER = -1e18

-- Times are stored in full: redis.call would print a number with 14 digits, whole milliseconds.
local function exact(x)
  return string.format('%.17g', x)
end

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
      -- Its holder is gone (a crashed worker): spent for good, as if it came back at its expiry.
      redis.call('HDEL', key, f)
      redis.call('HSET', key, 'D:' .. string.sub(f, 3), exact(e))
      table.insert(expired, e)
      table.insert(log, e)
    else
      leases[string.sub(f, 3)] = {p, g}
      out = out + 1
      probes = probes + p
    end
  elseif kind == 'D:' then
    table.insert(log, tonumber(v))
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
local window = num('window', nil)
local stated = num('stated', 0) == 1
local trusted = num('trusted', 0) == 1
local hdr = num('hdr', nil)
local reset_at = num('reset', NEVER)
local low = num('low', 0)
local drained = num('drained', 0) == 1
local losses = num('losses', 0)
local probe_at = num('probe_at', NEVER)
local blocked = num('blocked', NEVER)
local others = num('others', NEVER)
local headerless = num('headerless', 0) == 1
local clock_lo = num('clock_lo', NEVER)
local clock_hi = num('clock_hi', -NEVER)
local prio = num('prio', NEVER)
-- When each answer lost since the last word was given up on: those requests may not be counted in 'low' yet.
local lost = {}
if s['lost'] ~= nil and s['lost'] ~= '' then
  for at in string.gmatch(s['lost'], '[^ ]+') do table.insert(lost, tonumber(at)) end
end
for _, at in ipairs(expired) do table.insert(lost, at) end
-- Answers passed over since the last word: "<remaining>,<reset at>" each.
local passed = {}
if s['passed'] ~= nil and s['passed'] ~= '' then
  for r, at in string.gmatch(s['passed'], '([^, ]+),([^, ]+)') do
    table.insert(passed, {tonumber(r), tonumber(at)})
  end
end

local function span()
  if window == nil then return period end
  return window
end

local function margin()
  if cfg_margin >= 0 then return cfg_margin end
  return math.min(1000, span() / 100)
end

-- Forget what no window ending now can contain.
local cut = now - span() - margin()
local kept = {}
for i = 1, #raw, 2 do
  if string.sub(raw[i], 1, 2) == 'D:' and tonumber(raw[i + 1]) <= cut then redis.call('HDEL', key, raw[i]) end
end
for _, t in ipairs(log) do
  if t > cut then table.insert(kept, t) end
end
log = kept

local function ours(t)
  local n = out
  local c = t - span() - margin()
  for _, stamp in ipairs(log) do
    if stamp > c then n = n + 1 end
  end
  return n
end

local function log_free(t)
  if headerless or (trusted and t >= others) then return limit - ours(t) end
  return 0
end

local function probe_slot(t)
  if out == 0 and t >= probe_at then return 1 end
  return 0
end

local function allowance(t)
  if t < blocked or probes > 0 then return 0 end
  local free = log_free(t)
  if hdr == nil then
    if headerless then return math.max(0, free) end
    return probe_slot(t)
  end
  if t < reset_at then return math.max(0, hdr, free) end
  return math.max(0, hdr, free, probe_slot(t))
end

local function remaining(t)
  if t < blocked then return 0 end
  if hdr == nil then
    if headerless then return math.max(0, log_free(t)) end
    return -1
  end
  return math.max(0, hdr, log_free(t))
end

local function times(t)
  local list = {}
  local function consider(x)
    if x > t then table.insert(list, x) end
  end
  consider(blocked)
  consider(reset_at)
  consider(others)
  consider(probe_at)
  if headerless or trusted then
    for _, stamp in ipairs(log) do consider(stamp + span() + margin()) end
  end
  table.sort(list)
  return list
end

local function eta(t, need)
  if allowance(t) >= need then return t end
  for _, x in ipairs(times(t)) do
    if x >= blocked then
      if allowance(x) >= need then return x end
      if hdr ~= nil and x >= reset_at and limit - out >= need then return x end
    end
  end
  return nil
end

-- Answers lost beyond the server's last count may have taken the room its Reset brings (see _state.py).
local function hold_for_lost()
  if hdr ~= nil and hdr < 0 and #lost > 0 and window ~= nil then
    probe_at = math.max(probe_at, math.max(unpack(lost)) + span() + margin())
  end
end

-- Keep only the lost answers given up on after a request sent at 'sent': those before it are counted.
local function covered(sent)
  local keep = {}
  for _, at in ipairs(lost) do
    if at > sent then table.insert(keep, at) end
  end
  lost = keep
end

local function save()
  redis.call('HSET', key, 'limit', limit, 'stated', stated and 1 or 0, 'trusted', trusted and 1 or 0,
    'reset', exact(reset_at), 'low', low, 'drained', drained and 1 or 0, 'losses', losses, 'probe_at', exact(probe_at),
    'blocked', exact(blocked), 'others', exact(others), 'headerless', headerless and 1 or 0, 'clock_lo', exact(clock_lo),
    'clock_hi', exact(clock_hi), 'prio', exact(prio))
  local l = {}
  for _, at in ipairs(lost) do table.insert(l, exact(at)) end
  redis.call('HSET', key, 'lost', table.concat(l, ' '))
  local p = {}
  for _, e in ipairs(passed) do table.insert(p, e[1] .. ',' .. exact(e[2])) end
  redis.call('HSET', key, 'passed', table.concat(p, ' '))
  if hdr == nil then redis.call('HDEL', key, 'hdr') else redis.call('HSET', key, 'hdr', hdr) end
  if window == nil then redis.call('HDEL', key, 'window') else redis.call('HSET', key, 'window', exact(window)) end
  -- An idle bucket forgets itself once nothing in it can matter any more.
  redis.call('PEXPIRE', key, math.ceil(2 * (span() + margin() + ttl)))
end

local function reply(granted, id, wait, when)
  local reset_in = -1
  if hdr ~= nil and reset_at > now then reset_in = math.ceil(reset_at - now) end
  local w = -1
  if wait ~= nil then w = math.ceil(wait) end
  local e = -1
  if when ~= nil then e = math.ceil(when - now) end
  local known = -1
  if headerless then known = period elseif trusted and window ~= nil then known = window end
  return {granted, id, w, e, limit, remaining(now), reset_in, math.ceil(known), headerless and 1 or 0, math.ceil(span()),
    math.floor(now * 1000 + 0.5)}
end

if op == 'acquire' or op == 'peek' then
  local need = tonumber(ARGV[6])
  local priority = ARGV[7] == '1'
  local claim = tonumber(ARGV[8])
  local held_for_retry = (not priority) and prio > now
  if op == 'acquire' and not held_for_retry and allowance(now) >= 1 then
    -- Up to ARGV[9] units at once, for the callers in line in one process: one round trip for all;
    -- at most half of the room (at least one), so that other processes looking too are served.
    local want, first, n = math.min(tonumber(ARGV[9]), math.max(1, math.ceil(allowance(now) / 2))), nil, 0
    while n < want and allowance(now) >= 1 do
      local id = redis.call('HINCRBY', key, 'seq', 1)
      local p = 0
      if not headerless and (hdr == nil or (hdr <= 0 and log_free(now) <= 0)) then p = 1 end
      redis.call('HSET', key, 'L:' .. id, p .. '|' .. exact(now) .. '|' .. exact(now + ttl))
      out = out + 1
      probes = probes + p
      if hdr ~= nil then hdr = hdr - 1 end
      first, n = first or id, n + 1
    end
    if priority then prio = NEVER end
    save()
    return reply(n, first, nil, now)
  end
  if op == 'acquire' and priority then
    -- A retry keeps its place across processes: others hold back while its claim lasts.
    prio = now + claim
  end
  local nxt = times(now)[1]
  local wait = nil
  if nxt ~= nil then wait = nxt - now end
  if held_for_retry then wait = math.min(wait or claim, prio - now) end
  save()
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
if lease == nil then
  -- Already settled (or expired): nothing more to learn from it.
  save()
  return reply(0, 0, nil, nil)
end
redis.call('HDEL', key, 'L:' .. id)
out = out - 1
probes = probes - lease[1]
local probe = lease[1] == 1
local sent_at = lease[2]
redis.call('HSET', key, 'D:' .. id, exact(now))
table.insert(log, now)
local status = tonumber(ARGV[7])
local has_info = ARGV[8] == '1'
local h_limit = tonumber(ARGV[9])
local h_remaining = tonumber(ARGV[10])
local h_reset = tonumber(ARGV[11])
local h_retry = tonumber(ARGV[12])
local h_window = tonumber(ARGV[13])
local h_date = tonumber(ARGV[14])
if status < 0 then
  -- No answer: counted maybe; the next probe waits a back-off, doubled for each further loss.
  table.insert(lost, now)
  losses = losses + 1
  local backoff = math.max(now - sent_at, margin()) * 2 ^ (losses - 1)
  local cap = window
  if cap == nil then cap = math.min(period, 60000) end
  probe_at = now + math.min(cap, backoff)
  hold_for_lost()
  save()
  return reply(0, 0, nil, nil)
end
losses = 0
probe_at = NEVER
local reset_after = nil
if h_reset >= 0 then reset_after = h_reset end
if h_date >= 0 and reset_after ~= nil then
  -- The server's clock was this far past its whole-second Date, surely (see _state.py _date_phase).
  local lo, hi = h_date - now, h_date + 1000 - sent_at
  if math.max(clock_lo, lo) > math.min(clock_hi, hi) then
    clock_lo, clock_hi = lo, hi
  else
    clock_lo, clock_hi = math.max(clock_lo, lo), math.min(clock_hi, hi)
  end
  reset_after = reset_after - math.min(1000, math.max(0, now + clock_lo - h_date))
end
-- Another limit than the one known: another budget, whose first answer is the word (see _state.py).
local changed = h_limit > 0 and hdr ~= nil and h_limit ~= limit
if changed then window, stated, trusted = nil, false, false end
if h_limit > 0 then limit = h_limit end
if h_window > 0 then window, stated, trusted = h_window, true, true end
if status == 429 then
  local wait = span() / math.max(1, limit)
  if h_retry >= 0 then wait = h_retry elseif reset_after ~= nil then wait = reset_after end
  blocked = math.max(blocked, now + wait + margin())
  reset_at, drained = blocked, true
  covered(sent_at)
  hdr = -out - #lost
  hold_for_lost()
  trusted = stated
  others = blocked + span()
  save()
  return reply(0, 0, nil, nil)
end
if not has_info or h_remaining < 0 then
  if hdr == nil and not has_info then headerless = true end
  save()
  return reply(0, 0, nil, nil)
end
headerless = false
if reset_after == nil then reset_after = span() end
if not stated and reset_after > (window or 0) then window, trusted = reset_after, false end
local m = margin()
local new_reset = now + reset_after + m
local fuzz = 1000 + m
if h_date >= 0 then fuzz = fuzz + math.min(1000, clock_hi - clock_lo) end
if hdr == nil or probe or changed or new_reset > reset_at + fuzz or (h_remaining <= low and new_reset >= reset_at - fuzz) then
  if probe and drained and limit >= 4 and h_remaining >= limit - 1 and reset_at <= sent_at
      and sent_at <= reset_at + m and now - sent_at <= m and reset_after >= span() - 1000 - m then
    trusted = true
  end
  low = h_remaining
  for _, e in ipairs(passed) do
    if e[2] >= new_reset - fuzz then low = math.min(low, e[1]) end
  end
  reset_at, drained, passed = new_reset, low <= 0, {}
  covered(sent_at)
else
  table.insert(passed, {h_remaining, new_reset})
end
hdr = low - out - #lost
hold_for_lost()
if trusted and limit - h_remaining > ours(now) then others = reset_at + span() end
save()
return reply(0, 0, nil, nil)
