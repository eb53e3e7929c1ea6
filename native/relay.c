/*
 * pgha_relay: the router's native data path.
 *
 * The router parses each session's startup phase in JavaScript (encryption requests, the startup
 * packet, authentication, the cancel key), then hands the two connected sockets to this relay,
 * which copies bytes between them on its own thread until either side closes or JavaScript closes
 * the session (the fence).
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
 * Tracked sessions (plaintext PostgreSQL that the router may move to another server) also follow
 * message boundaries in both directions: a 5-byte header per message, nothing allocated. From them:
 * the transaction status of the last ReadyForQuery, the sync points still unanswered, COPY, and
 * whether each direction stands between two messages. With those the relay can
 *   - hold a session at its next idle transaction boundary (JavaScript asked: a switchover drains);
 *   - stop it at once (the fence) and say where it stood;
 *   - report the server's loss (end of stream, reset, or a shutdown FATAL, which is kept back from
 *     the client) instead of ending the session;
 *   - take a new server connection for it (JavaScript authenticated it and replayed the session);
 *   - report the few client statements that change session state (SET, PREPARE, LISTEN, a named
 *     Parse, ...: classified by their first keyword, without copying others anywhere) and the
 *     server's ParameterStatus messages, so JavaScript can replay the session elsewhere.
 *
 * JavaScript side (src/router/native.ts):
 *   const relay = createRelay((id, kind, info) => ..., threads?)
 *   relay.add(id, clientFd, serverFd, toServer?, toClient?, track?) -> handle   (dups the fds)
 *   relay.hold(handle) / relay.stop(handle) -> state / relay.release(handle)
 *   relay.takeServer(handle) -> fd / relay.attach(handle, serverFd, toClient?, status)
 *   relay.finish(handle, lastWords)
 *   relay.close(handle) -> [fromClient, toClient] | null
 *   relay.bytes(handle) -> [fromClient, toClient] | null
 *   relay.stop()
 * `handle` holds a loop index, a slot index and a generation, so a stale handle never reaches a
 * reused slot.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUFFER_SIZE (64 * 1024)
#define MAX_EVENTS 256
#define DRAIN_LIMIT (1024 * 1024) /* bytes dropped per socket when JavaScript closes a session */
#define CAPTURE_MAX (64 * 1024)   /* bytes of a client statement kept to classify and report it */
#define ERROR_MAX (16 * 1024)     /* a server ErrorResponse longer than this is passed on unread */
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

/* Message framing of one direction of a tracked session. */
typedef struct {
  uint8_t hdr[5];
  uint8_t hdr_len;  /* header bytes seen of the current message; 5 while in its body */
  uint8_t type;
  uint8_t capturing; /* the body is being copied into `cap` */
  uint8_t withheld;  /* (server) the whole message is kept back from the client until complete */
  uint8_t truncated; /* the body was longer than the capture limit */
  uint32_t left;     /* body bytes of the current message still to come */
  char *cap;
  uint32_t cap_len, cap_size, cap_max;
} framer;

typedef struct {
  uint32_t gen;
  int used;
  uint32_t next_free;
  double id; /* the JavaScript session id */
  int fd[2];
  uint32_t interest[2]; /* epoll events registered per fd; 0: not in the epoll set */
  direction dir[2];
  /* tracking (track == 1 only) */
  int track;
  int broken;       /* a length that cannot be: tracking gave up, the session is no longer movable */
  int stopped;      /* nothing is read (held, lost or stopped by JavaScript); pending bytes still go out */
  int hold;         /* stop at the next idle transaction boundary */
  int lost;         /* the server connection ended or failed */
  char status;      /* transaction status of the last ReadyForQuery: I, T or E */
  int32_t pending_z; /* sync points (Query, Sync, FunctionCall) not yet answered by ReadyForQuery */
  int unsynced;     /* extended-protocol messages since the last Sync */
  int copy;         /* the server started a COPY that has not ended */
  int fatal;        /* the server sent a FATAL error that went to the client: its close is the end */
  framer fr[2];
} session;

enum { EV_CLOSED = 0, EV_HELD = 1, EV_LOST = 2, EV_CLIENT = 3, EV_SERVER = 4 };
static const char *EV_NAMES[] = {"closed", "held", "lost", "client", "server"};

typedef struct {
  char status;
  int32_t pending_z;
  uint8_t unsynced, copy, client_boundary, server_boundary, broken, lost;
} snapshot;

typedef struct {
  int kind;
  double id, from_client, to_client;
  const char *reason; /* static text */
  snapshot st;
  uint8_t type, truncated;
  char *data; /* malloc'd message body (client, server) or kept-back ErrorResponse (lost) */
  uint32_t len;
} relay_event;

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
  napi_threadsafe_function on_event;
} relay;

/* ---- sessions (called with mu held) ------------------------------------------------------------ */

static uint64_t tag(uint32_t slot, int side) { return ((uint64_t)slot << 1) | (uint64_t)side; }

/* What fd `side` must be watched for: reading while its direction may read, writing while the
 * other direction has bytes for it. A stopped session only writes out what it holds for the client. */
static uint32_t wanted(const session *s, int side) {
  uint32_t ev = 0;
  const direction *out = &s->dir[side];    /* reads from fd[side] */
  const direction *in = &s->dir[1 - side]; /* writes to fd[side] */
  if (s->fd[side] < 0) return 0;
  if (s->stopped) return (side == 0 && in->pending_len > 0) ? EPOLLOUT : 0;
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

static void reset_framer(framer *f) {
  f->hdr_len = 0;
  f->left = 0;
  f->capturing = 0;
  f->withheld = 0;
  f->truncated = 0;
  f->cap_len = 0;
}

static void free_direction(direction *d) {
  free(d->pending);
  d->pending = NULL;
  d->pending_len = d->pending_off = 0;
}

static void free_slot(loop *l, uint32_t slot) {
  session *s = &l->slots[slot];
  for (int side = 0; side < 2; side++) {
    if (s->fd[side] >= 0) close(s->fd[side]); /* also leaves the epoll set */
    s->fd[side] = -1;
    free_direction(&s->dir[side]);
    s->interest[side] = 0;
    free(s->fr[side].cap);
    s->fr[side].cap = NULL;
    s->fr[side].cap_size = 0;
  }
  s->used = 0;
  s->gen = (s->gen + 1) & GEN_MASK;
  s->next_free = l->free_head;
  l->free_head = slot;
  __atomic_fetch_sub(&l->live, 1, __ATOMIC_RELAXED);
}

static int at_boundary(const framer *f) { return f->hdr_len == 0 && f->left == 0; }

static snapshot snap(const session *s) {
  snapshot st = {
      .status = s->status,
      .pending_z = s->pending_z,
      .unsynced = (uint8_t)s->unsynced,
      .copy = (uint8_t)s->copy,
      .client_boundary = (uint8_t)at_boundary(&s->fr[0]),
      .server_boundary = (uint8_t)at_boundary(&s->fr[1]),
      .broken = (uint8_t)s->broken,
      .lost = (uint8_t)s->lost,
  };
  return st;
}

/* Queues an event for JavaScript (takes ownership of ev and its data). */
static void post(loop *l, relay_event *ev) {
  if (napi_call_threadsafe_function(l->r->on_event, ev, napi_tsfn_nonblocking) != napi_ok) {
    free(ev->data);
    free(ev);
  }
}

static relay_event *new_event(const session *s, int kind) {
  relay_event *ev = calloc(1, sizeof *ev);
  if (!ev) return NULL;
  ev->kind = kind;
  ev->id = s->id;
  ev->st = snap(s);
  ev->from_client = s->dir[0].bytes;
  ev->to_client = s->dir[1].bytes;
  return ev;
}

/* Ends a session the relay saw finish, and tells JavaScript. */
static void end_session(loop *l, uint32_t slot, const char *reason) {
  session *s = &l->slots[slot];
  relay_event *ev = new_event(s, EV_CLOSED);
  if (ev) ev->reason = reason;
  free_slot(l, slot);
  if (ev) post(l, ev);
}

/* The server connection of a tracked session is gone: stop, keep the client, tell JavaScript.
 * `kept` is a server message kept back from the client (a shutdown FATAL), or NULL. */
static void server_lost(loop *l, uint32_t slot, const char *reason, const char *kept, uint32_t kept_len) {
  session *s = &l->slots[slot];
  s->lost = 1;
  s->stopped = 1;
  s->hold = 0;
  update_interest(l, slot);
  relay_event *ev = new_event(s, EV_LOST);
  if (!ev) return;
  ev->reason = reason;
  if (kept && kept_len > 0 && (ev->data = malloc(kept_len)) != NULL) {
    memcpy(ev->data, kept, kept_len);
    ev->len = kept_len;
  }
  post(l, ev);
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

/* Keeps `len` bytes to write later, after what `d` already holds. Returns 0 or -1. */
static int keep(direction *d, const char *data, size_t len) {
  if (len == 0) return 0;
  char *grown = malloc(d->pending_len + len);
  if (!grown) return -1;
  if (d->pending_len > 0) memcpy(grown, d->pending + d->pending_off, d->pending_len);
  memcpy(grown + d->pending_len, data, len);
  free(d->pending);
  d->pending = grown;
  d->pending_off = 0;
  d->pending_len += len;
  return 0;
}

/* Writes `len` bytes to `fd` after whatever is pending, keeping what the socket does not take.
 * Returns 0 or -1. */
static int emit(direction *d, int fd, const char *data, size_t len) {
  if (len == 0) return 0;
  if (d->pending_len > 0) return keep(d, data, len);
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
  return keep(d, data + off, len - off);
}

/* Passes an ended direction's end on, once its bytes are out. */
static void pass_end(direction *d, int fd) {
  if (d->eof && !d->shut && d->pending_len == 0 && fd >= 0) {
    shutdown(fd, SHUT_WR);
    d->shut = 1;
  }
}

/* ---- message tracking ---------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void cap_append(framer *f, const uint8_t *p, size_t k) {
  if (f->cap_len >= f->cap_max) {
    if (k > 0) f->truncated = 1;
    return;
  }
  size_t room = f->cap_max - f->cap_len;
  if (k > room) {
    f->truncated = 1;
    k = room;
  }
  if (f->cap_len + k > f->cap_size) {
    uint32_t size = f->cap_size ? f->cap_size : 256;
    while (size < f->cap_len + k) size *= 2;
    if (size > f->cap_max) size = f->cap_max;
    char *grown = realloc(f->cap, size);
    if (!grown) {
      f->truncated = 1;
      return;
    }
    f->cap = grown;
    f->cap_size = size;
  }
  memcpy(f->cap + f->cap_len, p, k);
  f->cap_len += (uint32_t)k;
}

/* First words of statements that may change what a session carries beyond a transaction. */
static int keyword_matters(const char *w, size_t n) {
  static const char *const words[] = {"SET",   "RESET",   "PREPARE", "DEALLOCATE", "LISTEN", "UNLISTEN",
                                      "CREATE", "DECLARE", "DISCARD", "CLOSE",      "LOAD",   "DO"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strlen(words[i]) == n && strncasecmp(w, words[i], n) == 0) return 1;
  return 0;
}

/* Whether a statement text may change session state: its first keyword, a second statement, or a
 * call of an advisory lock or set_config function. Literals are skipped; errs on reporting. */
static int sql_matters(const char *q, size_t n) {
  size_t i = 0;
  for (;;) {
    while (i < n && (isspace((unsigned char)q[i]) || q[i] == '(')) i++;
    if (i + 1 < n && q[i] == '-' && q[i + 1] == '-') {
      while (i < n && q[i] != '\n') i++;
      continue;
    }
    if (i + 1 < n && q[i] == '/' && q[i + 1] == '*') {
      i += 2;
      while (i + 1 < n && !(q[i] == '*' && q[i + 1] == '/')) i++;
      i += 2;
      continue;
    }
    break;
  }
  size_t w = i;
  while (w < n && isalpha((unsigned char)q[w])) w++;
  if (keyword_matters(q + i, w - i)) return 1;
  char quote = 0;
  int after_end = 0;
  for (size_t k = w; k < n; k++) {
    char c = q[k];
    if (quote) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      continue;
    }
    if (after_end) {
      if (!isspace((unsigned char)c) && c != ';') return 1;
      continue;
    }
    if (c == ';') {
      after_end = 1;
      continue;
    }
    if ((c | 0x20) == 'a' && k + 8 <= n && strncasecmp(q + k, "advisory", 8) == 0) return 1;
    if ((c | 0x20) == 's' && k + 10 <= n && strncasecmp(q + k, "set_config", 10) == 0) return 1;
  }
  return 0;
}

/* Whether a complete client message (type and captured body) is worth reporting. */
static int client_msg_matters(uint8_t type, const char *b, uint32_t len) {
  if (type == 'C') return len >= 2 && b[0] == 'S' && b[1] != 0; /* Close of a named statement */
  const char *q = b;
  size_t qlen = len;
  if (type == 'P') {
    const char *nul = memchr(b, 0, len);
    if (!nul || nul != b) return 1; /* a named statement (or unreadable): report */
    q = nul + 1;
    qlen = len - (size_t)(q - b);
  }
  const char *end = memchr(q, 0, qlen);
  if (end) qlen = (size_t)(end - q);
  return sql_matters(q, qlen);
}

static void client_msg_start(session *s, framer *f) {
  switch (f->type) {
  case 'Q':
  case 'F':
    s->pending_z++;
    break;
  case 'S':
    s->pending_z++;
    s->unsynced = 0;
    break;
  case 'P':
  case 'B':
  case 'E':
  case 'D':
  case 'C':
  case 'H':
    s->unsynced = 1;
    break;
  default:
    break;
  }
  f->capturing = f->type == 'Q' || f->type == 'P' || f->type == 'C';
  f->cap_len = 0;
  f->truncated = 0;
  f->cap_max = CAPTURE_MAX;
}

static void client_msg_end(loop *l, uint32_t slot) {
  session *s = &l->slots[slot];
  framer *f = &s->fr[0];
  if (f->capturing && client_msg_matters(f->type, f->cap, f->cap_len)) {
    relay_event *ev = new_event(s, EV_CLIENT);
    if (ev) {
      ev->type = f->type;
      ev->truncated = f->truncated;
      if (f->cap_len > 0 && (ev->data = malloc(f->cap_len)) != NULL) {
        memcpy(ev->data, f->cap, f->cap_len);
        ev->len = f->cap_len;
      }
      post(l, ev);
    }
  }
  reset_framer(f);
}

/* Follows client -> server bytes (they are all passed on). */
static void track_client(loop *l, uint32_t slot, const uint8_t *p, size_t n) {
  session *s = &l->slots[slot];
  framer *f = &s->fr[0];
  size_t off = 0;
  while (off < n && !s->broken) {
    if (f->hdr_len < 5) {
      size_t k = 5 - f->hdr_len;
      if (k > n - off) k = n - off;
      memcpy(f->hdr + f->hdr_len, p + off, k);
      f->hdr_len += (uint8_t)k;
      off += k;
      if (f->hdr_len < 5) break;
      uint32_t len = be32(f->hdr + 1);
      if (len < 4 || len > 0x7fffffff) {
        s->broken = 1;
        break;
      }
      f->type = f->hdr[0];
      f->left = len - 4;
      client_msg_start(s, f);
      if (f->left == 0) client_msg_end(l, slot);
      continue;
    }
    size_t k = f->left;
    if (k > n - off) k = n - off;
    if (f->capturing) cap_append(f, p + off, k);
    f->left -= (uint32_t)k;
    off += k;
    if (f->left == 0) client_msg_end(l, slot);
  }
}

/* An ErrorResponse field's value (code `code`), or NULL. */
static const char *error_field(const char *body, uint32_t len, char code, size_t *vlen) {
  uint32_t pos = 0;
  while (pos < len && body[pos] != 0) {
    char c = body[pos];
    const char *v = body + pos + 1;
    const char *end = memchr(v, 0, len - pos - 1);
    if (!end) return NULL;
    if (c == code) {
      *vlen = (size_t)(end - v);
      return v;
    }
    pos = (uint32_t)(end - body) + 1;
  }
  return NULL;
}

/* A FATAL that says the server is going away (admin shutdown, crash, not accepting connections):
 * kept back from the client, who may go on elsewhere. Other errors pass. */
static int is_shutdown_fatal(const char *body, uint32_t len) {
  size_t n = 0;
  const char *code = error_field(body, len, 'C', &n);
  if (!code || n != 5 || strncmp(code, "57P0", 4) != 0 || code[4] < '1' || code[4] > '3') return 0;
  const char *sev = error_field(body, len, 'V', &n);
  if (!sev) sev = error_field(body, len, 'S', &n);
  return sev && ((n == 5 && strncmp(sev, "FATAL", 5) == 0) || (n == 5 && strncmp(sev, "PANIC", 5) == 0));
}

/* A server message is complete. Returns 1 when the session stopped (lost), else 0. */
static int server_msg_end(loop *l, uint32_t slot, int *write_failed) {
  session *s = &l->slots[slot];
  framer *f = &s->fr[1];
  switch (f->type) {
  case 'Z':
    if (f->cap_len >= 1) s->status = f->cap[0];
    if (s->pending_z > 0) s->pending_z--;
    s->copy = 0;
    break;
  case 'S': {
    relay_event *ev = new_event(s, EV_SERVER);
    if (ev) {
      ev->type = 'S';
      if (f->cap_len > 0 && (ev->data = malloc(f->cap_len)) != NULL) {
        memcpy(ev->data, f->cap, f->cap_len);
        ev->len = f->cap_len;
      }
      post(l, ev);
    }
    break;
  }
  case 'E':
    if (f->withheld) {
      /* cap holds the whole message, header included */
      if (is_shutdown_fatal(f->cap + 5, f->cap_len - 5)) {
        f->hdr_len = 0; /* the message is whole (and kept back): a boundary for the snapshot */
        f->left = 0;
        server_lost(l, slot, "server shut down", f->cap, f->cap_len);
        reset_framer(f);
        return 1;
      }
      if (emit(&s->dir[1], s->fd[0], f->cap, f->cap_len) < 0) *write_failed = 1;
    }
    {
      size_t n = 0;
      const char *body = f->withheld ? f->cap + 5 : f->cap;
      uint32_t blen = f->withheld ? f->cap_len - 5 : f->cap_len;
      const char *sev = error_field(body, blen, 'V', &n);
      if (!sev) sev = error_field(body, blen, 'S', &n);
      if (sev && n == 5 && (strncmp(sev, "FATAL", 5) == 0 || strncmp(sev, "PANIC", 5) == 0)) s->fatal = 1;
    }
    break;
  default:
    break;
  }
  reset_framer(f);
  return 0;
}

/* Follows server -> client bytes and passes them on, keeping a shutdown FATAL back. Returns -1
 * when writing to the client failed, 1 when the session stopped (server lost), else 0. */
static int server_bytes(loop *l, uint32_t slot, const uint8_t *p, size_t n) {
  session *s = &l->slots[slot];
  direction *d = &s->dir[1];
  int cfd = s->fd[0];
  if (!s->track || s->broken) return emit(d, cfd, (const char *)p, n) < 0 ? -1 : 0;
  framer *f = &s->fr[1];
  size_t off = 0, span = 0; /* p[span, off) goes to the client as it is */
  int failed = 0;
  while (off < n) {
    if (f->hdr_len < 5) {
      size_t had = f->hdr_len;
      size_t k = 5 - had;
      if (k > n - off) k = n - off;
      size_t hstart = off;
      memcpy(f->hdr + had, p + off, k);
      f->hdr_len += (uint8_t)k;
      off += k;
      if (f->hdr_len < 5) {
        /* The header goes on in the next read: keep its bytes back until its type is known. */
        if (emit(d, cfd, (const char *)p + span, hstart - span) < 0) return -1;
        return 0;
      }
      uint32_t len = be32(f->hdr + 1);
      if (len < 4 || len > 0x7fffffff) {
        s->broken = 1;
        if (emit(d, cfd, (const char *)p + span, hstart - span) < 0) return -1;
        if (emit(d, cfd, (const char *)f->hdr, 5) < 0) return -1;
        return emit(d, cfd, (const char *)p + off, n - off) < 0 ? -1 : 0;
      }
      f->type = f->hdr[0];
      f->left = len - 4;
      f->cap_len = 0;
      f->truncated = 0;
      f->capturing = f->type == 'Z' || f->type == 'S' || f->type == 'E';
      f->cap_max = f->type == 'E' ? ERROR_MAX + 5 : 1024;
      f->withheld = f->type == 'E' && f->left <= ERROR_MAX;
      if (f->withheld) {
        if (emit(d, cfd, (const char *)p + span, hstart - span) < 0) return -1;
        span = off;
        cap_append(f, f->hdr, 5);
      } else if (had > 0) {
        /* Header bytes kept back from the previous read (this read starts with the rest). */
        if (emit(d, cfd, (const char *)f->hdr, had) < 0) return -1;
        span = hstart;
      }
      if (f->type == 'G' || f->type == 'H' || f->type == 'W') s->copy = 1;
      if (f->left == 0) {
        int stopped = server_msg_end(l, slot, &failed);
        if (failed) return -1;
        if (stopped) return 1;
      }
      continue;
    }
    size_t k = f->left;
    if (k > n - off) k = n - off;
    if (f->capturing) cap_append(f, p + off, k);
    f->left -= (uint32_t)k;
    off += k;
    if (f->withheld) span = off; /* kept in `cap`, passed on (or not) when complete */
    if (f->left == 0) {
      int stopped = server_msg_end(l, slot, &failed);
      if (failed) return -1;
      if (stopped) return 1;
    }
  }
  if (emit(d, cfd, (const char *)p + span, off - span) < 0) return -1;
  return 0;
}

/* Idle between transactions, every message answered, nothing half sent either way. */
static int idle_boundary(const session *s) {
  return s->status == 'I' && s->pending_z == 0 && !s->unsynced && !s->copy && !s->broken &&
         at_boundary(&s->fr[0]) && at_boundary(&s->fr[1]) && s->dir[0].pending_len == 0 &&
         s->dir[1].pending_len == 0;
}

/* Stops a session that was asked to hold once it stands at an idle boundary. */
static void check_hold(loop *l, uint32_t slot) {
  session *s = &l->slots[slot];
  if (!s->hold || s->stopped || !idle_boundary(s)) return;
  s->hold = 0;
  s->stopped = 1;
  update_interest(l, slot);
  relay_event *ev = new_event(s, EV_HELD);
  if (ev) post(l, ev);
}

/* A failure on the server side: a tracked session waits for JavaScript, others end. */
static void server_failed(loop *l, uint32_t slot, const char *reason) {
  session *s = &l->slots[slot];
  if (s->track && !s->fatal && !s->dir[0].eof) return server_lost(l, slot, reason, NULL, 0);
  end_session(l, slot, reason);
}

/* Handles readiness of fd `side` of `slot`. */
static void on_event(loop *l, uint32_t slot, int side, uint32_t events) {
  session *s = &l->slots[slot];
  int src = s->fd[side], dst = s->fd[1 - side];
  direction *out = &s->dir[side];    /* fd[side] -> fd[1-side] */
  direction *in = &s->dir[1 - side]; /* fd[1-side] -> fd[side] */

  if (events & EPOLLOUT) {
    if (flush_pending(in, src) < 0) {
      if (side == 1) return server_failed(l, slot, "write failed");
      return end_session(l, slot, "write failed");
    }
    pass_end(in, src);
  }
  if (!s->stopped && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
    while (!out->eof && out->pending_len == 0 && !s->stopped) {
      ssize_t n = recv(src, l->buf, sizeof l->buf, 0);
      if (n > 0) {
        if (side == 0) {
          if (s->track && !s->broken) track_client(l, slot, (const uint8_t *)l->buf, (size_t)n);
          if (emit(out, dst, l->buf, (size_t)n) < 0) return server_failed(l, slot, "write failed");
        } else {
          int r = server_bytes(l, slot, (const uint8_t *)l->buf, (size_t)n);
          if (r < 0) return end_session(l, slot, "write failed");
          if (r > 0) return; /* the server is gone: JavaScript decides */
        }
        if ((size_t)n < sizeof l->buf) break; /* level-triggered: more data wakes us again */
        continue;
      }
      if (n == 0) {
        if (side == 1 && s->track && !s->fatal && !s->dir[0].eof)
          return server_lost(l, slot, "server closed the connection", NULL, 0);
        out->eof = 1;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (side == 1) return server_failed(l, slot, "server reset");
      return end_session(l, slot, "client reset");
    }
    pass_end(out, dst);
  }
  if (s->dir[0].shut && s->dir[1].shut) return end_session(l, slot, "closed");
  check_hold(l, slot);
  if (s->used) update_interest(l, slot);
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

static void set_bool(napi_env env, napi_value obj, const char *name, int v) {
  napi_value b;
  napi_get_boolean(env, v != 0, &b);
  napi_set_named_property(env, obj, name, b);
}

static void set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, name, n);
}

static void set_str(napi_env env, napi_value obj, const char *name, const char *v, size_t len) {
  napi_value s;
  napi_create_string_latin1(env, v, len, &s);
  napi_set_named_property(env, obj, name, s);
}

/* A session's state as JavaScript sees it. */
static napi_value state_object(napi_env env, const snapshot *st) {
  napi_value obj;
  napi_create_object(env, &obj);
  char status = st->status ? st->status : '?';
  set_str(env, obj, "status", &status, 1);
  set_num(env, obj, "pendingSync", st->pending_z);
  set_bool(env, obj, "unsynced", st->unsynced);
  set_bool(env, obj, "copy", st->copy);
  set_bool(env, obj, "clientBoundary", st->client_boundary);
  set_bool(env, obj, "serverBoundary", st->server_boundary);
  set_bool(env, obj, "broken", st->broken);
  set_bool(env, obj, "lost", st->lost);
  return obj;
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

/* A Buffer argument's bytes; len 0 for undefined/null. Returns -1 for anything else. */
static int buffer_arg(napi_env env, napi_value v, void **data, size_t *len) {
  napi_valuetype t;
  *data = NULL;
  *len = 0;
  if (napi_typeof(env, v, &t) != napi_ok || t == napi_undefined || t == napi_null) return 0;
  return napi_get_buffer_info(env, v, data, len) == napi_ok ? 0 : -1;
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

static int dup_nonblocking(int fd) {
  int out = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (out >= 0) fcntl(out, F_SETFL, fcntl(out, F_GETFL) | O_NONBLOCK);
  return out;
}

static napi_value relay_add(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  relay *r;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&r));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "add(id, clientFd, serverFd, toServer?, toClient?, track?)");
    return NULL;
  }
  double id;
  int32_t cfd, sfd;
  bool track = false;
  CHECK(env, napi_get_value_double(env, argv[0], &id));
  CHECK(env, napi_get_value_int32(env, argv[1], &cfd));
  CHECK(env, napi_get_value_int32(env, argv[2], &sfd));
  if (argc > 5) {
    napi_valuetype t;
    if (napi_typeof(env, argv[5], &t) == napi_ok && t == napi_boolean) napi_get_value_bool(env, argv[5], &track);
  }
  void *to_server = NULL, *to_client = NULL;
  size_t to_server_len = 0, to_client_len = 0;
  if ((argc > 3 && buffer_arg(env, argv[3], &to_server, &to_server_len) < 0) ||
      (argc > 4 && buffer_arg(env, argv[4], &to_client, &to_client_len) < 0)) {
    napi_throw_type_error(env, NULL, "add: initial bytes must be Buffers");
    return NULL;
  }
  if (!r->started) {
    napi_throw_error(env, "PGHA_RELAY", "the relay is stopped");
    return NULL;
  }
  int fds[2] = {dup_nonblocking(cfd), dup_nonblocking(sfd)};
  if (fds[0] < 0 || fds[1] < 0) {
    int err = errno;
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    napi_throw_error(env, "PGHA_RELAY", strerror(err));
    return NULL;
  }

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
  s->track = track;
  s->status = 'I';
  __atomic_fetch_add(&l->live, 1, __ATOMIC_RELAXED);
  /* What the client sent meanwhile goes to the server first, what the server sent to the client;
   * both through the trackers, as if just read. */
  int failed = 0;
  if (to_server_len > 0) {
    if (track) track_client(l, slot, to_server, to_server_len);
    if (keep(&s->dir[0], to_server, to_server_len) < 0) failed = 1;
  }
  if (!failed && to_client_len > 0) {
    int rc = track ? server_bytes(l, slot, to_client, to_client_len)
                   : keep(&s->dir[1], to_client, to_client_len);
    if (rc < 0) failed = 1;
  }
  if (failed) {
    free_slot(l, slot);
    pthread_mutex_unlock(&l->mu);
    napi_throw_error(env, "PGHA_RELAY", "could not keep the initial bytes");
    return NULL;
  }
  update_interest(l, slot);
  double handle = ((double)s->gen * (double)MAX_SLOTS + (double)slot) * (double)MAX_LOOPS + (double)l->index;
  pthread_mutex_unlock(&l->mu);
  napi_value out;
  CHECK(env, napi_create_double(env, handle, &out));
  return out;
}

/* The handle argument's loop and slot, locked; NULL (and nothing locked) when it is gone. */
static loop *lock_handle(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, relay **rp,
                         uint32_t *slot) {
  relay *r;
  double handle;
  if (napi_get_cb_info(env, info, argc, argv, NULL, (void **)&r) != napi_ok) return NULL;
  *rp = r;
  if (*argc < 1 || napi_get_value_double(env, argv[0], &handle) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a relay handle");
    return NULL;
  }
  loop *l = loop_of(r, handle);
  if (!l || !r->started) return NULL;
  pthread_mutex_lock(&l->mu);
  *slot = find(l, handle);
  if (*slot == UINT32_MAX) {
    pthread_mutex_unlock(&l->mu);
    return NULL;
  }
  return l;
}

/* close(handle) ends the session (the fence); bytes(handle) reads its counts. Both give null for
 * a handle whose session has ended. */
static napi_value relay_lookup(napi_env env, napi_callback_info info, int end) {
  size_t argc = 1;
  napi_value argv[1];
  relay *r;
  uint32_t slot;
  loop *l = lock_handle(env, info, &argc, argv, &r, &slot);
  if (!l) return js_null(env);
  double a = l->slots[slot].dir[0].bytes, b = l->slots[slot].dir[1].bytes;
  if (end) {
    /* Reads what is waiting on both sockets first: closing a socket with unread bytes sends a
     * reset, and a client would then read "connection reset" instead of the end of the stream. */
    for (int side = 0; side < 2; side++) {
      int fd = l->slots[slot].fd[side];
      if (fd < 0) continue;
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

/* finish(handle, bytes): ends a session with last words to the client (a FATAL saying why), after
 * what it still holds for the client; best effort: a client that does not read loses them. */
static napi_value relay_finish(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  relay *r;
  uint32_t slot;
  void *data = NULL;
  size_t len = 0;
  loop *l = lock_handle(env, info, &argc, argv, &r, &slot);
  if (!l) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  session *s = &l->slots[slot];
  if (argc > 1) buffer_arg(env, argv[1], &data, &len);
  int fd = s->fd[0];
  size_t drained = 0;
  ssize_t n;
  while (drained < DRAIN_LIMIT && (n = recv(fd, l->buf, sizeof l->buf, MSG_DONTWAIT)) > 0) drained += (size_t)n;
  if (s->dir[1].pending_len > 0) {
    ssize_t w = send(fd, s->dir[1].pending + s->dir[1].pending_off, s->dir[1].pending_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 || (size_t)w < s->dir[1].pending_len) len = 0; /* the client is not reading: no room */
  }
  if (len > 0) {
    ssize_t ignored = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)ignored;
  }
  shutdown(fd, SHUT_WR);
  free_slot(l, slot);
  pthread_mutex_unlock(&l->mu);
  napi_get_boolean(env, true, &out);
  return out;
}

/* hold(handle): stop at the next idle transaction boundary (a "held" event says when); true if
 * the session exists. A session already at one is held at once (the event follows). */
static napi_value relay_hold(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  relay *r;
  uint32_t slot;
  loop *l = lock_handle(env, info, &argc, argv, &r, &slot);
  if (!l) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  session *s = &l->slots[slot];
  int ok = s->track && !s->stopped;
  if (ok) {
    s->hold = 1;
    check_hold(l, slot);
  }
  pthread_mutex_unlock(&l->mu);
  napi_get_boolean(env, ok, &out);
  return out;
}

/* pause(handle): stops reading both sockets now (the fence) and returns the session's state,
 * or null when it is gone. */
static napi_value relay_pause(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  relay *r;
  uint32_t slot;
  loop *l = lock_handle(env, info, &argc, argv, &r, &slot);
  if (!l) return js_null(env);
  session *s = &l->slots[slot];
  s->stopped = 1;
  s->hold = 0;
  update_interest(l, slot);
  snapshot st = snap(s);
  pthread_mutex_unlock(&l->mu);
  return state_object(env, &st);
}

/* state(handle): the session's state, or null. */
static napi_value relay_state(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  relay *r;
  uint32_t slot;
  loop *l = lock_handle(env, info, &argc, argv, &r, &slot);
  if (!l) return js_null(env);
  snapshot st = snap(&l->slots[slot]);
  pthread_mutex_unlock(&l->mu);
  return state_object(env, &st);
}

/* release(handle): a held or paused session goes on with the server it has. */
static napi_value relay_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  relay *r;
  uint32_t slot;
  loop *l = lock_handle(env, info, &argc, argv, &r, &slot);
  int ok = 0;
  if (l) {
    session *s = &l->slots[slot];
    if (!s->lost && s->fd[1] >= 0) {
      s->stopped = 0;
      s->hold = 0;
      update_interest(l, slot);
      ok = 1;
    }
    pthread_mutex_unlock(&l->mu);
  }
  napi_get_boolean(env, ok, &out);
  return out;
}

/* takeServer(handle): the server socket of a stopped session, given to JavaScript (which then
 * owns the descriptor); -1 when there is none. */
static napi_value relay_take_server(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  relay *r;
  uint32_t slot;
  int fd = -1;
  loop *l = lock_handle(env, info, &argc, argv, &r, &slot);
  if (l) {
    session *s = &l->slots[slot];
    if (s->stopped && s->fd[1] >= 0) {
      struct epoll_event e = {0};
      if (s->interest[1]) epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd[1], &e);
      s->interest[1] = 0;
      fd = s->fd[1];
      s->fd[1] = -1;
      free_direction(&s->dir[0]); /* client bytes for that server: they go nowhere now */
    }
    pthread_mutex_unlock(&l->mu);
  }
  napi_create_int32(env, fd, &out);
  return out;
}

/* attach(handle, serverFd, toClient?, status): a stopped session goes on with a new server
 * connection (the descriptor is duplicated), after writing `toClient` to the client; `status` is
 * the new server's transaction status. */
static napi_value relay_attach(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  relay *r;
  uint32_t slot;
  int32_t sfd;
  void *to_client = NULL;
  size_t to_client_len = 0;
  char status = 'I';
  loop *l = lock_handle(env, info, &argc, argv, &r, &slot);
  if (!l) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  session *s = &l->slots[slot];
  int ok = argc >= 2 && napi_get_value_int32(env, argv[1], &sfd) == napi_ok && s->stopped;
  if (ok && argc > 2 && buffer_arg(env, argv[2], &to_client, &to_client_len) < 0) ok = 0;
  if (ok && argc > 3) {
    char tmp[4] = {0};
    size_t n = 0;
    if (napi_get_value_string_latin1(env, argv[3], tmp, sizeof tmp, &n) == napi_ok && n == 1) status = tmp[0];
  }
  int fd = ok ? dup_nonblocking(sfd) : -1;
  if (fd < 0) ok = 0;
  if (ok) {
    if (s->fd[1] >= 0) {
      struct epoll_event e = {0};
      if (s->interest[1]) epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd[1], &e);
      close(s->fd[1]);
    }
    s->fd[1] = fd;
    s->interest[1] = 0;
    free_direction(&s->dir[0]);
    s->dir[0].eof = s->dir[0].shut = 0;
    s->dir[1].eof = s->dir[1].shut = 0;
    reset_framer(&s->fr[1]);
    s->status = status;
    s->pending_z = 0;
    s->unsynced = 0;
    s->copy = 0;
    s->fatal = 0;
    s->lost = 0;
    s->hold = 0;
    s->stopped = 0;
    /* The router's own messages for the client (and what the new server sent after its
     * ReadyForQuery) go through the tracker like any server bytes. */
    if (to_client_len > 0 && server_bytes(l, slot, to_client, to_client_len) < 0) ok = 0;
    if (s->used) update_interest(l, slot);
  }
  pthread_mutex_unlock(&l->mu);
  napi_get_boolean(env, ok, &out);
  return out;
}

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
  napi_release_threadsafe_function(r->on_event, napi_tsfn_abort);
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

static void call_on_event(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  relay_event *ev = data;
  if (env != NULL && cb != NULL) {
    napi_value argv[3], undef, info;
    napi_create_double(env, ev->id, &argv[0]);
    napi_create_string_utf8(env, EV_NAMES[ev->kind], NAPI_AUTO_LENGTH, &argv[1]);
    info = state_object(env, &ev->st);
    set_num(env, info, "fromClient", ev->from_client);
    set_num(env, info, "toClient", ev->to_client);
    if (ev->reason) set_str(env, info, "reason", ev->reason, strlen(ev->reason));
    if (ev->kind == EV_CLIENT || ev->kind == EV_SERVER) {
      char type = (char)ev->type;
      set_str(env, info, "type", &type, 1);
      set_bool(env, info, "truncated", ev->truncated);
    }
    if (ev->data) {
      napi_value buf;
      void *copy;
      if (napi_create_buffer_copy(env, ev->len, ev->data, &copy, &buf) == napi_ok)
        napi_set_named_property(env, info, "data", buf);
    }
    argv[2] = info;
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 3, argv, NULL);
  }
  free(ev->data);
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
    napi_throw_type_error(env, NULL, "createRelay(onEvent, threads?)");
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
  napi_create_string_utf8(env, "pgha_relay.onEvent", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_on_event,
                                      &r->on_event) != napi_ok) {
    free_relay(r);
    napi_throw_error(env, "PGHA_RELAY", "could not create the event callback");
    return NULL;
  }
  /* The relay must not keep the process alive by itself. */
  napi_unref_threadsafe_function(env, r->on_event);

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
      {"hold", NULL, relay_hold, NULL, NULL, NULL, napi_default, r},
      {"pause", NULL, relay_pause, NULL, NULL, NULL, napi_default, r},
      {"state", NULL, relay_state, NULL, NULL, NULL, napi_default, r},
      {"release", NULL, relay_release, NULL, NULL, NULL, napi_default, r},
      {"takeServer", NULL, relay_take_server, NULL, NULL, NULL, napi_default, r},
      {"attach", NULL, relay_attach, NULL, NULL, NULL, napi_default, r},
      {"finish", NULL, relay_finish, NULL, NULL, NULL, napi_default, r},
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
