-- wrk script: GET with a bearer token, rotating through the tokens in a file (one per line), from an offset.
-- Usage: wrk -s bench/tokens.lua URL -- TOKENS_FILE OFFSET   (no file: no Authorization header)
local tokens = {}
local i = 0

function init(args)
  if args[1] ~= nil and args[1] ~= "" then
    for line in io.lines(args[1]) do
      if line ~= "" then tokens[#tokens + 1] = line end
    end
  end
  i = tonumber(args[2] or "0") or 0
end

function request()
  if #tokens == 0 then
    return wrk.format("GET")
  end
  local token = tokens[(i % #tokens) + 1]
  i = i + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
end
