-- wrk script: replays pre-built signed callbacks (one per line: "path?query<TAB>body") so every
-- request carries a unique MsgId. Each wrk thread takes every n-th line.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  local file = assert(io.open(os.getenv("LOAD_FILE"), "r"))
  -- NEW_CONNECTIONS=1: every request on a connection of its own, as from a platform that does
  -- not keep connections alive.
  local headers = { ["Content-Type"] = "application/xml" }
  if os.getenv("NEW_CONNECTIONS") == "1" then
    headers["Connection"] = "close"
  end
  reqs = {}
  local n = 0
  for line in file:lines() do
    if n % nthreads == tid then
      local path, body = line:match("^([^\t]+)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", path, headers, body)
    end
    n = n + 1
  end
  file:close()
  idx = 0
end

function request()
  idx = idx + 1
  if idx > #reqs then
    idx = 1 -- wrapped: from here on requests are retries (deduplicated)
  end
  return reqs[idx]
end
