-- examples/pocketflow/nested_batch.lua — PocketFlow's cookbook
-- "pocketflow-nested-batch" ported to weft.flow: grade averages per
-- student, per class and for the school, with a BatchFlow (one run per
-- class) around a BatchFlow (one run per student) around a two-node flow;
-- the params of the outer batch reach the inner one and its nodes.
--
--   weft run examples/pocketflow/nested_batch.lua                      # the sample school
--   weft run examples/pocketflow/nested_batch.lua --input-json '{"school": {"class_c": {"ann": [9, 10]}}}'
--
-- Graph (as in the cookbook):
--   school (BatchFlow: {class}) -> class (BatchFlow: {student}) -> load -(calculate)-> average
--
-- What changed in the port (docs/agents.md, "Porting PocketFlow code"):
-- `self.params["class"]` is `node.params.class` (the node argument every
-- phase gets last); the subclasses ClassBatchFlow and SchoolBatchFlow are
-- flow.BatchFlow tables with their own prep and post; the grades come from
-- shared.school (class -> student -> grades) instead of files under
-- school/, and classes and students are taken in name order (os.listdir
-- has none, and a sum in name order gives the same float every run); the
-- averages go to shared instead of being printed.
--
-- Output: the shared table {school, results = {class -> {student ->
-- average}}, class_averages = {class -> average}, school_average}.
local flow = require "weft.flow"

-- The cookbook's sample data.
local SAMPLE = {
  class_a = { student1 = { 7.5, 8.0, 9.0 }, student2 = { 8.5, 7.0, 9.5 } },
  class_b = { student3 = { 6.5, 8.5, 7.0 }, student4 = { 9.0, 9.5, 8.0 } },
}

-- The keys of t in order.
local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- The mean of a list of numbers.
local function mean(xs)
  local sum = 0
  for _, x in ipairs(xs) do sum = sum + x end
  return sum / #xs
end

-- LoadGrades: the grades of the student named by the params.
local load = flow.Node{
  name = "load",
  prep = function(shared, node) return shared.school[node.params.class][node.params.student] end,
  exec = function(grades)
    if type(grades) ~= "table" or #grades == 0 then error("no grades", 0) end
    return grades
  end,
  post = function(shared, _, grades) shared.grades = grades; return "calculate" end,
}

-- CalculateAverage: the student's average, stored under class and student.
local average = flow.Node{
  name = "average",
  prep = function(shared) return shared.grades end,
  exec = function(grades) return mean(grades) end,
  post = function(shared, _, avg, node)
    shared.results = shared.results or {}
    local class = node.params.class
    shared.results[class] = shared.results[class] or {}
    shared.results[class][node.params.student] = avg
    return "default"
  end,
}

load:on("calculate", average)   -- load - "calculate" >> calc

-- ClassBatchFlow: one run of the student flow per student of params.class.
local class_flow = flow.BatchFlow{
  name = "class", start = flow.Flow{ name = "student", start = load },
  prep = function(shared, node)
    local sets = {}
    for i, student in ipairs(sorted_keys(shared.school[node.params.class])) do sets[i] = { student = student } end
    return sets
  end,
  post = function(shared, _, _, node)
    local class = node.params.class
    local grades = {}
    for _, student in ipairs(sorted_keys(shared.results[class])) do grades[#grades + 1] = shared.results[class][student] end
    shared.class_averages = shared.class_averages or {}
    shared.class_averages[class] = mean(grades)
    return "default"
  end,
}

-- SchoolBatchFlow: one run of the class flow per class.
local school_flow = flow.BatchFlow{
  name = "school", start = class_flow,
  prep = function(shared)
    shared.school, shared.input = shared.school or SAMPLE, nil
    local sets = {}
    for i, class in ipairs(sorted_keys(shared.school)) do sets[i] = { class = class } end
    return sets
  end,
  post = function(shared)
    local all, results = {}, shared.results or {}
    for _, class in ipairs(sorted_keys(results)) do
      for _, student in ipairs(sorted_keys(results[class])) do all[#all + 1] = results[class][student] end
    end
    shared.grades = nil
    shared.school_average = #all > 0 and mean(all) or nil
    return "default"
  end,
}

return school_flow:as_workflow("pocketflow_nested_batch")
