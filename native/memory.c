/*
 * pgha_memory: lets a long-running agent give back the memory only its start-up used.
 *
 * release() does two things, once, when the agent has settled (src/util/startup-memory.ts):
 *
 * - malloc_trim(0): the C allocator returns its free pages to the kernel.
 * - Start-up (loading the runtime, compiling and running the start-up code) reads megabytes of
 *   the node executable and of shared libraries that a settled agent never reads again, and they
 *   stay counted in its resident set. For each private mapping of a file that is not writable and
 *   holds no page of its own (Anonymous and Private_Dirty 0 kB in /proc/self/smaps: only clean
 *   pages of the file, never a private copy such as a relocated RELRO page), madvise(MADV_DONTNEED)
 *   takes the pages out of this process. The file's pages stay in the page cache, shared with every
 *   other process that maps them; the pages the agent uses again come back on first touch, with a
 *   minor fault and the same content. Nothing a mapping holds is lost, since it holds nothing but
 *   the file.
 *
 * Returns { mappings, fileKb, mallocTrimmed }: how many mappings were released, how many kB they
 * held, and whether malloc_trim gave memory back.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct {
  unsigned long start, end, rss_kb;
} range;

/* A header line of /proc/self/smaps: "start-end perms offset dev inode [path]". */
static int parse_header(const char *line, range *r, char perms[5], const char **path) {
  int consumed = 0;
  if (sscanf(line, "%lx-%lx %4s %*x %*s %*u%n", &r->start, &r->end, perms, &consumed) != 3) return 0;
  if (strlen(perms) != 4) return 0;
  const char *p = line + consumed;
  while (*p == ' ' || *p == '\t') p++;
  *path = p;
  return 1;
}

static unsigned long field_kb(const char *line, const char *name) {
  size_t n = strlen(name);
  if (strncmp(line, name, n) != 0 || line[n] != ':') return (unsigned long)-1;
  return strtoul(line + n + 1, NULL, 10);
}

static napi_value release(napi_env env, napi_callback_info info) {
  (void)info;
  int trimmed = malloc_trim(0);
  FILE *f = fopen("/proc/self/smaps", "re");
  if (!f) {
    napi_throw_error(env, "PGHA_MEMORY", "pgha_memory: cannot read /proc/self/smaps");
    return NULL;
  }
  /* First collect, then release: the mappings do not change while the file is read. */
  range *todo = NULL;
  size_t count = 0, cap = 0;
  char line[8192];
  range cur = {0, 0, 0};
  int candidate = 0;
  unsigned long rss = 0, anon = 0, dirty = 0, total_kb = 0;
  while (fgets(line, sizeof line, f)) {
    char perms[5] = {0};
    const char *path = NULL;
    range r;
    if (line[0] != ' ' && strchr(line, '-') && parse_header(line, &r, perms, &path)) {
      cur = r;
      /* A file (a path, not [heap] or [stack], not deleted), private, not writable. */
      candidate = path[0] == '/' && perms[1] != 'w' && perms[3] == 'p' && !strstr(path, "(deleted)");
      rss = anon = dirty = (unsigned long)-1;
      continue;
    }
    unsigned long v;
    if ((v = field_kb(line, "Rss")) != (unsigned long)-1) rss = v;
    else if ((v = field_kb(line, "Anonymous")) != (unsigned long)-1) anon = v;
    else if ((v = field_kb(line, "Private_Dirty")) != (unsigned long)-1) dirty = v;
    else if (strncmp(line, "VmFlags:", 8) == 0) {
      /* The last line of a mapping's block. Locked mappings ("lo") keep their pages. */
      if (candidate && anon == 0 && dirty == 0 && rss != (unsigned long)-1 && rss > 0 &&
          !strstr(line, " lo")) {
        if (count == cap) {
          cap = cap ? cap * 2 : 64;
          range *grown = realloc(todo, cap * sizeof *todo);
          if (!grown) break;
          todo = grown;
        }
        cur.rss_kb = rss;
        todo[count++] = cur;
      }
      candidate = 0;
    }
  }
  fclose(f);
  size_t released = 0;
  for (size_t i = 0; i < count; i++) {
    if (madvise((void *)todo[i].start, todo[i].end - todo[i].start, MADV_DONTNEED) == 0) {
      released++;
      total_kb += todo[i].rss_kb;
    }
  }
  free(todo);

  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_double(env, (double)released, &v);
  napi_set_named_property(env, out, "mappings", v);
  napi_create_double(env, (double)total_kb, &v);
  napi_set_named_property(env, out, "fileKb", v);
  napi_get_boolean(env, trimmed == 1, &v);
  napi_set_named_property(env, out, "mallocTrimmed", v);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "release", NAPI_AUTO_LENGTH, release, NULL, &fn);
  napi_set_named_property(env, exports, "release", fn);
  return exports;
}
