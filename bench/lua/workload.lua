-- One wrk script for every system and workload, configured by the harness through
-- the environment:
--   BENCH_SYSTEM    keel | ceiling | pocketbase   (URL shapes and bodies differ)
--   BENCH_WORKLOAD  get | list | authlist | create | update | mixed | gql-get | gql-list
--                   | gql-screen | rest-screen
--                   (gql-*: Keel only, the GraphQL twins of get and list, same fields;
--                   *-screen: Keel only, one screen of posts with author and comments)
--   BENCH_TOKEN     bearer token of the benchmark user (the ceiling: the user id)
--   BENCH_USER      the benchmark user's id (PocketBase wants it in the body)
--   BENCH_IDS       file of readable post ids (get, mixed)
--   BENCH_OWN_IDS   file of the benchmark user's post ids (update, mixed)
--   BENCH_SCREEN_IDS file of the nested screen's 10 post ids (rest-screen: their comments)
-- done() prints one line "BENCH_RESULT {json}" that the harness parses.

local system = os.getenv("BENCH_SYSTEM") or "keel"
local workload = os.getenv("BENCH_WORKLOAD") or "get"
local token = os.getenv("BENCH_TOKEN") or ""
local user = os.getenv("BENCH_USER") or ""

local function read_lines(path)
  local out = {}
  if path == nil or path == "" then return out end
  local f = io.open(path, "r")
  if f == nil then return out end
  for line in f:lines() do
    if #line > 0 then out[#out + 1] = line end
  end
  f:close()
  return out
end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  threads[#threads + 1] = thread
end

local ids, own, screen = {}, {}, {}
local versions = {}
local i_read, i_own = 0, 0
local seq = 0
local auth_header

function init(args)
  ids = read_lines(os.getenv("BENCH_IDS"))
  screen = read_lines(os.getenv("BENCH_SCREEN_IDS"))
  local all_own = read_lines(os.getenv("BENCH_OWN_IDS"))
  -- Each thread updates its own slice of the user's posts, round-robin, so no two
  -- requests in flight touch one record and the If-Match version is known here.
  local n = tonumber(os.getenv("BENCH_THREADS") or "1")
  local t = tid or 1
  for k = 1, #all_own do
    if (k - 1) % n == t - 1 then own[#own + 1] = all_own[k] end
  end
  math.randomseed(t * 7919 + os.time())
  i_read = math.random(1, math.max(#ids, 1))
  if system == "pocketbase" then
    auth_header = token
  else
    auth_header = "Bearer " .. token
  end
end

local prefix = "/v1/posts"
if system == "pocketbase" then prefix = "/api/collections/posts/records" end

local list_path
if system == "keel" then
  list_path = "/v1/posts?filter=visibility%20%3D%3D%20%22public%22&sort=-created_at&limit=20"
elseif system == "ceiling" then
  list_path = "/v1/posts?visibility=public"
else
  list_path = prefix .. "?filter=(visibility%3D'public')&sort=-created&perPage=20&skipTotal=1"
end

local authlist_path
if system == "keel" then
  authlist_path = "/v1/posts?limit=20"
elseif system == "ceiling" then
  authlist_path = "/v1/posts"
else
  authlist_path = prefix .. "?sort=-created&perPage=20&skipTotal=1"
end

local body_text = string.rep("Benchmark body text. ", 10)

local function get()
  i_read = i_read % #ids + 1
  return wrk.format("GET", prefix .. "/" .. ids[i_read], {})
end

local function list()
  return wrk.format("GET", list_path, {})
end

local function authlist()
  return wrk.format("GET", authlist_path, { ["Authorization"] = auth_header })
end

local function create()
  seq = seq + 1
  local body
  if system == "pocketbase" then
    body = string.format('{"title":"bench %d","body":"%s","visibility":"public","author":"%s"}',
      seq, body_text, user)
  else
    body = string.format('{"title":"bench %d","body":"%s","visibility":"public"}', seq, body_text)
  end
  return wrk.format("POST", prefix, {
    ["Authorization"] = auth_header,
    ["Content-Type"] = "application/json",
  }, body)
end

local function update()
  i_own = i_own % #own + 1
  local id = own[i_own]
  local v = versions[id] or 1
  versions[id] = v + 1
  seq = seq + 1
  local body = string.format('{"title":"updated %d"}', seq)
  return wrk.format("PATCH", prefix .. "/" .. id, {
    ["Authorization"] = auth_header,
    ["Content-Type"] = "application/json",
    ["If-Match"] = '"' .. v .. '"',
  }, body)
end

-- GraphQL: the same records and fields REST answers (a ref is `author_id` there).
local gql_fields = "id created_at updated_at version title body author_id visibility"

local function graphql(body)
  return wrk.format("POST", "/graphql", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/graphql-response+json",
  }, body)
end

local function gql_get()
  i_read = i_read % #ids + 1
  return graphql('{"query":"query($id: String!) { posts_by_id(id: $id) { ' .. gql_fields ..
    ' } }","variables":{"id":"' .. ids[i_read] .. '"}}')
end

local gql_list_body = '{"query":"query($f: String) { posts(filter: $f, sort: \\"-created_at\\", limit: 20) { items { ' ..
  gql_fields .. [[ } next_cursor } }","variables":{"f":"visibility == \"public\""}}]]

local function gql_list()
  return graphql(gql_list_body)
end

-- The nested screen: the 10 newest public posts not by the benchmark user, each with
-- its author and its 5 newest comments. GraphQL: one query. REST: the list with
-- `expand=author`, then one comments list per post (11 calls; screens/s = req/s / 11).
local function url_encode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local screen_filter = 'visibility == "public" && author != "' .. user .. '"'

local gql_screen_body = '{"query":"query($f: String) { posts(filter: $f, sort: \\"-created_at\\", limit: 10) ' ..
  '{ items { id title body created_at author { id name } ' ..
  'comments(sort: \\"-created_at\\", limit: 5) { items { id body created_at author_id } } } } }",' ..
  '"variables":{"f":"visibility == \\"public\\" && author != \\"' .. user .. '\\""}}'

local function gql_screen()
  return wrk.format("POST", "/graphql", {
    ["Authorization"] = auth_header,
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/graphql-response+json",
  }, gql_screen_body)
end

local i_screen = 0

local function rest_screen()
  local k = i_screen % (#screen + 1)
  i_screen = i_screen + 1
  local path
  if k == 0 then
    path = "/v1/posts?filter=" .. url_encode(screen_filter) .. "&sort=-created_at&limit=10&expand=author"
  else
    path = "/v1/comments?filter=" .. url_encode('post == "' .. screen[k] .. '"') .. "&sort=-created_at&limit=5"
  end
  return wrk.format("GET", path, { ["Authorization"] = auth_header })
end

local function mixed()
  -- 90% reads (2/3 get by id, 1/3 the rule-filtered list), 10% writes (half creates,
  -- half updates), signed in throughout.
  local r = math.random(100)
  if r <= 60 then
    i_read = i_read % #ids + 1
    return wrk.format("GET", prefix .. "/" .. ids[i_read], { ["Authorization"] = auth_header })
  elseif r <= 90 then
    return authlist()
  elseif r <= 95 then
    return create()
  else
    return update()
  end
end

-- wrk calls request() once on the first thread before the run, to check it, and never
-- sends that request: the first update of thread 1 must not count.
local verified = false

local function update_checked()
  if not verified then
    verified = true
    if tid == nil or tid == 1 then
      local saved_i, saved_seq = i_own, seq
      local r = update()
      local id = own[i_own]
      versions[id] = versions[id] - 1
      i_own, seq = saved_i, saved_seq
      return r
    end
  end
  return update()
end

local dispatch = {
  get = get, list = list, authlist = authlist,
  create = create, update = update_checked, mixed = mixed,
  ["gql-get"] = gql_get, ["gql-list"] = gql_list,
  ["gql-screen"] = gql_screen, ["rest-screen"] = rest_screen,
}
local make = dispatch[workload] or get

function request()
  return make()
end

-- A stale If-Match (412) carries the current version in its ETag and the record in
-- `instance`: learn it, so one miscount costs one request, not every later one.
if workload == "update" or workload == "mixed" then
  function response(status, headers, body)
    if status == 412 then
      local etag = headers["etag"] or headers["ETag"] or headers["Etag"]
      local id = body and string.match(body, '"instance":"[^"]-/([^"/]+)"')
      if etag and id then
        versions[id] = tonumber(string.match(etag, "%d+"))
      end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
