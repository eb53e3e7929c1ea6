/* What the addons answer instead of throwing: { error: message }. Included by memory.c and reap.c. */
#ifndef PGHA_NAPI_RESULT_H
#define PGHA_NAPI_RESULT_H
#include <node_api.h>

static napi_value error_result(napi_env env, const char *message) {
  napi_value out, v;
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, out, "error", v);
  return out;
}

#endif
