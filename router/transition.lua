-- A human changes an incident's state (acknowledge, resolve, reopen, mitigate, close).
--
-- Checked and applied atomically with the ingest script's own changes (alerts resolving,
-- re-firing), then announced on the events stream, so workers do the notifying exactly as
-- they do for webhook events. Clearing `esc_token` makes any scheduled escalation step stale.
--
-- KEYS: none (built from the prefix, like ingest.lua; single Redis, not Cluster).
-- ARGV[1] key prefix, ARGV[2] incident id, ARGV[3] action, ARGV[4] actor, ARGV[5] now (ms)
-- Returns {'ok', old state, new state}, {'same', state} when already there (idempotent),
--         {'refused', state} when the action does not apply, {'missing'} for no incident.

local p, id, action, actor, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ikey = p .. ':incident:' .. id
local state = redis.call('HGET', ikey, 'state')
if not state then
  return {'missing'}
end

-- action -> {allowed from-states, target state, event kind, fields to stamp}
local rules = {
  ack = {{triggered = true}, 'acknowledged', 'acknowledged', 'acknowledged'},
  mitigate = {{triggered = true, acknowledged = true}, 'mitigated', 'mitigated_by_hand', 'mitigated'},
  resolve = {{triggered = true, acknowledged = true, mitigated = true}, 'resolved', 'resolved_by_hand', 'resolved'},
  reopen = {{mitigated = true, resolved = true}, 'triggered', 'reopened_by_hand', 'reopened'},
  close = {{resolved = true}, 'closed', 'closed', 'closed'},
}
local rule = rules[action]
if rule == nil then
  return redis.error_reply('unknown action ' .. action)
end
if state == rule[2] then
  return {'same', state}
end
if not rule[1][state] then
  return {'refused', state}
end

redis.call('HSET', ikey, 'state', rule[2], 'updated_at', now, rule[4] .. '_at', now,
  rule[4] .. '_by', actor, 'esc_token', '')
if action == 'close' and redis.call('HGET', ikey, 'postmortem_status') == 'open' then
  -- Closing is how a postmortem is marked done (SEV1/SEV2 stay resolved until then).
  redis.call('HSET', ikey, 'postmortem_status', 'done')
end
-- n: the reopen cycle, so that notifications of each cycle have their own page keys.
local event = {k = rule[3], actor = actor}
if action == 'reopen' then
  event.n = redis.call('HINCRBY', ikey, 'reopen_count', 1)
  redis.call('HDEL', ikey, 'mitigated_at', 'resolved_at', 'acknowledged_at', 'acknowledged_by')
else
  event.n = tonumber(redis.call('HGET', ikey, 'reopen_count') or 0)
end
redis.call('XADD', p .. ':events', '*', 'incident', id, 'at', now, 'events', cjson.encode({event}))
return {'ok', state, rule[2]}
