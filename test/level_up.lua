-- wrk script: POST one level_up event (a kind declared with --events, six
-- fields) per request, in the form body session.lua uses for session.
wrk.method = "POST"
wrk.path = "/api/1.0/track/level_up/"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "PlayerID=123456&Level=42&Class=mage&Zone=north-east&Reward=12.5&Hardcore=false"

-- The done() reporter lives beside this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")
