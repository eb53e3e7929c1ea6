/*
 * pgha_reap: lets a pgha process that runs as the first process of its PID namespace (a
 * container started without an init) collect the processes the kernel hands to it.
 *
 * collect(pid) calls waitpid(pid, WNOHANG) for that one pid and returns
 *   { pid, code } or { pid, signal }  when it collected an exited child,
 *   null                              when the child has not exited,
 *   { error }                         when it cannot (not a child of this process, for example).
 * It never waits for any other pid: Node's own children are collected by Node (libuv), which
 * must not find them gone, so src/util/reaper.ts passes only pids Node did not start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include "napi-result.h"
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>

static napi_value collect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  int64_t pid = 0;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int64(env, arg, &pid) != napi_ok || pid <= 0 || pid > 0x7fffffff)
    return error_result(env, "collect(pid) needs a positive pid");
  int status = 0;
  pid_t got;
  do got = waitpid((pid_t)pid, &status, WNOHANG);
  while (got < 0 && errno == EINTR);
  if (got < 0) return error_result(env, strerror(errno));
  napi_value out, v;
  if (got == 0) {
    napi_get_null(env, &out);
    return out;
  }
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  if (napi_create_int64(env, got, &v) == napi_ok) napi_set_named_property(env, out, "pid", v);
  if (WIFEXITED(status)) {
    if (napi_create_int32(env, WEXITSTATUS(status), &v) == napi_ok) napi_set_named_property(env, out, "code", v);
  } else if (WIFSIGNALED(status)) {
    if (napi_create_int32(env, WTERMSIG(status), &v) == napi_ok) napi_set_named_property(env, out, "signal", v);
  }
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "collect", NAPI_AUTO_LENGTH, collect, NULL, &fn) == napi_ok)
    napi_set_named_property(env, exports, "collect", fn);
  return exports;
}
