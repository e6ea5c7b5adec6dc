-- spec/integration/graph_svg_spec.lua — `weft graph FILE.lua --format svg`
-- run as a child process on an example workflow: an inline-ready SVG on
-- stdout, one node group per executor, nothing on stderr; a bad --format is
-- a usage error naming the accepted formats; the help lists svg.
local procs = require "support.procs"

local SRC = os.getenv("WEFT_SOURCE_DIR") or "."

-- Run `weft ARGS...`: status, stdout, stderr.
local function weft(...)
  return procs.run({ procs.weft_bin(), ... }, nil, 60)
end

describe("weft graph --format svg", function()
  it("prints the example's graph as SVG: one node group per executor, edges labelled", function()
    local rc, out, err = weft("graph", SRC .. "/examples/branching.lua", "--format", "svg")
    assert.are.equal("", err)
    assert.are.equal(0, rc)
    assert.matches("^<svg class=\"weft%-graph\"", out)
    assert.matches("</svg>\n$", out)
    assert.is_nil(out:find("<?xml", 1, true))
    local execs = {}
    for id in out:gmatch("<g id=\"wfn_[%w_]+\" class=\"node [^\"]*\" data%-executor=\"([^\"]*)\">") do
      execs[#execs + 1] = id
    end
    table.sort(execs)
    assert.are.same({ "analyse", "count_letters", "count_vowels", "count_words", "intake", "reject",
      "render", "report", "reverse", "shorten", "title", "upper" }, execs)
    for _, label in ipairs({ "case 1: empty", "too_long", "short_enough", "fan&#45;out", "fan&#45;in", "select" }) do
      assert.is_truthy(out:find(">" .. label .. "</text>", 1, true), label)
    end
    assert.is_truthy(out:find('<g id="wfn_intake" class="node worker start" data-executor="intake">', 1, true))
  end)

  it("refuses another format with a usage error naming the accepted ones", function()
    local rc, out, err = weft("graph", SRC .. "/examples/branching.lua", "--format", "png")
    assert.are.equal(2, rc)
    assert.are.equal("", out)
    assert.matches("option %-%-format: 'png' is not one of mermaid|dot|svg", err)
    assert.matches("usage: weft graph FILE.lua %[%-%-format mermaid|dot|svg%]", err)
  end)

  it("lists svg in its help", function()
    local rc, out = weft("help", "graph")
    assert.are.equal(0, rc)
    assert.matches("%-%-format mermaid|dot|svg", out)
    assert.matches("svg lays the graph out with Graphviz", out)
  end)
end)
