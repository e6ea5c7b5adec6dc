--- Built-in orchestrator: runs another workflow as one step.
-- Input: anything (or `{input = ..., task_id = ...}` with `unwrap = true`);
-- sends `{outputs, superstep_count, duration_ms, success, error, task_id}`.
-- With `fail_on_error = true` a failed inner run fails this invocation.
-- Uses weft.
local weft = require "weft"

local type, error = type, error

--- Create the executor: `sub_workflow(id, workflow, {unwrap, fail_on_error,
-- max_supersteps})`.
return function(id, wf, opts)
  opts = opts or {}
  if not weft.is_workflow(wf) then
    error(("sub_workflow '%s': expects a built workflow"):format(tostring(id)), 2)
  end
  return weft.executor(id, {
    kind = "orchestrator",
    description = "runs workflow '" .. wf.name .. "'",
    handle = function(msg, ctx)
      local input, task_id = msg, nil
      if opts.unwrap and type(msg) == "table" then input, task_id = msg.input, msg.task_id end
      local res = wf:run(input, { max_supersteps = opts.max_supersteps })
      if opts.fail_on_error and res.status ~= "completed" then
        error(("sub-workflow '%s' %s: %s"):format(wf.name, res.status, tostring(res.error)), 0)
      end
      ctx:send({
        outputs = weft.json.array(res.outputs), superstep_count = res.supersteps,
        duration_ms = res.duration_ms, success = res.status == "completed",
        error = res.error, task_id = task_id,
      })
    end,
  })
end
