-- wrk script: POST one session event per request, report JSON at the end.
wrk.method = "POST"
wrk.path = "/api/1.0/track/session/"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "Region=eu&SessionID=bench-session-0001&RemoteIP=10.1.2.3&SessionType=login&ProfileID=42&Message=benchmark"

-- The done() reporter lives beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")
