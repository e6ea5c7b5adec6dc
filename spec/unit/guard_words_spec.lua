-- spec/unit/guard_words_spec.lua — weft.guard.words (docs/guardrails.md,
-- "Built-in detectors"): whole words ignoring case in UTF-8 text (Latin,
-- Greek, Cyrillic folding), phrases, zero-width characters, leet reading
-- when asked, word-list files with comments, the guard's mask and block
-- verdicts without the words, option errors, and 1 MB of text.
local weft = require "weft"
local words = require "weft.guard.words"
local files = require "support.files"
local h = require "helpers"

-- The matched substrings of text for list (and opts).
local function matched(text, list, opts)
  local m = words.compile(list or words.DEFAULT, opts)
  local out = {}
  for i, f in ipairs(words.find(text, m)) do out[i] = text:sub(f.first, f.last) end
  return out
end

describe("weft.guard.words", function()
  describe("find", function()
    it("matches whole words ignoring case, never inside other words", function()
      assert.same({ "FUCK" }, matched("What the FUCK is this"))
      assert.same({}, matched("Scunthorpe, shitake, assessment, cocktail, classic"))
      assert.same({ "shit" }, matched("bull-shit"))
      assert.same({ "shit" }, matched("damn\226\128\148shit\226\128\148again")) -- em dashes
      assert.same({ "merde" }, matched("\194\171merde\194\187"))              -- « »
    end)

    it("folds the case of accented, Greek and Cyrillic letters", function()
      assert.same({ "SCHEISSE", "Scheiße", "ARSCHLÖCHER" }, matched("SCHEISSE und Scheiße, ARSCHLÖCHER"))
      assert.same({ "CABRÓN" }, matched("¡CABRÓN!"))
      assert.same({ "ДУРАК", "дурак" }, matched("ДУРАК и дурак, дураки", { "дурак" }))
      assert.same({ "ΒΛΑΚΑΣ" }, matched("ΒΛΑΚΑΣ!", { "βλακας" }))
      assert.same({ "ŁAJDAK" }, matched("ŁAJDAK", { "łajdak" }))
      assert.same({ { first = 5, last = 9 } }, words.find("say Hello", { "hello" })) -- a plain list
    end)

    it("matches phrases, the longest first", function()
      assert.same({ "son of a bitch" }, matched("you son of a bitch!"))
      assert.same({}, matched("son of a gun"))
      assert.same({ "Hijo de puta" }, matched("Hijo de puta"))
    end)

    it("sees through zero-width characters and emoji next to a word", function()
      assert.same({ "f\226\128\139uck" }, matched("f\226\128\139uck that"))
      assert.same({ "fuck" }, matched("fuck\240\159\152\128"))
    end)

    it("reads leet spellings only when asked", function()
      assert.same({}, matched("sh1t happens, 5hit, $hit"))
      assert.same({ "sh1t", "5hit", "$hit" }, matched("sh1t happens, 5hit, $hit", nil, { leet = true }))
      assert.same({ "b1tch" }, matched("b1tch", nil, { leet = true }))
    end)

    it("scans 1 MB of text in one pass", function()
      local line = "A normal sentence about deployments, and then shit happened. "
      local n = math.floor(1048576 / #line)
      local t0 = os.clock()
      local f = words.find(line:rep(n), words.compile(words.DEFAULT, { leet = true }))
      print(("\n1 MB (%d bytes): %d words, %.3f s"):format(#line * n, #f, os.clock() - t0))
      assert.equal(n, #f)
    end)
  end)

  describe("load", function()
    it("reads one word or phrase per line with # comments", function()
      local dir = files.tempdir("gbwords")
      local path = dir .. "/list.txt"
      files.write(path, "\239\187\191# banned words\nfoo\n  Bar baz  # a phrase\n\n#quux\nqüx\n")
      assert.same({ "foo", "Bar baz", "qüx" }, words.load(path))
      local nope = words.load(dir .. "/missing.txt")
      assert.is_nil(nope)
      local _, err = words.load(dir .. "/missing.txt")
      assert.mentions("missing.txt", err)
      files.remove(dir)
    end)
  end)

  describe("new", function()
    it("masks listed words and gives counts only", function()
      local g = weft.guard.words {}
      assert.is_true(weft.guard.is_guard(g))
      assert.same({ action = "modify", value = "oh ***, *** hell", reason = "2 listed words masked" },
                  g:check("oh shit, FUCKING hell", {}))
      assert.is_nil(g:check("all good here", {}))
    end)

    it("blocks with a reason that does not hold the word", function()
      local g = words.new { list = { "secret project" }, action = "block" }
      local v = g:check("about the Secret  Project", {})
      assert.same({ action = "block", reason = "1 listed word found" }, v)
    end)

    it("reads its list from a file and takes a mask", function()
      local dir = files.tempdir("gbwords")
      files.write(dir .. "/w.txt", "# ours\nfrobnicate\n")
      local g = words.new { file = dir .. "/w.txt", mask = "[X]" }
      assert.equal("do not [X] it", g:check("do not Frobnicate it", {}).value)
      files.remove(dir)
    end)

    it("raises on bad options naming them", function()
      assert.mentions("did you mean 'action'", h.error_of(words.new, { acton = "block" }))
      assert.mentions("list or file, not both", h.error_of(words.new, { list = { "a" }, file = "x" }))
      assert.mentions("/nonexistent/w.txt", h.error_of(words.new, { file = "/nonexistent/w.txt" }))
      assert.mentions("list[2] must be a string", h.error_of(words.new, { list = { "a", 3 } }))
      assert.mentions("is empty", h.error_of(words.new, { list = { "  ", "..." } }))
    end)
  end)
end)
