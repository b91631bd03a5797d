-- wrk script: POST a batch of 100 session events per request as the Python
-- client sends them (NDJSON, each with its MessageID and an epoch-ms
-- Timestamp, the request with Track-Sent-At), but not gzipped: the
-- collector's side of the client's batches without the client.
local thread_id = 0
function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
local count = 0
local prefix = string.format("%08x%08x", math.random(0, 0x7fffffff), os.time())
function request()
  count = count + 1
  local now = os.time() * 1000
  local lines = {}
  for i = 1, 100 do
    lines[i] = string.format(
      '{"type":"session","Region":"eu","SessionID":"w%d-%d","RemoteIP":"10.0.0.1","SessionType":"bench",' ..
      '"MessageID":"%s%s-%x-%x","Timestamp":%d}', count, i, prefix, tostring(tid), count, i, now)
  end
  return wrk.format("POST", "/api/1.0/track/batch/",
    {["Content-Type"] = "application/x-ndjson", ["Track-Sent-At"] = tostring(now)}, table.concat(lines, "\n"))
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")
