/*
 * pgha_memory: lets a long-running agent give back the memory only its start-up used.
 *
 * release() does two things, once, when the agent has settled (src/util/startup-memory.ts):
 *
 * - malloc_trim(0) (glibc): the C allocator returns its free pages to the kernel.
 * - Start-up (loading the runtime, compiling and running the start-up code) reads megabytes of
 *   the node executable and of shared libraries that a settled agent never reads again, and they
 *   stay counted in its resident set. madvise(MADV_DONTNEED) takes the pages of a mapping out of
 *   this process. That is lossless only for a mapping that holds nothing but clean pages of its
 *   file: they stay in the page cache, shared with every other process that maps them, and the
 *   pages used again come back on first touch, with a minor fault and the same content. A private
 *   page (a copy written before the mapping became read-only, such as a relocated RELRO page),
 *   in memory or swapped out, would be replaced by the file's bytes: a mapping with one is kept.
 *
 * Which mappings (plan(), over the text of /proc/self/smaps): private ('p'), not writable, backed
 * by a file (a path, not "(deleted)"), not locked, with pages resident, and with Anonymous,
 * Private_Dirty and Swap all 0 kB. A block with a missing field, or a line too long to read whole,
 * is not released. The mappings can change between reading smaps and madvise (another thread may
 * map, unmap or protect memory), so just before each madvise every page of the range is checked
 * again in /proc/self/pagemap: a range with a swapped or an anonymous page is kept.
 *
 * release() returns { mappings, fileKb, mallocTrimmed }: how many mappings were released, how
 * many kB they held resident, and whether malloc_trim gave memory back. plan(text) returns the
 * [start, end] pairs release() would consider for that smaps text (for tests). Neither throws:
 * a failure is returned as { error }.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <node_api.h>
#include "napi-result.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

typedef struct {
  unsigned long start, end, rss_kb;
} range;

typedef struct {
  range *items;
  size_t count, cap;
} range_list;

static int push(range_list *l, range r) {
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    range *grown = realloc(l->items, cap * sizeof *grown);
    if (!grown) return 0;
    l->items = grown;
    l->cap = cap;
  }
  l->items[l->count++] = r;
  return 1;
}

/* A header line of smaps: "start-end perms offset dev inode [path]". */
static int parse_header(const char *line, range *r, char perms[5], const char **path) {
  int consumed = 0;
  if (sscanf(line, "%lx-%lx %4s %*s %*s %*s%n", &r->start, &r->end, perms, &consumed) != 3 || consumed == 0)
    return 0;
  if (strlen(perms) != 4 || r->end <= r->start) return 0;
  const char *p = line + consumed;
  while (*p == ' ' || *p == '\t') p++;
  *path = p;
  return 1;
}

#define NO_VALUE ((unsigned long)-1)

/* "Name:   123 kB" -> 123; NO_VALUE when the line is another field. */
static unsigned long field_kb(const char *line, const char *name) {
  size_t n = strlen(name);
  if (strncmp(line, name, n) != 0 || line[n] != ':') return NO_VALUE;
  return strtoul(line + n + 1, NULL, 10);
}

/* The mappings of an smaps text that hold only clean pages of their file (see the top). */
static int plan(FILE *f, range_list *out) {
  char line[8192];
  range cur = {0, 0, 0};
  int candidate = 0;
  unsigned long rss = NO_VALUE, anon = NO_VALUE, dirty = NO_VALUE, swap = NO_VALUE;
  while (fgets(line, sizeof line, f)) {
    size_t len = strlen(line);
    if (len > 0 && line[len - 1] != '\n' && !feof(f)) {
      /* Too long to read whole: skip the rest of it, and release nothing of this block. */
      int c;
      while ((c = fgetc(f)) != EOF && c != '\n') {
      }
      candidate = 0;
      continue;
    }
    char perms[5] = {0};
    const char *path = NULL;
    range r = {0, 0, 0};
    if (line[0] != ' ' && parse_header(line, &r, perms, &path)) {
      cur = r;
      candidate = path[0] == '/' && perms[0] == 'r' && perms[1] != 'w' && perms[3] == 'p' &&
                  !strstr(path, "(deleted)");
      rss = anon = dirty = swap = NO_VALUE;
      continue;
    }
    unsigned long v;
    if ((v = field_kb(line, "Rss")) != NO_VALUE) rss = v;
    else if ((v = field_kb(line, "Anonymous")) != NO_VALUE) anon = v;
    else if ((v = field_kb(line, "Private_Dirty")) != NO_VALUE) dirty = v;
    else if ((v = field_kb(line, "Swap")) != NO_VALUE) swap = v;
    else if (strncmp(line, "VmFlags:", 8) == 0) {
      /* The last line of a mapping's block. Locked mappings ("lo") keep their pages. */
      int locked = strstr(line, " lo") != NULL;
      if (candidate && !locked && anon == 0 && dirty == 0 && swap == 0 && rss != NO_VALUE && rss > 0) {
        cur.rss_kb = rss;
        if (!push(out, cur)) return 0;
      }
      candidate = 0;
    }
  }
  return 1;
}

/* Whether every page of [start, end) is, right now, not swapped and not anonymous. */
static int only_file_pages(int pagemap, const range *r) {
  long page = sysconf(_SC_PAGESIZE);
  uint64_t entries[512];
  for (unsigned long at = r->start; at < r->end;) {
    size_t n = (r->end - at) / (unsigned long)page;
    if (n > 512) n = 512;
    if (n == 0) return 0;
    off_t where = (off_t)(at / (unsigned long)page) * (off_t)sizeof(uint64_t);
    ssize_t got = pread(pagemap, entries, n * sizeof(uint64_t), where);
    if (got != (ssize_t)(n * sizeof(uint64_t))) return 0;
    for (size_t i = 0; i < n; i++) {
      uint64_t e = entries[i];
      int present = (e >> 63) & 1, swapped = (e >> 62) & 1, file_or_shared = (e >> 61) & 1;
      if (swapped || (present && !file_or_shared)) return 0;
    }
    at += n * (unsigned long)page;
  }
  return 1;
}

static napi_value release(napi_env env, napi_callback_info info) {
  (void)info;
  int trimmed = 0;
#ifdef __GLIBC__
  trimmed = malloc_trim(0);
#endif
  FILE *f = fopen("/proc/self/smaps", "re");
  if (!f) return error_result(env, "cannot read /proc/self/smaps");
  range_list todo = {NULL, 0, 0};
  int complete = plan(f, &todo);
  fclose(f);
  if (!complete) {
    free(todo.items);
    return error_result(env, "out of memory while reading /proc/self/smaps");
  }
  int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) {
    free(todo.items);
    return error_result(env, "cannot read /proc/self/pagemap");
  }
  double released = 0, total_kb = 0;
  for (size_t i = 0; i < todo.count; i++) {
    const range *r = &todo.items[i];
    if (!only_file_pages(pagemap, r)) continue;
    if (madvise((void *)r->start, r->end - r->start, MADV_DONTNEED) == 0) {
      released++;
      total_kb += (double)r->rss_kb;
    }
  }
  close(pagemap);
  free(todo.items);

  napi_value out, v;
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  if (napi_create_double(env, released, &v) == napi_ok) napi_set_named_property(env, out, "mappings", v);
  if (napi_create_double(env, total_kb, &v) == napi_ok) napi_set_named_property(env, out, "fileKb", v);
  if (napi_get_boolean(env, trimmed == 1, &v) == napi_ok) napi_set_named_property(env, out, "mallocTrimmed", v);
  return out;
}

/* plan(text): the [start, end] pairs of the mappings release() would consider in that smaps text. */
static napi_value plan_of_text(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1)
    return error_result(env, "plan(text) needs the text of an smaps file");
  size_t len = 0;
  if (napi_get_value_string_utf8(env, arg, NULL, 0, &len) != napi_ok)
    return error_result(env, "plan(text) needs a string");
  char *text = malloc(len + 1);
  if (!text) return error_result(env, "out of memory");
  napi_get_value_string_utf8(env, arg, text, len + 1, &len);
  FILE *f = fmemopen(text, len, "r");
  range_list todo = {NULL, 0, 0};
  int complete = f ? plan(f, &todo) : 0;
  if (f) fclose(f);
  free(text);
  if (!complete) {
    free(todo.items);
    return error_result(env, "could not read the text");
  }
  napi_value out;
  napi_create_array_with_length(env, todo.count, &out);
  for (size_t i = 0; i < todo.count; i++) {
    napi_value pair, a, b;
    napi_create_array_with_length(env, 2, &pair);
    napi_create_double(env, (double)todo.items[i].start, &a);
    napi_create_double(env, (double)todo.items[i].end, &b);
    napi_set_element(env, pair, 0, a);
    napi_set_element(env, pair, 1, b);
    napi_set_element(env, out, (uint32_t)i, pair);
  }
  free(todo.items);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "release", NAPI_AUTO_LENGTH, release, NULL, &fn) == napi_ok)
    napi_set_named_property(env, exports, "release", fn);
  if (napi_create_function(env, "plan", NAPI_AUTO_LENGTH, plan_of_text, NULL, &fn) == napi_ok)
    napi_set_named_property(env, exports, "plan", fn);
  return exports;
}
