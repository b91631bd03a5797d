-- wrk script: POST one session event per request, report JSON at the end.
wrk.method = "POST"
wrk.path = "/api/1.0/track/session/"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "Region=eu&SessionID=bench-session-0001&RemoteIP=10.1.2.3&SessionType=login&ProfileID=42&Message=benchmark"

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, "errors_timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
