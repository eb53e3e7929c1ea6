/**
 * Quorum commit (`synchronous_mode: quorum`), as Patroni 4 runs it. Two places describe it:
 * - `synchronous_standby_names = ANY numsync (sync…)`: a commit waits for `numsync` of `sync`;
 * - the `sync` key `{leader, sync_standby: voters, quorum}`: a member racing for the leader key
 *   must see `quorum` of the voters (and the old leader) not ahead of it.
 *
 * Safety: every set of nodes that can acknowledge a commit must meet every set of voters that can
 * make a new leader. With the leader counted on both sides that is
 *
 *     |voters ∪ sync| ≤ quorum + numsync            (and one set contains the other),
 *
 * which must hold after each single change of either place, since the two are written one after
 * the other and a failover may come between. `transitions` returns the changes that lead from the
 * current state to the wanted one (sync = voters = active, numsync = min(wanted, |active|),
 * quorum = |active| − numsync) in an order that keeps it: raise a number before lowering the
 * other, add nodes where that is safe first. Patroni's `QuorumStateResolver` follows the same rules;
 * `checkQuorumInvariant` is the test of every intermediate state.
 */

export interface QuorumState {
  /** `sync` key. */
  leader: string;
  quorum: number;
  voters: string[];
  /** synchronous_standby_names in force. */
  numsync: number;
  sync: string[];
  /** Synchronous standbys known to hold everything acknowledged before `sync` last changed. */
  numsyncConfirmed: number;
  /** Members streaming from the leader that may be listed. */
  active: string[];
  /** synchronous_node_count */
  wanted: number;
  /** The leader that should be in the key: this node. */
  leaderWanted: string;
}

export type QuorumStep =
  | { kind: 'key'; leader: string; quorum: number; voters: string[] }
  | { kind: 'ssn'; numsync: number; sync: string[] }
  | { kind: 'restart' };

/** A violated invariant; the caller resets the key from the list in force. */
export class QuorumError extends Error {}

/** Case-insensitive name sets, as PostgreSQL compares standby names. */
class Names {
  private readonly m = new Map<string, string>();
  constructor(names: Iterable<string> = []) {
    for (const n of names) this.m.set(n.toLowerCase(), n);
  }
  get size(): number {
    return this.m.size;
  }
  has(n: string): boolean {
    return this.m.has(n.toLowerCase());
  }
  list(): string[] {
    return [...this.m.values()].sort();
  }
  plus(o: Names | string[]): Names {
    return new Names([...this.m.values(), ...(o instanceof Names ? o.list() : o)]);
  }
  minus(o: Names | string[]): Names {
    const other = o instanceof Names ? o : new Names(o);
    return new Names([...this.m.values()].filter((n) => !other.has(n)));
  }
  and(o: Names): Names {
    return new Names([...this.m.values()].filter((n) => o.has(n)));
  }
  subsetOf(o: Names): boolean {
    return [...this.m.keys()].every((k) => o.has(k));
  }
  equals(o: Names): boolean {
    return this.size === o.size && this.subsetOf(o);
  }
}

/** Throws QuorumError when `s` breaks the invariant (see the module comment). */
export function checkQuorumInvariant(s: {
  leader: string;
  quorum: number;
  voters: string[];
  numsync: number;
  sync: string[];
  leaderWanted: string;
}): void {
  const voters = new Names(s.voters).plus([s.leader]);
  const sync = new Names(s.sync).plus([s.leaderWanted]);
  const all = voters.plus(sync);
  if (s.voters.length > 0 && all.size > s.quorum + s.numsync + 1)
    throw new QuorumError(
      `quorum and sync are not guaranteed to overlap: ${all.size} nodes > quorum ${s.quorum} + numsync ${s.numsync} + 1`,
    );
  if (!(voters.subsetOf(sync) || sync.subsetOf(voters)))
    throw new QuorumError(
      `mismatched sets: voters only ${voters.minus(sync).list().join(',')}, sync only ${sync.minus(voters).list().join(',')}`,
    );
}

class Resolver {
  leader: string;
  quorum: number;
  voters: Names;
  numsync: number;
  sync: Names;
  confirmed: number;
  readonly active: Names;
  readonly out: QuorumStep[] = [];

  constructor(private readonly s: QuorumState) {
    this.leader = s.leader;
    this.quorum = s.quorum;
    this.voters = new Names(s.voters);
    this.sync = new Names(s.sync);
    this.numsync = Math.min(s.numsync, this.sync.size);
    this.confirmed = s.numsyncConfirmed;
    this.active = new Names(s.active);
  }

  /** Checks the state with `change` applied, without applying it. */
  private check(
    change: { quorum?: number; voters?: Names; numsync?: number; sync?: Names; leader?: string } = {},
  ): void {
    checkQuorumInvariant({
      leader: change.leader ?? this.leader,
      quorum: change.quorum ?? this.quorum,
      voters: (change.voters ?? this.voters).list(),
      numsync: change.numsync ?? this.numsync,
      sync: (change.sync ?? this.sync).list(),
      leaderWanted: this.s.leaderWanted,
    });
  }

  /**
   * Changes the key. With `adjust`, the quorum grows by the synchronous standbys not yet
   * confirmed, so a racing member still finds one that holds every acknowledged commit.
   */
  key(quorum: number, voters: Names, opts: { leader?: string; adjust?: boolean } = {}): boolean {
    if (quorum < 0) throw new QuorumError(`quorum ${quorum} < 0`);
    if (quorum > 0 && quorum >= voters.size)
      throw new QuorumError(`quorum ${quorum} >= ${voters.size} voters`);
    const leader = opts.leader ?? this.leader;
    if (opts.leader === undefined) {
      if (this.confirmed === 0 && this.voters.size === 0) {
        quorum = 0;
        voters = new Names();
      } else if (opts.adjust ?? true) quorum += Math.max(this.numsync - this.confirmed, 0);
    }
    if (leader === this.leader && quorum === this.quorum && voters.equals(this.voters)) {
      if (this.voters.size > 0) return true;
      this.out.push({ kind: 'restart' });
      return false;
    }
    this.check({ leader, quorum, voters });
    this.leader = leader;
    this.quorum = quorum;
    this.voters = voters;
    this.out.push({ kind: 'key', leader, quorum, voters: voters.list() });
    return true;
  }

  ssn(numsync: number, sync: Names): void {
    if (numsync < 0 || numsync > sync.size)
      throw new QuorumError(`numsync ${numsync} out of 0..${sync.size}`);
    this.check({ numsync, sync });
    this.numsync = numsync;
    this.sync = sync;
    this.out.push({ kind: 'ssn', numsync, sync: sync.list() });
  }

  /** A leader change (failover): the old leader becomes a voter, the new one leads the key. */
  private failover(): boolean {
    const lw = this.s.leaderWanted;
    const voters = this.voters.minus([lw]).plus([this.leader]);
    if (this.sync.size === 0) this.ssn(voters.size - this.quorum, voters);
    if (!this.key(this.quorum, voters, { leader: lw })) return false;
    // Right after a promotion the replicas may not be connected yet: give them a cycle.
    return this.sync.and(this.active).size > 0;
  }

  /** Finishes a transition interrupted half way (the two places disagree). */
  private unsteady(): void {
    if (this.sync.subsetOf(this.voters) && !this.sync.equals(this.voters)) {
      // Voters ahead of sync: drop gone voters that are not listed, list the live ones.
      const gone = this.voters.minus(this.sync.plus(this.active));
      if (gone.size > 0)
        this.key(this.voters.size - gone.size - this.numsync, this.voters.minus(gone), {
          adjust: this.sync.minus(this.active).size === 0,
        });
      const add = this.voters.and(this.active).minus(this.sync);
      if (add.size > 0) this.ssn(this.numsync, this.sync.plus(add));
    } else if (this.voters.subsetOf(this.sync) && !this.sync.equals(this.voters)) {
      // Sync ahead of voters: unlist the dead (keeping an overlap), vote the live, unlist the rest.
      const dead = this.sync.minus(this.active);
      const kept = this.sync.minus(dead);
      if (dead.size > 0 && kept.size > 0 && (this.voters.size === 0 || kept.and(this.voters).size > 0))
        this.ssn(Math.min(this.numsync, this.sync.size - dead.size), kept);
      const vote = this.sync.minus(this.voters).and(this.active);
      if (vote.size > 0) {
        const voters = this.voters.plus(vote);
        this.key(voters.size - this.numsync, voters);
      }
      const unlist = this.sync.minus(this.voters);
      if (unlist.size > 0)
        this.ssn(Math.min(this.numsync, this.sync.size - unlist.size), this.sync.minus(unlist));
    }
    if (!this.voters.equals(this.sync)) throw new QuorumError('voters and sync still differ');
    const union = this.voters.plus(this.sync).size;
    if (this.quorum + Math.min(this.numsync, this.confirmed) - union > 0) {
      // In the middle of a change of the replication factor.
      if (this.numsync > this.s.wanted)
        this.ssn(Math.max(this.s.wanted, this.voters.size - this.quorum), this.sync);
      else this.key(this.sync.size - this.numsync, this.voters);
    } else if (
      this.numsync === this.s.wanted &&
      this.quorum + this.numsync - union > 0 &&
      this.numsync > this.confirmed
    ) {
      this.key(this.sync.size - this.numsync, this.voters);
    }
  }

  /** Unlists members that stopped streaming. */
  private removeGone(): void {
    let gone = this.sync.minus(this.active);
    if (gone.size === 0) return;
    if (gone.equals(this.sync)) {
      this.key(0, new Names(), { adjust: false });
      this.ssn(0, new Names());
      return;
    }
    if (this.quorum > 0) {
      // Lower the quorum first where it allows: the highest names go first, for determinism.
      const first = new Names(gone.list().reverse().slice(0, this.quorum));
      const sync = this.sync.minus(first);
      const numsync = Math.min(this.s.wanted > this.numsync ? this.s.wanted : this.numsync, sync.size);
      this.ssn(numsync, sync);
      const voters = this.voters.minus(first);
      gone = gone.and(this.sync);
      this.key(voters.size - this.numsync, voters, { adjust: gone.size === 0 });
    }
    if (gone.size > 0) {
      const numsync = this.numsync - gone.size;
      const sync = this.sync.minus(gone);
      const voters = this.voters.minus(gone);
      const decrease = numsync - Math.min(this.s.wanted, sync.size);
      this.key(decrease ? Math.min(decrease, voters.size - 1) : 0, voters, { adjust: false });
      this.ssn(numsync, sync);
    }
  }

  /** Lists members that started streaming. */
  private addNew(): void {
    let add = this.active.minus(this.sync);
    if (add.size === 0) return;
    const wanted = Math.min(this.s.wanted, this.sync.plus(add).size);
    let increase = wanted - this.numsync;
    if (increase > 0) {
      // With standbys listed already, add only as many as raise the replication factor; with
      // only the leader, all at once is safe.
      const first = this.sync.size > 0 ? new Names(add.list().slice(0, increase)) : add;
      if (this.sync.size > 0) increase = first.size;
      this.ssn(this.numsync + increase, this.sync.plus(first));
      const voters = this.voters.plus(first);
      this.key(voters.size - wanted, voters);
      add = add.minus(this.sync);
    }
    if (add.size > 0) {
      const voters = this.voters.plus(add);
      this.key(voters.size - wanted, voters, { adjust: wanted > this.confirmed });
      this.ssn(wanted, this.sync.plus(add));
    }
  }

  /** A changed synchronous_node_count. */
  private replicationFactor(): void {
    const change = Math.min(this.s.wanted, this.sync.size) - this.numsync;
    if (change > 0) {
      this.ssn(this.numsync + change, this.sync);
      this.key(this.voters.size - this.numsync, this.voters);
    } else if (change < 0) {
      // Fewer acknowledgements from now on: first the quorum that keeps the overlap with them
      // (never past seeing every voter), then the list.
      const numsync = this.numsync + change;
      const need = this.voters.plus(this.sync).size - numsync;
      if (need > this.quorum) this.key(Math.min(need, this.voters.size - 1), this.voters, { adjust: false });
      this.ssn(numsync, this.sync);
    }
  }

  run(): QuorumStep[] {
    try {
      if (this.s.leaderWanted !== this.leader) {
        if (!this.failover()) return this.out;
      } else this.check();
    } catch (e) {
      if (!(e instanceof QuorumError)) throw e;
      // A broken state (a key written by someone else, say): make the key match the list in force.
      this.key(this.sync.size - this.numsync, this.sync);
    }
    if (this.out.some((t) => t.kind === 'restart')) return this.out;
    if (this.confirmed === 0 && this.sync.and(this.active).size > 0)
      this.confirmed = Math.min(this.sync.and(this.active).size, this.voters.size - this.quorum);
    try {
      this.unsteady();
      this.removeGone();
      this.addNew();
      this.replicationFactor();
    } catch (e) {
      if (!(e instanceof QuorumError)) throw e;
      // A step would have broken the invariant (a transition interrupted in an unlucky place):
      // it was not emitted. Make the key match the list in force, when that is safe, and let the
      // next cycle go on from there.
      try {
        this.key(this.sync.size - this.numsync, this.sync, { adjust: false });
      } catch (again) {
        if (!(again instanceof QuorumError)) throw again;
      }
    }
    return this.out;
  }
}

/**
 * The changes from `state` towards the wanted state, in a safe order. Consecutive changes of the
 * same place are merged (skipping the first is the same as nobody seeing it); a `restart` asks the
 * caller to read the state again before going on.
 */
export function quorumTransitions(state: QuorumState): QuorumStep[] {
  const steps = new Resolver(state).run();
  const out: QuorumStep[] = [];
  for (let i = 0; i < steps.length; i++) {
    const cur = steps[i] as QuorumStep;
    const next = steps[i + 1];
    if (next && next.kind === cur.kind) continue;
    out.push(cur);
    if (cur.kind === 'restart') break;
  }
  return out;
}
