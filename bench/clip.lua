-- wrk script: GET random requests of one kind from a title at PATH.
--   KIND=clip:    PATH?start=S&end=S+CLIP_SECS, S random in [0, TITLE_SECS - CLIP_SECS) (whole seconds;
--                 the same query for zerocast and nginx's mp4 module)
--   KIND=segment: PATH/hls/N.m4s, N random in [0, SEGMENTS)
--   KIND=range:   PATH with a random Range of RANGE_SIZE bytes of the FILE_LEN-byte title
-- No response() callback: with one, wrk hands every body to Lua, and a 200 MB clip then costs
-- the client more than the server. Errors show as wrk's "Non-2xx or 3xx responses".
local path = os.getenv("PATH_TO_GET")
local kind = os.getenv("KIND") or "clip"
local clip = tonumber(os.getenv("CLIP_SECS") or "600")
local title = tonumber(os.getenv("TITLE_SECS") or "0")
local segments = tonumber(os.getenv("SEGMENTS") or "1")
local size = tonumber(os.getenv("RANGE_SIZE") or "1048576")
local len = tonumber(os.getenv("FILE_LEN") or "0")
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function request()
  if kind == "range" then
    local off = math.random(0, len - size - 1)
    return wrk.format("GET", path, { ["Range"] = "bytes=" .. off .. "-" .. (off + size - 1) })
  end
  if kind == "segment" then
    return wrk.format("GET", path .. "/hls/" .. math.random(0, segments - 1) .. ".m4s")
  end
  local s = math.random(0, math.floor(title - clip) - 1)
  return wrk.format("GET", path .. "?start=" .. s .. "&end=" .. (s + clip))
end
