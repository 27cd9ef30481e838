-- wrk script for POST /v1/ingest: unique event ids, a flood of fixed length, every answer counted.
--
-- wrk -d<flood + grace>s -s bench/wrk/ingest.lua URL -- <api key> <events per request> <run id> <flood seconds> [persons]
--
-- Ids are "<run id>-<thread>-<request>-<n>", so no two events of a run share one and every 202
-- accepts the whole request. Each thread sends for <flood seconds>, then idles (delay()), so
-- every request sent is answered before wrk stops: the 202s counted here are exactly what the
-- server accepted. Times come from CLOCK_MONOTONIC, the clock of Python's time.monotonic().
-- done() prints one line, "WRK_RESULT {json}", that bench/run.py reads.
--
-- With "persons" (batches only), the events name persons as bench/loader.py's do: of every 20,
-- 16 a user_id, 3 an anonymous_id only, 1 nobody; each request's events come from 10 persons of
-- the thread's pool of 50,000 (so the hour's sketches soon hold more persons than they keep
-- exactly, as a busy project's do).
--
-- Every batch event carries the values of the two dimensions the data set declares (bench/loader.py):
-- "plan" (3 values) and "context.page.path" (50 values), whether or not its project declares
-- them, so that the floods differ only by persons and by the project's declarations.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec[1]")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts[0].tv_sec) + tonumber(ts[0].tv_nsec) / 1e9
end

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
  flood = tonumber(args[4] or "10")
  persons = args[5] == "persons"
  plans = { "free", "pro", "enterprise" }
  sent = 0
  answered = 0
  accepted = 0
  statuses = {}
  first = now()
  deadline = first + flood
  last = first
  prefix = run_id .. "-" .. tostring(tid) .. "-"
  headers = { ["X-API-Key"] = key, ["Content-Type"] = "application/json" }
end

local fmt = string.format
local concat = table.concat
-- A batch event's properties: a path, a plan, a page path (the declared dimensions' values).
local props = '{"path":"/pricing/%d","plan":"%s","context":{"page":{"path":"/page-%d"}}}}'

function delay()
  if now() >= deadline then
    return 3600000
  end
  return 0
end

function request()
  sent = sent + 1
  local body
  if per_request == 1 then
    body = fmt('{"id":"%s%d","type":"page_view","properties":{"path":"/pricing","plan":"pro","n":%d}}',
      prefix, sent, sent)
  elseif persons then
    local parts = {}
    for n = 1, per_request do
      local kind = n % 20
      local person = (sent * 10 + n % 10) % 50000
      local who
      if kind == 0 then
        who = ""
      elseif kind <= 3 then
        who = fmt(',"anonymous_id":"anon-%d-%x"', tid, person)
      else
        who = fmt(',"user_id":"user-%d-%d"', tid, person)
      end
      parts[n] = fmt('{"id":"%s%d-%d","type":"%s"%s,"properties":' .. props,
        prefix, sent, n, (n % 5 == 0) and "signup" or "page_view", who, n, plans[n % 3 + 1],
        (sent + n) % 50)
    end
    body = '{"events":[' .. concat(parts, ",") .. ']}'
  else
    local parts = {}
    for n = 1, per_request do
      parts[n] = fmt('{"id":"%s%d-%d","type":"%s","properties":' .. props,
        prefix, sent, n, (n % 5 == 0) and "signup" or "page_view", n, plans[n % 3 + 1],
        (sent + n) % 50)
    end
    body = '{"events":[' .. concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  last = now()
  statuses[status] = (statuses[status] or 0) + 1
  if status == 202 or status == 200 then
    local n = string.match(body, '"accepted":(%d+)')
    if n then accepted = accepted + tonumber(n) end
  end
end

function done(summary, latency, requests)
  local total_accepted, total_sent, total_answered = 0, 0, 0
  local first_at, last_at = math.huge, 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total_accepted = total_accepted + thread:get("accepted")
    total_sent = total_sent + thread:get("sent")
    total_answered = total_answered + thread:get("answered")
    first_at = math.min(first_at, thread:get("first"))
    last_at = math.max(last_at, thread:get("last"))
    for status, n in pairs(thread:get("statuses")) do
      by_status[status] = (by_status[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(by_status) do
    table.insert(parts, fmt('"%d":%d', status, n))
  end
  io.write(fmt('WRK_RESULT {"accepted":%d,"sent":%d,"requests":%d,"first":%.6f,"last":%.6f,' ..
    '"statuses":{%s},"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"max":%d}}\n',
    total_accepted, total_sent, total_answered, first_at, last_at, concat(parts, ","),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
