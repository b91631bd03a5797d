-- wrk script: POST a batch of 100 session events per request (JSON envelope).
local events = {}
for i = 1, 100 do
  events[i] = string.format(
    '{"type":"session","Region":"eu","SessionID":"bench-%03d","RemoteIP":"10.1.2.3","SessionType":"login","ProfileID":%d}', i, i)
end
wrk.method = "POST"
wrk.path = "/api/1.0/track/batch/"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"events":[' .. table.concat(events, ",") .. ']}'

-- The done() reporter lives beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")
