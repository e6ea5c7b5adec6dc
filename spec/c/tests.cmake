# spec/c/tests.cmake — the C unit tests, in folders that mirror runtime/'s
# layers (spec/c/core/test_sched.c tests runtime/core/sched.c): one
# executable per spec/c/<layer>/test_*.c linked to weft_static, registered
# as c_<name> (test_sched.c -> c_sched). Included by spec/tests.cmake; the
# sanitizer environment (_sanitizer_env) applies when WEFT_SANITIZE is on.
file(GLOB _c_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/c/*/test_*.c)
list(SORT _c_tests)
foreach(_c_test IN LISTS _c_tests)
  get_filename_component(_c_name ${_c_test} NAME_WE)
  string(REGEX REPLACE "^test_" "" _c_name ${_c_name})
  add_executable(c_test_${_c_name} ${_c_test})
  target_link_libraries(c_test_${_c_name} PRIVATE weft_static)
  target_include_directories(c_test_${_c_name} PRIVATE
    ${CMAKE_SOURCE_DIR}/spec/c)
  set_target_properties(c_test_${_c_name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/spec/c)
  add_test(NAME c_${_c_name} COMMAND c_test_${_c_name})
  set_tests_properties(c_${_c_name} PROPERTIES TIMEOUT 120)
  if(WEFT_SANITIZE AND DEFINED _sanitizer_env)
    set_tests_properties(c_${_c_name} PROPERTIES
      ENVIRONMENT "${_sanitizer_env}")
  endif()
endforeach()
