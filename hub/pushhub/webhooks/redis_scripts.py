"""The Lua scripts of the Redis webhook store: each is one atomic step of :class:`DeliveryStore`.

Every script takes ``KEYS = [version key]`` (so Redis Cluster routes it to the slot of the
``{webhooks}`` hash tag, where all the other keys it builds live too) and ``ARGV[1]`` = the key
prefix. A new delivery is passed as ten arguments: id, endpoint id, channel, epoch, offset, event
id, event type, payload, next_at, created_at.
"""

from __future__ import annotations

from .redis_keys import LUA_NAMES

FIELDS = 10
FINISH_FIELDS = 15

_COMMON = LUA_NAMES + """
local function unique(endpoint, channel, epoch, offset)
    return endpoint .. '\\0' .. channel .. '\\0' .. epoch .. '\\0' .. offset
end

-- add the delivery whose fields start at ARGV[i]; returns its id and whether it is new
local function add(i)
    local id, endpoint, event = ARGV[i], ARGV[i + 1], ARGV[i + 5]
    local key = unique(endpoint, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
    local existing = redis.call('HGET', K.keys, key)
    if existing then
        return existing, false
    end
    local seq = redis.call('INCR', K.seq)
    redis.call('HSET', K.delivery(id), 'id', id, 'endpoint_id', endpoint, 'channel', ARGV[i + 2],
        'epoch', ARGV[i + 3], 'offset', ARGV[i + 4], 'event_id', event, 'event_type', ARGV[i + 6],
        'payload', ARGV[i + 7], 'status', 'pending', 'attempts', 0, 'tries', 0, 'next_at', ARGV[i + 8],
        'created_at', ARGV[i + 9], 'updated_at', ARGV[i + 9], 'last_status', 'null', 'last_error', 'null',
        'seq', seq, 'version', 0)
    redis.call('HSET', K.keys, key, id)
    redis.call('ZADD', K.due(endpoint), ARGV[i + 8], id)
    redis.call('ZADD', K.pending(endpoint), seq, id)
    redis.call('ZADD', K.all, seq, id)
    redis.call('ZADD', K.by_endpoint(endpoint), seq, id)
    redis.call('ZADD', K.by_event(event), seq, id)
    return id, true
end

local function drop_delivery(id)
    local f = redis.call('HMGET', K.delivery(id), 'endpoint_id', 'channel', 'epoch', 'offset', 'event_id')
    if not f[1] then
        return 0
    end
    redis.call('HDEL', K.keys, unique(f[1], f[2], f[3], f[4]))
    redis.call('ZREM', K.due(f[1]), id)
    redis.call('ZREM', K.pending(f[1]), id)
    redis.call('ZREM', K.all, id)
    redis.call('ZREM', K.by_endpoint(f[1]), id)
    redis.call('ZREM', K.by_event(f[5]), id)
    redis.call('ZREM', K.finished, id)
    redis.call('DEL', K.delivery(id))
    return 1
end

local function drop_attempt(id)
    local record = redis.call('HGET', K.attempts, id)
    if not record then
        return 0
    end
    local a = cjson.decode(record)
    redis.call('ZREM', K.attempts_all, id)
    redis.call('ZREM', K.attempts_at, id)
    redis.call('ZREM', K.attempts_by_endpoint(a.endpoint_id), id)
    redis.call('ZREM', K.attempts_by_event(a.event_id), id)
    redis.call('ZREM', K.attempts_by_delivery(a.delivery_id), id)
    redis.call('HDEL', K.attempts, id)
    return 1
end
"""

# ARGV: prefix, endpoint id, record. Returns the new endpoints version.
SAVE_ENDPOINT = LUA_NAMES + """
redis.call('HSET', K.endpoints, ARGV[2], ARGV[3])
return redis.call('INCR', K.version)
"""

# ARGV: prefix, endpoint id. Returns 1 if there was such an endpoint.
DELETE_ENDPOINT = _COMMON + """
local endpoint = ARGV[2]
local existed = redis.call('HDEL', K.endpoints, endpoint)
redis.call('INCR', K.version)
for _, id in ipairs(redis.call('ZRANGE', K.by_endpoint(endpoint), 0, -1)) do
    drop_delivery(id)
end
for _, id in ipairs(redis.call('ZRANGE', K.attempts_by_endpoint(endpoint), 0, -1)) do
    drop_attempt(id)
end
return existed
"""

# ARGV: prefix, channel, expected cursor ('' = any), expected endpoints version ('' = any), new cursor,
# deliveries. Returns 1, or 0 (nothing written) if the cursor or the endpoints moved meanwhile.
ENQUEUE = _COMMON + """
if ARGV[3] ~= '' and redis.call('HGET', K.cursors, ARGV[2]) ~= ARGV[3] then
    return 0
end
if ARGV[4] ~= '' and (redis.call('GET', K.version) or '0') ~= ARGV[4] then
    return 0
end
for i = 6, #ARGV, """ + str(FIELDS) + """ do
    add(i)
end
redis.call('HSET', K.cursors, ARGV[2], ARGV[5])
return 1
"""

# ARGV: prefix, now, deliveries. Returns how many are pending.
RESEND = _COMMON + """
local now, count = ARGV[2], 0
for i = 3, #ARGV, """ + str(FIELDS) + """ do
    local id, new = add(i)
    if not new then
        local d = K.delivery(id)
        local f = redis.call('HMGET', d, 'endpoint_id', 'seq')
        redis.call('HSET', d, 'status', 'pending', 'tries', 0, 'next_at', now, 'updated_at', now)
        redis.call('HINCRBY', d, 'version', 1)
        redis.call('ZADD', K.due(f[1]), now, id)
        redis.call('ZADD', K.pending(f[1]), f[2], id)
        redis.call('ZREM', K.finished, id)
    end
    count = count + 1
end
return count
"""

# ARGV: prefix, delivery id, version, now, lease end. Returns 1 if this caller may send the delivery
# until the lease ends: it is pending, not resent since it was read, due and not leased to another.
CLAIM = LUA_NAMES + """
local id, now = ARGV[2], tonumber(ARGV[4])
local f = redis.call('HMGET', K.delivery(id), 'status', 'version', 'endpoint_id')
if f[1] ~= 'pending' or f[2] ~= ARGV[3] then
    return 0
end
local score = redis.call('ZSCORE', K.due(f[3]), id)
if not score or tonumber(score) > now then
    return 0
end
redis.call('ZADD', K.due(f[3]), ARGV[5], id)
return 1
"""

# ARGV: prefix, then for each finished attempt: delivery id, version, status, attempts, tries, next_at,
# updated_at, last_status (JSON), last_error (JSON), attempt record (JSON), attempt time, the hour and
# minute it started in (seconds since the epoch // 3600, and the minute's start), 1 if it succeeded
# (else 0), its latency (ms). A delivery that is gone gets no attempt recorded. Returns how many
# attempts were recorded.
MINUTES_KEPT = 2 * 3600  # seconds an hour's minute counters stay after its last attempt
FINISH_ATTEMPTS = _COMMON + """
local recorded = 0
for i = 2, #ARGV, """ + str(FINISH_FIELDS) + """ do
    local id = ARGV[i]
    local d = K.delivery(id)
    local f = redis.call('HMGET', d, 'endpoint_id', 'version', 'event_id')
    if f[1] then
        local endpoint = f[1]
        if f[2] == ARGV[i + 1] then
            redis.call('HSET', d, 'status', ARGV[i + 2], 'attempts', ARGV[i + 3], 'tries', ARGV[i + 4],
                'next_at', ARGV[i + 5], 'updated_at', ARGV[i + 6], 'last_status', ARGV[i + 7],
                'last_error', ARGV[i + 8])
            if ARGV[i + 2] == 'pending' then
                redis.call('ZADD', K.due(endpoint), ARGV[i + 5], id)
            else
                redis.call('ZREM', K.due(endpoint), id)
                redis.call('ZREM', K.pending(endpoint), id)
                redis.call('ZADD', K.finished, ARGV[i + 6], id)
            end
        else
            redis.call('HSET', d, 'attempts', ARGV[i + 3], 'last_status', ARGV[i + 7], 'last_error', ARGV[i + 8])
        end
        local attempt = redis.call('INCR', K.attempt_seq)
        redis.call('HSET', K.attempts, attempt, ARGV[i + 9])
        redis.call('ZADD', K.attempts_all, attempt, attempt)
        redis.call('ZADD', K.attempts_at, ARGV[i + 10], attempt)
        redis.call('ZADD', K.attempts_by_endpoint(endpoint), attempt, attempt)
        redis.call('ZADD', K.attempts_by_event(f[3]), attempt, attempt)
        redis.call('ZADD', K.attempts_by_delivery(id), attempt, attempt)
        local minutes = K.minutes(endpoint .. ':' .. ARGV[i + 11])
        redis.call('HINCRBY', minutes, ARGV[i + 12] .. (ARGV[i + 13] == '1' and ':s' or ':f'), 1)
        redis.call('HINCRBYFLOAT', minutes, ARGV[i + 12] .. ':l', ARGV[i + 14])
        redis.call('EXPIRE', minutes, """ + str(MINUTES_KEPT) + """)
        recorded = recorded + 1
    end
end
return recorded
"""

# ARGV: prefix, before, batch. Drops up to `batch` attempts and `batch` finished deliveries last
# touched before `before`; returns how many it dropped.
PRUNE = _COMMON + """
local count = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.attempts_at, '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])) do
    count = count + drop_attempt(id)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.finished, '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])) do
    count = count + drop_delivery(id)
end
return count
"""
