/**
 * How a replica gets its data (Patroni's `create_replica`): the methods of
 * `postgresql.create_replica_methods` (or, for a standby leader, `standby_cluster.create_replica_methods`)
 * tried in order until one succeeds. `basebackup` is pg_basebackup from the source; any other name
 * is a command (its section's `command`, else the name itself) run with `--scope`, `--role`,
 * `--datadir` and `--connstring` (unless `no_params`) and the section's other keys as `--key=value`.
 * Without a source to copy from, only methods marked `no_leader` run.
 */
import type { ReplicaMethodConfig } from '../config/types.js';

export type ReplicaStep =
  | { method: 'basebackup'; kind: 'basebackup' }
  | { method: string; kind: 'command'; command: string; args: string[]; keepData: boolean };

export function planReplicaMethods(input: {
  methods: readonly string[];
  sections: Readonly<Record<string, ReplicaMethodConfig>>;
  /** libpq connection string of the source, or null when there is none to copy from. */
  connstring: string | null;
  scope: string;
  dataDir: string;
}): ReplicaStep[] {
  const steps: ReplicaStep[] = [];
  const methods = input.methods.length > 0 ? input.methods : ['basebackup'];
  for (const method of methods) {
    const sec = input.sections[method];
    if (method === 'basebackup') {
      if (input.connstring !== null) steps.push({ method, kind: 'basebackup' });
      continue;
    }
    if (input.connstring === null && !sec?.no_leader) continue;
    const args: string[] = [];
    if (!sec?.no_params) {
      for (const [k, v] of Object.entries(sec?.options ?? {})) args.push(`--${k}=${v}`);
      args.push(
        `--scope=${input.scope}`,
        '--role=replica',
        `--datadir=${input.dataDir}`,
        `--connstring=${input.connstring ?? ''}`,
      );
    }
    steps.push({
      method,
      kind: 'command',
      command: sec?.command ?? method,
      args,
      keepData: sec?.keep_data ?? false,
    });
  }
  return steps;
}

/** The arguments of a custom bootstrap command (Patroni's `_custom_bootstrap`). */
export function bootstrapArgs(noParams: boolean, scope: string, dataDir: string): string[] {
  return noParams ? [] : [`--scope=${scope}`, `--datadir=${dataDir}`];
}
