-- One webhook's alerts, deduplicated and grouped into incidents in a single atomic step.
--
-- Concurrent deliveries of the same alerts (Alertmanager HA pairs, retries, several receiver
-- processes) are serialized by Redis, so exactly one of them opens an incident and the rest see
-- duplicates. Key names follow router/keys.py.
--
-- KEYS: none. Keys depend on the alerts, so the script builds them from the prefix: it runs on
--       a single Redis (with Sentinel for failover), not on Redis Cluster.
-- ARGV[1]  key prefix
-- ARGV[2]  now, unix milliseconds (the receiver's clock, read once per webhook)
-- ARGV[3]  "<flap window ms>:<flap threshold>": a re-firing this soon after mitigation reopens;
--          this many re-firings within the window mark the alert flapping
-- ARGV[4]  alert state TTL, seconds (refreshed on every delivery)
-- ARGV[5]  the alerts, one per line: tab-separated fingerprint, group hash, status
--          (firing|resolved), severity (SEV1..SEV4), team, rule, mute reason ('' or e.g.
--          silence:<id>), inhibition source tokens, inhibition target tokens (comma-joined)
-- ARGV[6]  the alerts' JSON records (stored as the incident's member records), in the same
--          order, separated by \x1e (JSON text never contains that byte raw)
-- ARGV[7]  the group keys, one "group hash<TAB>group key" per line
--          (Three large strings instead of arguments per alert: encoding each argument is a
--          visible cost in the client at thousands of alerts a second; splitting is cheap here.)
-- Returns  one line per alert, "<outcome>\t<incident id>": outcome is one of opened, added,
--          reopened, duplicate, resolved, all_resolved, ignored, muted; the incident id is ''
--          when none, and the mute reason for muted alerts.
-- Appends  one entry to {p}:events per incident touched: incident=<id>, at=<now>,
--          events=<JSON list of {k=kind, fp=fingerprint, sev=severity, from=severity,
--          n=reopen count (reopened, all_resolved)}>.

local p = ARGV[1]
local now = tonumber(ARGV[2])
local flap_window, flap_threshold = string.match(ARGV[3], '^(%d+):(%d+)$')
flap_window, flap_threshold = tonumber(flap_window), tonumber(flap_threshold)
local ttl = tonumber(ARGV[4])
local function split(text, separator)
  local parts, start = {}, 1
  if text == '' then return parts end
  while true do
    local at = string.find(text, separator, start, true)
    if not at then
      parts[#parts + 1] = string.sub(text, start)
      return parts
    end
    parts[#parts + 1] = string.sub(text, start, at - 1)
    start = at + #separator
  end
end

local lines = split(ARGV[5], '\n')
-- The current alert's record is located as the main loop reaches it, but cut out of ARGV[6]
-- only when stored: duplicates, the common case, never copy theirs.
local records, record_first, record_last = ARGV[6], 1, -1
local function next_record()
  record_first = record_last + 2
  record_last = (string.find(records, '\030', record_first, true) or (#records + 1)) - 1
end
local function current_record()
  return string.sub(records, record_first, record_last)
end
local count = #lines

local out = {}
local touched = {}
local order = {}

local function emit(incident, event)
  if touched[incident] == nil then
    touched[incident] = {}
    order[#order + 1] = incident
  end
  local list = touched[incident]
  list[#list + 1] = event
end

local function rank(severity)
  return tonumber(string.sub(severity, 4))
end

local function is_open(state)
  return state == 'triggered' or state == 'acknowledged'
end

-- Flap control: count the re-firings of an alert within the flap window; at the threshold the
-- alert is flapping, and its incident stays open through its resolves (so re-fires page no
-- one) until it has been quiet for a flap window (the worker settles it).
local function count_refire(akey, incident, ikey)
  local since, count = unpack(redis.call('HMGET', akey, 'fs', 'fc'))
  since, count = tonumber(since or 0), tonumber(count or 0)
  if now - since > flap_window then
    since, count = now, 0
  end
  count = count + 1
  redis.call('HSET', akey, 'fs', since, 'fc', count)
  if count >= flap_threshold and redis.call('HGET', akey, 'fl') ~= '1' then
    redis.call('HSET', akey, 'fl', '1')
    redis.call('HSET', ikey, 'flapping', '1')
    emit(incident, {k = 'flapping', n = count})
  end
end

-- Groups known to have an open incident in this call: an alert storm sends many alerts of one
-- group together, and each needs neither the group lookup nor the incident's state again.
-- gh -> {incident, ikey, severity}
local open_groups = {}

local function firing(fp, gh, gk, severity, team, rule, akey, refire)
  local known = open_groups[gh]
  local gkey = p .. ':group:' .. gh
  local incident, ikey, state
  if known then
    incident, ikey, state = known.incident, known.ikey, 'triggered'
  else
    incident = redis.call('GET', gkey)
    if incident then
      ikey = p .. ':incident:' .. incident
      state = redis.call('HGET', ikey, 'state')
    end
  end
  local outcome, reopen_count
  if incident and is_open(state) then
    outcome = 'added'
  elseif incident and state == 'mitigated'
      and now - tonumber(redis.call('HGET', ikey, 'mitigated_at') or 0) <= flap_window then
    outcome = 'reopened'
    redis.call('HSET', ikey, 'state', 'triggered', 'updated_at', now)
    reopen_count = redis.call('HINCRBY', ikey, 'reopen_count', 1)
    redis.call('HDEL', ikey, 'mitigated_at')
  else
    outcome = 'opened'
    incident = 'INC-' .. redis.call('INCR', p .. ':seq')
    ikey = p .. ':incident:' .. incident
    redis.call('HSET', ikey, 'id', incident, 'group_key', gk, 'group_hash', gh, 'rule', rule,
      'team', team, 'severity', severity, 'state', 'triggered', 'opened_at', now,
      'updated_at', now, 'reopen_count', 0)
    redis.call('SET', gkey, incident)
    redis.call('ZADD', p .. ':incidents', now, incident)
  end
  redis.call('SADD', ikey .. ':firing', fp)
  redis.call('HSET', ikey .. ':alerts', fp, current_record())
  redis.call('HSET', akey, 's', 'firing', 'i', incident)
  local current = severity
  if outcome ~= 'opened' then
    current = known and known.severity or redis.call('HGET', ikey, 'severity')
    if rank(severity) < rank(current) then
      redis.call('HSET', ikey, 'severity', severity, 'updated_at', now)
      emit(incident, {k = 'severity_raised', fp = fp, sev = severity, from = current})
      current = severity
    end
  end
  open_groups[gh] = {incident = incident, ikey = ikey, severity = current}
  emit(incident, {k = outcome, fp = fp, sev = severity, n = reopen_count})
  if refire then
    count_refire(akey, incident, ikey)
  end
  return outcome, incident
end

local function resolved(fp, gh, incident, akey)
  local ikey = p .. ':incident:' .. incident
  redis.call('HSET', akey, 's', 'resolved')
  redis.call('SREM', ikey .. ':firing', fp)
  redis.call('HSET', ikey .. ':alerts', fp, current_record())
  emit(incident, {k = 'resolved', fp = fp})
  if redis.call('HGET', akey, 'fl') == '1' then
    -- Flapping: keep the incident open; the worker mitigates it once the alert stays quiet.
    emit(incident, {k = 'flap_quiet', fp = fp})
    return 'resolved'
  end
  if redis.call('SCARD', ikey .. ':firing') == 0 and is_open(redis.call('HGET', ikey, 'state')) then
    -- Service restored: stop escalating (a pending deadline finds its token gone).
    open_groups[gh] = nil
    redis.call('HSET', ikey, 'state', 'mitigated', 'mitigated_at', now, 'updated_at', now,
      'esc_token', '')
    emit(incident, {k = 'all_resolved', n = tonumber(redis.call('HGET', ikey, 'reopen_count'))})
    return 'all_resolved'
  end
  return 'resolved'
end

local group_keys = {}
for _, line in ipairs(split(ARGV[7], '\n')) do
  local gh, gk = string.match(line, '^([^\t]*)\t(.*)$')
  group_keys[gh] = gk
end

local metas = {}
for i = 0, count - 1 do
  metas[i] = {string.match(lines[i + 1],
    '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')}
end

-- Inhibition sources first, so that a source and its targets in one delivery see each other.
-- {p}:inhibit:{token} holds the fingerprints of firing source alerts with those equal labels.
for i = 0, count - 1 do
  local fp, status, sources = metas[i][1], metas[i][3], metas[i][8]
  for token in string.gmatch(sources, '[^,]+') do
    local key = p .. ':inhibit:' .. token
    if status == 'firing' then
      redis.call('SADD', key, fp)
      redis.call('EXPIRE', key, ttl)
    else
      redis.call('SREM', key, fp)
    end
  end
end

local function inhibited(fp, targets)
  for token in string.gmatch(targets, '[^,]+') do
    local key = p .. ':inhibit:' .. token
    local n = redis.call('SCARD', key)
    if n > 1 or (n == 1 and redis.call('SISMEMBER', key, fp) == 0) then
      return 'inhibited'
    end
  end
  return ''
end

for i = 0, count - 1 do
  local fp, gh, status, severity, team, rule, mute, _, targets = unpack(metas[i])
  local gk = group_keys[gh]
  next_record()
  local akey = p .. ':alert:' .. gh .. ':' .. fp
  local previous = redis.call('HMGET', akey, 's', 'i', 'm')
  local prev_status, prev_incident = previous[1], previous[2]
  local outcome, incident
  if status == 'firing' then
    if mute == '' and targets ~= '' then
      mute = inhibited(fp, targets)
    end
    if prev_status == 'firing' then
      outcome, incident = 'duplicate', prev_incident
    elseif mute ~= '' then
      -- Silenced, inhibited or in maintenance: recorded, never paged. When the mute ends, the
      -- next delivery (Alertmanager re-sends) finds it not firing and handles it afresh.
      redis.call('HSET', akey, 's', 'muted', 'm', mute)
      outcome, incident = 'muted', mute
    else
      outcome, incident = firing(fp, gh, gk, severity, team, rule, akey,
        prev_status == 'resolved')
    end
  elseif prev_status == 'firing' then
    incident = prev_incident
    outcome = resolved(fp, gh, incident, akey)
  elseif prev_status == 'muted' then
    redis.call('HSET', akey, 's', 'resolved')
    outcome, incident = 'muted', previous[3] or ''
  else
    -- A resolve we never saw fire (sent before we started, or already resolved): nothing to do.
    outcome, incident = (prev_status and 'duplicate' or 'ignored'), prev_incident
  end
  if prev_status or outcome ~= 'ignored' then
    redis.call('EXPIRE', akey, ttl)
  end
  out[#out + 1] = outcome .. '\t' .. (incident or '')
end

for _, incident in ipairs(order) do
  redis.call('XADD', p .. ':events', '*', 'incident', incident, 'at', now,
    'events', cjson.encode(touched[incident]))
end

return table.concat(out, '\n')
