--- weft.std: built-in executors written against the public API.
-- `std.llm_generator(id, opts)`, `std.compile_validator(id, opts)`,
-- `std.test_validator(id, opts)`, `std.code_assembler(id, opts)`,
-- `std.sub_workflow(id, wf, opts)`.
local _M = {}

--- Executor generating code with an LLM (see weft.std.llm_generator).
_M.llm_generator = require "weft.std.llm_generator"
--- Validator compiling code in the sandbox.
_M.compile_validator = require "weft.std.compile_validator"
--- Validator running tests against code in the sandbox.
_M.test_validator = require "weft.std.test_validator"
--- Executor assembling code parts.
_M.code_assembler = require "weft.std.code_assembler"
--- Orchestrator running a nested workflow.
_M.sub_workflow = require "weft.std.sub_workflow"

return _M
