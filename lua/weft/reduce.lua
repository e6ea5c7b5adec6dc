--- State reducers: `function(acc, value, fresh) return new end`, folding the
-- writes of one superstep into a key (acc is nil for the first write). They
-- never mutate a committed acc: readers of the previous snapshot may still
-- hold it. `fresh` is true when acc is the reducer's own output for an
-- earlier write of the same commit, which nobody else holds: then it may be
-- updated in place (append, concat and merge do, so that n writes cost n,
-- not n²).
local _M = {}

local type, error = type, error

-- A shallow copy of the list part of t (nil gives an empty list).
local function copy_list(t)
  local out, n = {}, 0
  if t ~= nil then
    if type(t) ~= "table" then error("reducer: accumulated value is not a list", 2) end
    n = #t
    for i = 1, n do out[i] = t[i] end
  end
  return out, n
end

-- acc itself when fresh (this commit's own list), else a copy; and its length.
local function own_list(acc, fresh)
  if fresh then return acc, #acc end
  return copy_list(acc)
end

--- Append value to the list acc.
function _M.append(acc, v, fresh)
  local out, n = own_list(acc, fresh)
  out[n + 1] = v
  return out
end

--- Concatenate the list v to the list acc.
function _M.concat(acc, v, fresh)
  if type(v) ~= "table" then error("weft.reduce.concat: value must be a list", 2) end
  local out, n = own_list(acc, fresh)
  for i = 1, #v do out[n + i] = v[i] end
  return out
end

--- Shallow-merge table v into a copy of table acc (v's keys win).
function _M.merge(acc, v, fresh)
  if type(v) ~= "table" then error("weft.reduce.merge: value must be a table", 2) end
  local out = fresh and acc or {}
  if acc ~= nil and not fresh then
    if type(acc) ~= "table" then error("weft.reduce.merge: accumulated value is not a table", 2) end
    for k, x in pairs(acc) do out[k] = x end
  end
  for k, x in pairs(v) do out[k] = x end
  return out
end

--- Add numbers (acc starts at 0).
function _M.sum(acc, v)
  if type(v) ~= "number" then error("weft.reduce.sum: value must be a number", 2) end
  return (acc or 0) + v
end

--- Keep the larger number.
function _M.max(acc, v)
  if acc == nil or v > acc then return v end
  return acc
end

--- Keep the smaller number.
function _M.min(acc, v)
  if acc == nil or v < acc then return v end
  return acc
end

return _M
