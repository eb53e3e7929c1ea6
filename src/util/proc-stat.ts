/**
 * What /proc/<pid>/stat says about a process: its state, its parent, and whether it is dying.
 * Read by the start of PostgreSQL (a postmaster still exiting is waited for, a dead one is not)
 * and by the reaper of a pgha process that runs as a container's first process (reaper.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** The kernel's "this task is exiting" flag in /proc/<pid>/stat's flags field (PF_EXITING). */
const PF_EXITING = 0x4;

export interface ProcStat {
  /** The state letter: R, S, D, Z (exited, not yet collected by its parent), ... */
  state: string;
  /** The parent's pid, as this process's PID namespace sees it. */
  ppid: number;
  /**
   * A zombie, or a process whose exit is under way. A SIGKILLed postmaster spends a moment exiting
   * (unmapping its memory) before it turns zombie; its cmdline already reads empty then, so it must
   * be waited for, not taken for another program that reused the pid.
   */
  dying: boolean;
  /**
   * Exited: a zombie (or being collected), waiting only for its parent to collect its exit status.
   * It runs nothing and holds no memory, yet still owns its pid, so `kill(pid, 0)` succeeds.
   */
  dead: boolean;
}

/** Reads /proc/<pid>/stat text; null when it cannot be read as a stat. */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // Fields after the command: state, ppid, pgrp, session, tty_nr, tpgid, flags, ... (proc(5)).
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const ppid = Number(fields[1]);
  const flags = Number(fields[6]);
  if (!state || !/^[A-Za-z]$/.test(state) || !Number.isInteger(ppid) || !Number.isInteger(flags)) return null;
  const dead = state === 'Z' || state === 'X';
  return { state, ppid, dying: dead || (flags & PF_EXITING) !== 0, dead };
}

/** `parseProcStat` of process `pid`; null when it does not exist (or /proc does not say). */
export function procStat(pid: number): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * The processes whose parent is `parent`, with their stat. Reads the kernel's list of each of the
 * parent's threads' children (`/proc/<pid>/task/<tid>/children`) when it has one, and otherwise
 * every process's stat.
 */
export function childProcesses(parent: number): Array<{ pid: number } & ProcStat> {
  const out: Array<{ pid: number } & ProcStat> = [];
  for (const pid of listedChildren(parent) ?? allPids()) {
    const st = procStat(pid);
    if (st?.ppid === parent) out.push({ pid, ...st });
  }
  return out;
}

function listedChildren(parent: number): number[] | null {
  try {
    const pids: number[] = [];
    for (const tid of readdirSync(`/proc/${parent}/task`))
      for (const word of readFileSync(`/proc/${parent}/task/${tid}/children`, 'utf8').split(' '))
        if (/^\d+$/.test(word)) pids.push(Number(word));
    return pids;
  } catch {
    return null; // no such file (a kernel without CONFIG_PROC_CHILDREN), or the parent is gone
  }
}

function allPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .map(Number);
  } catch {
    return [];
  }
}
