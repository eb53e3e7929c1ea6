/*
 * pgha_relay: the router's native data path.
 *
 * The router parses each session's startup phase in JavaScript (encryption requests, the startup
 * packet, authentication, the cancel key), then hands the two connected sockets to this relay,
 * which copies bytes between them on its own thread until either side closes or JavaScript closes
 * the session (the fence). Nothing is parsed here.
 *
 * One or more threads, each with its own epoll loop (level-triggered) and its own sessions; a new
 * session goes to the loop with the fewest. Each session has two sockets and two directions:
 *   dir[0]: client -> server (read fd[0], write fd[1])
 *   dir[1]: server -> client (read fd[1], write fd[0])
 * A direction reads into one buffer shared by its loop and writes at once to the other
 * socket; only a partial write keeps bytes (in `pending`), and while a direction has pending bytes
 * its source is not read (back-pressure). An end of stream is passed on with shutdown(SHUT_WR),
 * once the pending bytes are out; the session ends when both directions have ended.
 *
 * JavaScript side (src/router/native.ts):
 *   const relay = createRelay((id, fromClient, toClient, reason) => ..., threads?)
 *   relay.add(id, clientFd, serverFd, toServer?, toClient?) -> handle   (dups the fds)
 *   relay.close(handle) -> [fromClient, toClient] | null
 *   relay.bytes(handle) -> [fromClient, toClient] | null
 *   relay.stop()
 * `handle` holds a loop index, a slot index and a generation, so a stale handle never reaches a
 * reused slot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUFFER_SIZE (64 * 1024)
#define MAX_EVENTS 256
#define DRAIN_LIMIT (1024 * 1024) /* bytes dropped per socket when JavaScript closes a session */
/* handle = (generation * 2^SLOT_BITS + slot) * 2^LOOP_BITS + loop, exact in a double (53 bits) */
#define SLOT_BITS 20
#define MAX_SLOTS (1u << SLOT_BITS)
#define LOOP_BITS 4
#define MAX_LOOPS (1u << LOOP_BITS)
#define GEN_MASK ((1u << (53 - SLOT_BITS - LOOP_BITS)) - 1)

typedef struct {
  char *pending; /* bytes read but not yet written to the destination */
  size_t pending_len, pending_off;
  int eof;      /* the source ended */
  int shut;     /* the end was passed on (shutdown of the destination) */
  double bytes; /* bytes written to the destination */
} direction;

typedef struct {
  uint32_t gen;
  int used;
  uint32_t next_free;
  double id; /* the JavaScript session id */
  int fd[2];
  uint32_t interest[2]; /* epoll events registered per fd; 0: not in the epoll set */
  direction dir[2];
} session;

typedef struct {
  double id, from_client, to_client;
  const char *reason;
} closed_event;

struct relay;

/* One thread: its epoll set, its sessions and its read buffer. */
typedef struct loop {
  struct relay *r;
  uint32_t index;
  pthread_mutex_t mu;
  pthread_t thread;
  int thread_started;
  int epfd, wakefd;
  session *slots;
  uint32_t nslots, cap, free_head; /* free list through next_free; UINT32_MAX: empty */
  uint32_t live;                   /* written with mu held, read without it to pick a loop */
  char buf[READ_BUFFER_SIZE];
} loop;

typedef struct relay {
  volatile int stopping;
  int started;
  uint32_t nloops;
  loop *loops;
  napi_threadsafe_function on_close;
} relay;

/* ---- sessions (called with mu held) ------------------------------------------------------------ */

static uint64_t tag(uint32_t slot, int side) { return ((uint64_t)slot << 1) | (uint64_t)side; }

/* What fd `side` must be watched for: reading while its direction may read, writing while the
 * other direction has bytes for it. */
static uint32_t wanted(const session *s, int side) {
  uint32_t ev = 0;
  const direction *out = &s->dir[side];     /* reads from fd[side] */
  const direction *in = &s->dir[1 - side];  /* writes to fd[side] */
  if (!out->eof && out->pending_len == 0) ev |= EPOLLIN;
  if (in->pending_len > 0) ev |= EPOLLOUT;
  return ev;
}

static void update_interest(loop *l, uint32_t slot) {
  session *s = &l->slots[slot];
  for (int side = 0; side < 2; side++) {
    uint32_t ev = wanted(s, side);
    if (ev == s->interest[side]) continue;
    struct epoll_event e = {.events = ev, .data.u64 = tag(slot, side)};
    if (ev == 0) {
      epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd[side], &e);
    } else if (s->interest[side] == 0) {
      epoll_ctl(l->epfd, EPOLL_CTL_ADD, s->fd[side], &e);
    } else {
      epoll_ctl(l->epfd, EPOLL_CTL_MOD, s->fd[side], &e);
    }
    s->interest[side] = ev;
  }
}

static void free_slot(loop *l, uint32_t slot) {
  session *s = &l->slots[slot];
  for (int side = 0; side < 2; side++) {
    if (s->fd[side] >= 0) close(s->fd[side]); /* also leaves the epoll set */
    s->fd[side] = -1;
    free(s->dir[side].pending);
    s->dir[side].pending = NULL;
    s->dir[side].pending_len = s->dir[side].pending_off = 0;
    s->interest[side] = 0;
  }
  s->used = 0;
  s->gen = (s->gen + 1) & GEN_MASK;
  s->next_free = l->free_head;
  l->free_head = slot;
  __atomic_fetch_sub(&l->live, 1, __ATOMIC_RELAXED);
}

/* Ends a session the relay saw finish, and tells JavaScript. */
static void end_session(loop *l, uint32_t slot, const char *reason) {
  session *s = &l->slots[slot];
  closed_event *ev = malloc(sizeof *ev);
  if (ev) {
    ev->id = s->id;
    ev->from_client = s->dir[0].bytes;
    ev->to_client = s->dir[1].bytes;
    ev->reason = reason;
  }
  free_slot(l, slot);
  if (ev && napi_call_threadsafe_function(l->r->on_close, ev, napi_tsfn_nonblocking) != napi_ok) free(ev);
}

/* Writes what `d` holds to `fd`. Returns 0, or -1 when the destination failed. */
static int flush_pending(direction *d, int fd) {
  while (d->pending_len > 0) {
    ssize_t n = send(fd, d->pending + d->pending_off, d->pending_len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -1;
    }
    d->bytes += (double)n;
    d->pending_off += (size_t)n;
    d->pending_len -= (size_t)n;
  }
  free(d->pending);
  d->pending = NULL;
  d->pending_off = 0;
  return 0;
}

/* Writes `len` bytes to `fd`, keeping what the socket does not take. Returns 0 or -1. */
static int forward(direction *d, int fd, const char *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -1;
    }
    d->bytes += (double)n;
    off += (size_t)n;
  }
  if (off < len) {
    d->pending = malloc(len - off);
    if (!d->pending) return -1;
    memcpy(d->pending, data + off, len - off);
    d->pending_len = len - off;
    d->pending_off = 0;
  }
  return 0;
}

/* Passes an ended direction's end on, once its bytes are out. */
static void pass_end(direction *d, int fd) {
  if (d->eof && !d->shut && d->pending_len == 0) {
    shutdown(fd, SHUT_WR);
    d->shut = 1;
  }
}

/* Handles readiness of fd `side` of `slot`. */
static void on_event(loop *l, uint32_t slot, int side, uint32_t events) {
  session *s = &l->slots[slot];
  int src = s->fd[side], dst = s->fd[1 - side];
  direction *out = &s->dir[side];    /* fd[side] -> fd[1-side] */
  direction *in = &s->dir[1 - side]; /* fd[1-side] -> fd[side] */

  if (events & EPOLLOUT) {
    if (flush_pending(in, src) < 0) return end_session(l, slot, "write failed");
    pass_end(in, src);
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    while (!out->eof && out->pending_len == 0) {
      ssize_t n = recv(src, l->buf, sizeof l->buf, 0);
      if (n > 0) {
        if (forward(out, dst, l->buf, (size_t)n) < 0) return end_session(l, slot, "write failed");
        if ((size_t)n < sizeof l->buf) break; /* level-triggered: more data wakes us again */
        continue;
      }
      if (n == 0) {
        out->eof = 1;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return end_session(l, slot, side == 0 ? "client reset" : "server reset");
    }
    pass_end(out, dst);
  }
  if (s->dir[0].shut && s->dir[1].shut) return end_session(l, slot, "closed");
  update_interest(l, slot);
}

static void *loop_main(void *arg) {
  loop *l = arg;
  struct epoll_event events[MAX_EVENTS];
  while (!l->r->stopping) {
    int n = epoll_wait(l->epfd, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < n; i++) {
      uint64_t t = events[i].data.u64;
      if (t == UINT64_MAX) continue; /* the wake-up eventfd */
      uint32_t slot = (uint32_t)(t >> 1);
      int side = (int)(t & 1);
      /* A session closed earlier in this batch (or by JavaScript) has no interest left. */
      if (slot >= l->nslots || !l->slots[slot].used || l->slots[slot].interest[side] == 0) continue;
      on_event(l, slot, side, events[i].events);
    }
    pthread_mutex_unlock(&l->mu);
  }
  return NULL;
}

/* ---- JavaScript bindings ----------------------------------------------------------------------- */

#define CHECK(env, call)                                                                            \
  do {                                                                                              \
    if ((call) != napi_ok) {                                                                        \
      napi_throw_error((env), "PGHA_RELAY", "pgha_relay: " #call " failed");                        \
      return NULL;                                                                                  \
    }                                                                                               \
  } while (0)

static napi_value make_pair(napi_env env, double a, double b) {
  napi_value arr, va, vb;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_double(env, a, &va);
  napi_create_double(env, b, &vb);
  napi_set_element(env, arr, 0, va);
  napi_set_element(env, arr, 1, vb);
  return arr;
}

static napi_value js_null(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

/* The loop a handle belongs to, or NULL. */
static loop *loop_of(relay *r, double handle) {
  if (!(handle >= 0) || handle > 9007199254740991.0) return NULL;
  uint32_t index = (uint32_t)((uint64_t)handle & (MAX_LOOPS - 1));
  return index < r->nloops ? &r->loops[index] : NULL;
}

/* Looks a handle up in its loop; returns the slot or UINT32_MAX. Called with l->mu held. */
static uint32_t find(loop *l, double handle) {
  uint64_t h = (uint64_t)handle >> LOOP_BITS;
  uint32_t slot = (uint32_t)(h & (MAX_SLOTS - 1));
  uint32_t gen = (uint32_t)(h >> SLOT_BITS);
  if (slot >= l->nslots || !l->slots[slot].used || l->slots[slot].gen != gen) return UINT32_MAX;
  return slot;
}

static int copy_initial(napi_env env, napi_value v, direction *d) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t == napi_undefined || t == napi_null) return 0;
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return -1;
  if (len == 0) return 0;
  d->pending = malloc(len);
  if (!d->pending) return -1;
  memcpy(d->pending, data, len);
  d->pending_len = len;
  return 0;
}

/* The loop with the fewest sessions. */
static loop *least_busy(relay *r) {
  loop *best = &r->loops[0];
  uint32_t best_live = __atomic_load_n(&best->live, __ATOMIC_RELAXED);
  for (uint32_t i = 1; i < r->nloops; i++) {
    uint32_t live = __atomic_load_n(&r->loops[i].live, __ATOMIC_RELAXED);
    if (live < best_live) {
      best = &r->loops[i];
      best_live = live;
    }
  }
  return best;
}

/* A free slot of `l`, or UINT32_MAX when none can be had. Called with l->mu held. */
static uint32_t take_slot(loop *l) {
  if (l->free_head != UINT32_MAX) {
    uint32_t slot = l->free_head;
    l->free_head = l->slots[slot].next_free;
    return slot;
  }
  if (l->nslots == MAX_SLOTS) return UINT32_MAX;
  if (l->nslots == l->cap) {
    uint32_t cap = l->cap ? l->cap * 2 : 64;
    session *grown = realloc(l->slots, cap * sizeof *grown);
    if (!grown) return UINT32_MAX;
    l->slots = grown;
    l->cap = cap;
  }
  memset(&l->slots[l->nslots], 0, sizeof(session));
  return l->nslots++;
}

static napi_value relay_add(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  relay *r;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&r));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "add(id, clientFd, serverFd, toServer?, toClient?)");
    return NULL;
  }
  double id;
  int32_t cfd, sfd;
  CHECK(env, napi_get_value_double(env, argv[0], &id));
  CHECK(env, napi_get_value_int32(env, argv[1], &cfd));
  CHECK(env, napi_get_value_int32(env, argv[2], &sfd));
  if (!r->started) {
    napi_throw_error(env, "PGHA_RELAY", "the relay is stopped");
    return NULL;
  }
  int fds[2] = {fcntl(cfd, F_DUPFD_CLOEXEC, 0), fcntl(sfd, F_DUPFD_CLOEXEC, 0)};
  if (fds[0] < 0 || fds[1] < 0) {
    int err = errno;
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    napi_throw_error(env, "PGHA_RELAY", strerror(err));
    return NULL;
  }
  for (int i = 0; i < 2; i++) fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);

  loop *l = least_busy(r);
  pthread_mutex_lock(&l->mu);
  uint32_t slot = take_slot(l);
  if (slot == UINT32_MAX) {
    pthread_mutex_unlock(&l->mu);
    close(fds[0]);
    close(fds[1]);
    napi_throw_error(env, "PGHA_RELAY", "too many sessions (or out of memory)");
    return NULL;
  }
  session *s = &l->slots[slot];
  uint32_t gen = s->gen;
  memset(s, 0, sizeof *s);
  s->gen = gen;
  s->used = 1;
  s->id = id;
  s->fd[0] = fds[0];
  s->fd[1] = fds[1];
  __atomic_fetch_add(&l->live, 1, __ATOMIC_RELAXED);
  if ((argc > 3 && copy_initial(env, argv[3], &s->dir[0]) < 0) ||
      (argc > 4 && copy_initial(env, argv[4], &s->dir[1]) < 0)) {
    free_slot(l, slot);
    pthread_mutex_unlock(&l->mu);
    napi_throw_error(env, "PGHA_RELAY", "bad initial bytes");
    return NULL;
  }
  update_interest(l, slot);
  double handle = ((double)s->gen * (double)MAX_SLOTS + (double)slot) * (double)MAX_LOOPS + (double)l->index;
  pthread_mutex_unlock(&l->mu);
  napi_value out;
  CHECK(env, napi_create_double(env, handle, &out));
  return out;
}

/* close(handle) ends the session (the fence); bytes(handle) reads its counts. Both give null for
 * a handle whose session has ended. */
static napi_value relay_lookup(napi_env env, napi_callback_info info, int end) {
  size_t argc = 1;
  napi_value argv[1];
  relay *r;
  double handle;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&r));
  if (argc < 1 || napi_get_value_double(env, argv[0], &handle) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a relay handle");
    return NULL;
  }
  loop *l = loop_of(r, handle);
  if (!l || !r->started) return js_null(env);
  pthread_mutex_lock(&l->mu);
  uint32_t slot = find(l, handle);
  if (slot == UINT32_MAX) {
    pthread_mutex_unlock(&l->mu);
    return js_null(env);
  }
  double a = l->slots[slot].dir[0].bytes, b = l->slots[slot].dir[1].bytes;
  if (end) {
    /* Reads what is waiting on both sockets first: closing a socket with unread bytes sends a
     * reset, and a client would then read "connection reset" instead of the end of the stream. */
    for (int side = 0; side < 2; side++) {
      int fd = l->slots[slot].fd[side];
      size_t drained = 0;
      ssize_t n;
      while (drained < DRAIN_LIMIT && (n = recv(fd, l->buf, sizeof l->buf, MSG_DONTWAIT)) > 0)
        drained += (size_t)n;
    }
    free_slot(l, slot);
  }
  pthread_mutex_unlock(&l->mu);
  return make_pair(env, a, b);
}

static napi_value relay_close(napi_env env, napi_callback_info info) { return relay_lookup(env, info, 1); }

static napi_value relay_bytes(napi_env env, napi_callback_info info) { return relay_lookup(env, info, 0); }

/* Wakes a loop's thread out of epoll_wait. */
static void wake(loop *l) {
  uint64_t one = 1;
  ssize_t ignored = write(l->wakefd, &one, sizeof one);
  (void)ignored;
}

/* Stops the threads and closes every session; idempotent. */
static void stop_relay(relay *r) {
  if (!r->started) return;
  r->started = 0;
  r->stopping = 1;
  for (uint32_t i = 0; i < r->nloops; i++) {
    loop *l = &r->loops[i];
    if (l->thread_started) {
      wake(l);
      pthread_join(l->thread, NULL);
      l->thread_started = 0;
    }
    for (uint32_t k = 0; k < l->nslots; k++)
      if (l->slots[k].used) free_slot(l, k);
  }
  napi_release_threadsafe_function(r->on_close, napi_tsfn_abort);
}

static napi_value relay_stop(napi_env env, napi_callback_info info) {
  relay *r;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&r));
  stop_relay(r);
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

static napi_value relay_threads(napi_env env, napi_callback_info info) {
  relay *r;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&r));
  napi_value out;
  CHECK(env, napi_create_uint32(env, r->nloops, &out));
  return out;
}

static void call_on_close(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  closed_event *ev = data;
  if (env != NULL && cb != NULL) {
    napi_value argv[4], undef;
    napi_create_double(env, ev->id, &argv[0]);
    napi_create_double(env, ev->from_client, &argv[1]);
    napi_create_double(env, ev->to_client, &argv[2]);
    napi_create_string_utf8(env, ev->reason, NAPI_AUTO_LENGTH, &argv[3]);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 4, argv, NULL);
  }
  free(ev);
}

/* Frees the loops (their threads must have stopped). */
static void free_relay(relay *r) {
  for (uint32_t i = 0; i < r->nloops; i++) {
    loop *l = &r->loops[i];
    if (l->epfd >= 0) close(l->epfd);
    if (l->wakefd >= 0) close(l->wakefd);
    pthread_mutex_destroy(&l->mu);
    free(l->slots);
  }
  free(r->loops);
  free(r);
}

static void finalize_relay(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay *r = data;
  stop_relay(r);
  free_relay(r);
}

/* Sets up loop `i`'s epoll set and wake-up eventfd. Returns 0 or an errno. */
static int init_loop(relay *r, uint32_t i) {
  loop *l = &r->loops[i];
  l->r = r;
  l->index = i;
  l->free_head = UINT32_MAX;
  pthread_mutex_init(&l->mu, NULL);
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->epfd < 0 || l->wakefd < 0) return errno;
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &e) < 0) return errno;
  return 0;
}

static napi_value create_relay(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t = napi_undefined;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "createRelay(onClose, threads?)");
    return NULL;
  }
  uint32_t threads = 1;
  if (argc > 1 && napi_typeof(env, argv[1], &t) == napi_ok && t == napi_number) {
    CHECK(env, napi_get_value_uint32(env, argv[1], &threads));
  }
  if (threads < 1 || threads > MAX_LOOPS) {
    napi_throw_range_error(env, NULL, "createRelay: threads must be 1 to 16");
    return NULL;
  }
  relay *r = calloc(1, sizeof *r);
  loop *loops = calloc(threads, sizeof *loops);
  if (!r || !loops) {
    free(r);
    free(loops);
    napi_throw_error(env, "PGHA_RELAY", "out of memory");
    return NULL;
  }
  r->loops = loops;
  for (uint32_t i = 0; i < threads; i++) loops[i].epfd = loops[i].wakefd = -1;
  r->nloops = threads;
  for (uint32_t i = 0; i < threads; i++) {
    int err = init_loop(r, i);
    if (err != 0) {
      free_relay(r);
      napi_throw_error(env, "PGHA_RELAY", strerror(err));
      return NULL;
    }
  }

  napi_value name;
  napi_create_string_utf8(env, "pgha_relay.onClose", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_on_close,
                                      &r->on_close) != napi_ok) {
    free_relay(r);
    napi_throw_error(env, "PGHA_RELAY", "could not create the close callback");
    return NULL;
  }
  /* The relay must not keep the process alive by itself. */
  napi_unref_threadsafe_function(env, r->on_close);

  r->started = 1;
  for (uint32_t i = 0; i < threads; i++) {
    if (pthread_create(&loops[i].thread, NULL, loop_main, &loops[i]) != 0) {
      stop_relay(r);
      free_relay(r);
      napi_throw_error(env, "PGHA_RELAY", "could not start a relay thread");
      return NULL;
    }
    loops[i].thread_started = 1;
  }

  napi_value obj;
  CHECK(env, napi_create_object(env, &obj));
  napi_property_descriptor props[] = {
      {"add", NULL, relay_add, NULL, NULL, NULL, napi_default, r},
      {"close", NULL, relay_close, NULL, NULL, NULL, napi_default, r},
      {"bytes", NULL, relay_bytes, NULL, NULL, NULL, napi_default, r},
      {"stop", NULL, relay_stop, NULL, NULL, NULL, napi_default, r},
      {"threads", NULL, relay_threads, NULL, NULL, NULL, napi_default, r},
  };
  CHECK(env, napi_define_properties(env, obj, sizeof props / sizeof props[0], props));
  CHECK(env, napi_wrap(env, obj, r, finalize_relay, NULL, NULL));
  return obj;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "createRelay", NAPI_AUTO_LENGTH, create_relay, NULL, &fn) != napi_ok)
    return NULL;
  if (napi_set_named_property(env, exports, "createRelay", fn) != napi_ok) return NULL;
  return exports;
}
