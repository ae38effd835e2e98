-- wrk script: GET random byte ranges of RANGE_SIZE bytes from a FILE_LEN-byte title at PATH.
-- A whole-file GET when RANGE_SIZE is 0.
local path = os.getenv("PATH_TO_GET")
local size = tonumber(os.getenv("RANGE_SIZE") or "1048576")
local len = tonumber(os.getenv("FILE_LEN"))
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function request()
  if size == 0 then
    return wrk.format("GET", path)
  end
  local off = math.random(0, len - size - 1)
  return wrk.format("GET", path, { ["Range"] = "bytes=" .. off .. "-" .. (off + size - 1) })
end

function response(status, headers, body)
  if status ~= 206 and status ~= 200 then
    error("unexpected status " .. status)
  end
end
