# spec/tests.cmake — ctest wiring, included by the root CMakeLists.txt:
#   * the C unit tests of spec/c/ (spec/c/tests.cmake);
#   * one test per busted spec file, spec/unit/*_spec.lua and
#     spec/integration/*_spec.lua, named spec_<dir>_<name>, each run by this
#     build's weft executable (`weft exec /usr/bin/busted ...`);
#   * embed_plain_luajit: a plain `luajit` requires "weft" through
#     LUA_PATH/LUA_CPATH (lib/weft/core.so) and runs a tiny workflow;
#   * asan_suite, when WEFT_ASAN_DIR names a configured+built ASan build tree
#     (scripts/test.sh passes it to the release build): that tree's whole
#     ctest suite — C tests and specs run by the ASan weft — as one test.
#
# ASan notes (LuaJIT in an instrumented executable):
#   * LuaJIT allocates its heap with its own mmap-based allocator, which
#     LeakSanitizer neither tracks nor scans; leaks are only found in malloc
#     memory (our C side), and only if the process ends through
#     lua_close(): main.c always closes the state, and busted under
#     `weft exec` ends by returning (or raising error() on failures), not by
#     os.exit, so a normal end reaches it. A script that ends with
#     os.exit(n) skips lua_close and LSan may then report C memory still
#     owned by Lua objects: use os.exit(n, true), which closes the state.
#   * A plain luajit cannot dlopen an ASan-instrumented core.so (the ASan
#     runtime must come first), so embed_plain_luajit exists only in
#     non-sanitized builds.
#   * asan_leak_canary (ASan tree only) leaks on purpose and passes only if
#     LeakSanitizer reports it, so a silently disabled leak check shows.
#   * The registry-ref check of runtime/lua/lua_rt.c (WEFT_DEBUG_REFS, on in
#     sanitized builds) aborts a process whose Lua state closes with a ref
#     still taken, so the spec or C test that leaked it fails;
#     asan_ref_canary (ASan tree only) proves the check is compiled in.
#
# Packaging: spec_integration_install installs this tree into a temp prefix
# (C host through pkg-config, plain luajit, a moved prefix, one version);
# spec_integration_rockspec (label slow; not in sanitized trees, it builds
# a release copy of its own) runs `luarocks make` into a temp tree.
#   * detect_leaks=1 is set explicitly (it is the default on x86-64 Linux,
#     but a caller's ASAN_OPTIONS must not silently turn it off).

set(WEFT_ASAN_DIR "" CACHE PATH
  "ASan build tree whose ctest suite runs as the asan_suite test (empty: none)")

set(_src ${CMAKE_SOURCE_DIR})
# ctest splits ENVIRONMENT on ';' — escape the ones inside LUA_PATH.
set(_lua_path "${_src}/spec/?.lua;${_src}/lua/?.lua;${_src}/lua/?/init.lua;${_src}/stdlib/?.lua;${_src}/stdlib/?/init.lua;;")
string(REPLACE ";" "\\;" _lua_path_env "${_lua_path}")
set(_lua_cpath_env "${CMAKE_BINARY_DIR}/lib/?.so\\;\\;")

set(_sanitizer_env
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

set(_spec_env
  "WEFT_BIN=$<TARGET_FILE:weft>"
  "WEFT_SOURCE_DIR=${_src}"
  "WEFT_BUILD_DIR=${CMAKE_BINARY_DIR}"
  "LUA_PATH=${_lua_path_env}")
if(WEFT_SANITIZE)
  list(APPEND _spec_env ${_sanitizer_env} "WEFT_SANITIZE=1")
endif()
# Specs only for non-sanitized trees.
set(_release_only_specs spec_integration_rockspec)

# C unit tests (helper-owned file; absent while being written).
if(EXISTS ${_src}/spec/c/tests.cmake)
  include(${_src}/spec/c/tests.cmake)
endif()

# Busted specs, one ctest test per file.
find_program(WEFT_BUSTED busted PATHS /usr/bin)
if(NOT WEFT_BUSTED)
  message(WARNING "busted not found (apt-get install lua-busted): Lua specs are not registered")
else()
  file(GLOB _specs CONFIGURE_DEPENDS
    ${_src}/spec/unit/*_spec.lua
    ${_src}/spec/integration/*_spec.lua)
  list(SORT _specs)
  foreach(_spec IN LISTS _specs)
    get_filename_component(_dir ${_spec} DIRECTORY)
    get_filename_component(_dir ${_dir} NAME)
    get_filename_component(_name ${_spec} NAME)
    string(REGEX REPLACE "_spec\\.lua$" "" _name ${_name})
    set(_test spec_${_dir}_${_name})
    if(WEFT_SANITIZE AND _test IN_LIST _release_only_specs)
      continue()
    endif()
    add_test(NAME ${_test}
      COMMAND $<TARGET_FILE:weft> exec ${WEFT_BUSTED} --output=plainTerminal
              -C ${_src} ${_spec}
      WORKING_DIRECTORY ${_src})
    set_tests_properties(${_test} PROPERTIES
      ENVIRONMENT "${_spec_env}"
      TIMEOUT 300)
  endforeach()
  if(TEST spec_integration_rockspec)
    set_tests_properties(spec_integration_rockspec PROPERTIES LABELS slow)
  endif()
endif()

# lint_globals: luacheck (Debian lua-check, installed by scripts/deps.sh)
# fails on any read or write of an undeclared global in the project's Lua;
# .luacheckrc says what is checked. Without luacheck the test fails, saying
# what to install, rather than silently passing.
find_program(WEFT_LUACHECK luacheck)
if(WEFT_LUACHECK)
  add_test(NAME lint_globals
    COMMAND ${WEFT_LUACHECK} --no-color --codes lua stdlib examples bench spec
    WORKING_DIRECTORY ${_src})
else()
  add_test(NAME lint_globals
    COMMAND ${CMAKE_COMMAND} -E echo "luacheck not found: apt-get install lua-check (scripts/deps.sh)")
  set_tests_properties(lint_globals PROPERTIES WILL_FAIL ON)
endif()

# A plain luajit host embedding weft through core.so.
find_program(WEFT_LUAJIT luajit)
if(WEFT_LUAJIT AND NOT WEFT_SANITIZE)
  add_test(NAME embed_plain_luajit
    COMMAND ${WEFT_LUAJIT} ${_src}/spec/fixtures/embed_plain.lua
    WORKING_DIRECTORY ${_src})
  set_tests_properties(embed_plain_luajit PROPERTIES
    ENVIRONMENT "LUA_PATH=${_lua_path_env};LUA_CPATH=${_lua_cpath_env}"
    TIMEOUT 60)
endif()

# In a sanitized build: proof that LeakSanitizer is active for weft (a
# deliberate 4321-byte leak must be reported).
if(WEFT_SANITIZE)
  add_test(NAME asan_leak_canary
    COMMAND $<TARGET_FILE:weft> exec ${_src}/spec/fixtures/leak_canary.lua)
  set_tests_properties(asan_leak_canary PROPERTIES
    ENVIRONMENT "${_sanitizer_env}"
    PASS_REGULAR_EXPRESSION "4321 byte\\(s\\) leaked"
    TIMEOUT 60)
  # ... and that the registry-ref check is compiled in and fails a leak.
  if(TARGET c_test_refs)
    add_test(NAME asan_ref_canary COMMAND c_test_refs compiled-in)
    set_tests_properties(asan_ref_canary PROPERTIES
      ENVIRONMENT "${_sanitizer_env}"
      TIMEOUT 60)
  endif()
endif()

# The ASan tree's suite as one test of this (release) tree.
if(WEFT_ASAN_DIR)
  add_test(NAME asan_suite
    COMMAND ${CMAKE_CTEST_COMMAND} --test-dir ${WEFT_ASAN_DIR}
            --output-on-failure -E "embed_plain_luajit|asan_suite")
  set_tests_properties(asan_suite PROPERTIES
    ENVIRONMENT "${_sanitizer_env}"
    TIMEOUT 2400)
endif()
