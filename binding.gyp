{
  "targets": [
    {
      "target_name": "pgha_relay",
      "sources": ["native/relay.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "libraries": ["-lpthread"]
    },
    {
      "target_name": "pgha_memory",
      "sources": ["native/memory.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    },
    {
      "target_name": "pgha_reap",
      "sources": ["native/reap.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    }
  ]
}
