-- Telegram text updates for `wrk`, the out-of-process load generator of the inbound benchmark:
--   wrk -t2 -c32 -d20s --latency -s bench/inbound.wrk.lua <host>/api/telegram/bot/webhook/<channel>
-- USERS (environment, default 1000) customers write in turn; update and message ids are unique
-- per thread and request, so every request stores one message (no duplicates).

local threads = {}
local users = tonumber(os.getenv("USERS") or "1000")

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  base = 10000000 * (id + 1)
end

function request()
  counter = counter + 1
  local n = base + counter
  local user = 1 + (n % users)
  local body = string.format(
    '{"update_id":%d,"message":{"message_id":%d,"date":1700000000,' ..
    '"chat":{"id":%d,"type":"private","first_name":"Bob"},' ..
    '"from":{"id":%d,"is_bot":false,"first_name":"Bob","last_name":"Builder","username":"bob"},' ..
    '"text":"bench message"}}', n, n, user, user)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
