-- wrk script for POST /v1/ingest: every event gets a unique id, every answer is counted.
--
-- wrk -s bench/wrk/ingest.lua URL -- <api key> <events per request> <run id> [path]
-- Each thread numbers its own requests; ids are "<run id>-<thread>-<request>-<n>", so no two
-- events of a run share an id and every 202 accepts the whole request. done() prints one line,
-- "WRK_RESULT {json}", that the benchmark reads: answers by status and the events accepted.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  key = args[1]
  per_request = tonumber(args[2] or "1")
  run_id = args[3] or "run"
  path = args[4] or "/v1/ingest"
  sent = 0
  accepted = 0
  statuses = {}
  prefix = run_id .. "-" .. tostring(tid) .. "-"
  headers = { ["X-API-Key"] = key, ["Content-Type"] = "application/json" }
end

local fmt = string.format
local concat = table.concat

function request()
  sent = sent + 1
  local body
  if per_request == 1 then
    body = fmt('{"id":"%s%d","type":"page_view","properties":{"path":"/pricing","plan":"pro","n":%d}}',
      prefix, sent, sent)
  else
    local parts = {}
    for n = 1, per_request do
      parts[n] = fmt('{"id":"%s%d-%d","type":"%s","properties":{"path":"/pricing/%d","plan":"pro"}}',
        prefix, sent, n, (n % 5 == 0) and "signup" or "page_view", n)
    end
    body = '{"events":[' .. concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 202 or status == 200 then
    local n = string.match(body, '"accepted":(%d+)')
    if n then accepted = accepted + tonumber(n) end
  end
end

function done(summary, latency, requests)
  local total_accepted = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total_accepted = total_accepted + thread:get("accepted")
    for status, n in pairs(thread:get("statuses")) do
      by_status[status] = (by_status[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(by_status) do
    table.insert(parts, fmt('"%d":%d', status, n))
  end
  io.write(fmt('WRK_RESULT {"accepted":%d,"requests":%d,"duration_us":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"max":%d}}\n',
    total_accepted, summary.requests, summary.duration, concat(parts, ","),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
