/* main.c — the weft executable: one LuaJIT state with the weft C modules
 * preloaded (lua_core.h) and lua/ + stdlib/ on package.path, then hands the
 * command line to the Lua CLI (lua/weft/cli.lua), which does all the work.
 *
 * The root holding lua/ and stdlib/ is, first match wins:
 *   1. $WEFT_PATH;
 *   2. the directory of the executable, if it holds lua/weft/init.lua (the
 *      build tree links build/lua and build/stdlib to the sources);
 *   3. <exedir>/../share/weft (after cmake --install), then the configured
 *      install data dir;
 *   4. the source directory this binary was configured from.
 * package.cpath is left alone so system Lua C modules (lfs, cjson) load.
 *
 * weft.cli.main(args, {exe, root, version}) gets argv[1..] as a list.
 * Exit status: whatever it returns; 70 (EX_SOFTWARE) when the CLI
 * itself raises. Depends on LuaJIT and lua_core.h. */
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_core.h"

#ifndef WEFT_SOURCE_DIR
#define WEFT_SOURCE_DIR "."
#endif
#ifndef WEFT_VERSION
#error "WEFT_VERSION comes from the CMake project version (CMakeLists.txt)"
#endif
#ifndef WEFT_INSTALL_DATADIR
#define WEFT_INSTALL_DATADIR "/usr/local/share/weft"
#endif

#define MAIN_EX_SOFTWARE 70

/* Nonzero if <root>/lua/weft/init.lua exists. */
static int main_has_weft(const char *root) {
  char p[PATH_MAX];
  int n = snprintf(p, sizeof p, "%s/lua/weft/init.lua", root);
  return n > 0 && (size_t)n < sizeof p && access(p, R_OK) == 0;
}

/* Fill root (size PATH_MAX) with the directory holding lua/ and stdlib/. */
static void main_find_root(char *root) {
  const char *env = getenv("WEFT_PATH");
  if (env && *env) {
    snprintf(root, PATH_MAX, "%s", env);
    return;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      if (main_has_weft(exe)) {
        snprintf(root, PATH_MAX, "%s", exe);
        return;
      }
      char share[PATH_MAX];
      int m = snprintf(share, sizeof share, "%s/../share/weft", exe);
      if (m > 0 && (size_t)m < sizeof share && main_has_weft(share)) {
        /* realpath keeps error messages and debug.getinfo paths short. */
        if (!realpath(share, root)) snprintf(root, PATH_MAX, "%s", share);
        return;
      }
    }
  }
  if (main_has_weft(WEFT_INSTALL_DATADIR)) {
    snprintf(root, PATH_MAX, "%s", WEFT_INSTALL_DATADIR);
    return;
  }
  snprintf(root, PATH_MAX, "%s", WEFT_SOURCE_DIR);
}


/* xpcall message handler: the error with a traceback appended. */
static int main_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1)) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  }
  /* stack: err, msg — LuaJIT's luaL_traceback appends the trace to msg. */
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Protected part: require "weft.cli", call .main(args, info). Returns the
 * exit code on the stack as a number. */
static int main_run(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  const char *root = lua_tostring(L, 3);

  lua_getglobal(L, "require");
  lua_pushliteral(L, "weft.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  if (!lua_isfunction(L, -1)) return luaL_error(L, "weft.cli.main is missing");
  /* stack: ..., cli, main */
  lua_createtable(L, argc > 1 ? argc - 1 : 0, 0);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_createtable(L, 0, 3);
  lua_pushliteral(L, WEFT_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, argv[0]);
  lua_setfield(L, -2, "exe");
  lua_pushstring(L, root);
  lua_setfield(L, -2, "root");
  /* stack: ..., cli, main, args, info */
  lua_call(L, 2, 1);
  if (lua_isnil(L, -1)) {
    lua_pushinteger(L, 0);
  } else if (!lua_isnumber(L, -1)) {
    return luaL_error(L, "weft.cli.main returned a %s, expected an exit code",
                      luaL_typename(L, -1));
  }
  return 1;
}

int main(int argc, char **argv) {
  char root[PATH_MAX];
  main_find_root(root);

  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "weft: cannot create the Lua state (out of memory)\n");
    return MAIN_EX_SOFTWARE;
  }
  luaL_openlibs(L);
  wf_lua_preload(L);
  wf_lua_set_path(L, root);

  int code;
  lua_pushcfunction(L, main_traceback);
  lua_pushcfunction(L, main_run);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushstring(L, root);
  /* stack: traceback, main_run, argc, argv, root */
  if (lua_pcall(L, 3, 1, 1) != 0) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "weft: %s\n", msg ? msg : "(unknown error)");
    code = MAIN_EX_SOFTWARE;
  } else {
    code = (int)lua_tointeger(L, -1);
  }
  fflush(stdout);
  lua_close(L);
  return code;
}
