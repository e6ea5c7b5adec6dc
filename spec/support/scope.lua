--- spec/support/scope.lua — what a spec file undoes after each test, last
-- first (busted keeps one `finally` per test; this keeps them all):
--
--     local scope = require("support.scope")(after_each)
--     scope.later(function() srv:stop() end)   -- run after this test
--     local dir = scope.tmpdir()               -- removed after this test
--
-- Call it once per spec file, with that file's after_each (busted gives
-- it to the spec file only).
local files = require "support.files"

return function(after_each)
  local undo = {}
  after_each(function()
    for i = #undo, 1, -1 do undo[i]() end
    undo = {}
  end)
  local s = {}
  --- Run fn after the current test (the last registered first).
  function s.later(fn) undo[#undo + 1] = fn end
  --- A private temp dir, removed after the current test.
  function s.tmpdir()
    local dir = files.tempdir()
    s.later(function() files.remove(dir) end)
    return dir
  end
  return s
end
