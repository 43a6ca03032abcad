"""Lua scripts run inside Redis, each atomic (Redis runs one script at a time).

They touch keys not declared in KEYS (the entry hash named by a looked-up CID, schema keys
found by SCAN), which a single Redis server allows; Redis Cluster is not supported.
"""

from __future__ import annotations

# Name -> entry in one round trip: HGET the secondary hash, then HGETALL the entry.
# KEYS[1] names hash; ARGV[1] name; ARGV[2] entry key prefix.
GET_BY_NAME = """
local cid = redis.call('HGET', KEYS[1], ARGV[1])
if not cid then return false end
return {cid, redis.call('HGETALL', ARGV[2] .. cid)}
"""

# Shared by the publish scripts: the highest strict x.y.z version of a schema name, counting
# atdata's legacy LocalSchema:module.Name@v keys as atdata does (module stripped).
# ARGV[1] name; ARGV[2], ARGV[3]: escaped SCAN MATCH patterns for plain and legacy keys.
_LATEST = """
local function latest_version(name, patterns, prefix_len)
  local best, best_str = nil, nil
  for _, pattern in ipairs(patterns) do
    local cursor = '0'
    repeat
      local res = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = res[1]
      for _, key in ipairs(res[2]) do
        local rest = string.sub(key, prefix_len + 1)
        local at = nil
        local i = 0
        while true do
          i = string.find(rest, '@', i + 1, true)
          if not i then break end
          at = i
        end
        if at then
          local kname = string.sub(rest, 1, at - 1)
          local version = string.sub(rest, at + 1)
          local dot = nil
          local j = 0
          while true do
            j = string.find(kname, '.', j + 1, true)
            if not j then break end
            dot = j
          end
          if dot then kname = string.sub(kname, dot + 1) end
          local a, b, c = string.match(version, '^(%d+)%.(%d+)%.(%d+)$')
          if kname == name and a then
            local t = {tonumber(a), tonumber(b), tonumber(c)}
            local better = best == nil
            if not better then
              for k = 1, 3 do
                if t[k] ~= best[k] then better = t[k] > best[k]; break end
              end
            end
            if better then best = t; best_str = version end
          end
        end
      end
    until cursor == '0'
  end
  return best_str
end
"""

# KEYS[1] schema hashes; ARGV[1] name, ARGV[2..3] patterns, ARGV[4] prefix.
LATEST_VERSION = (
    _LATEST
    + """
return latest_version(ARGV[1], {ARGV[2], ARGV[3]}, string.len(ARGV[4])) or false
"""
)

# Optimistic auto-versioning: write ARGV[6] (the record rendered for ARGV[5]) only if the
# latest version is still ARGV[4] (empty for none). Returns {1, version} when written, or
# {0, latest} so the caller re-renders for the new latest and tries again.
# KEYS[1] schema hashes; ARGV: name, pattern, legacy pattern, expected latest, candidate,
# json, content hash, key prefix.
PUBLISH_NEXT = (
    _LATEST
    + """
local latest = latest_version(ARGV[1], {ARGV[2], ARGV[3]}, string.len(ARGV[8])) or ''
if latest ~= ARGV[4] then return {0, latest} end
local key = ARGV[8] .. ARGV[1] .. '@' .. ARGV[5]
if redis.call('EXISTS', key) == 1 then return {0, latest} end
redis.call('SET', key, ARGV[6])
redis.call('HSET', KEYS[1], ARGV[1] .. '@' .. ARGV[5], ARGV[7])
return {1, ARGV[5]}
"""
)

# Explicit version: create it, or return what is stored (versions are immutable).
# KEYS[1] schema key, KEYS[2] schema hashes; ARGV: field, json, content hash.
PUBLISH_EXACT = """
local existing = redis.call('GET', KEYS[1])
if existing then
  return {0, existing, redis.call('HGET', KEYS[2], ARGV[1]) or ''}
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {1}
"""

# Delete a secondary-index field only if it still holds the value we saw (reconciling).
# KEYS[1] hash; ARGV[1] field; ARGV[2] expected value.
HDEL_IF = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
