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

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, "errors_timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
