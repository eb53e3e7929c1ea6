/**
 * Teardown for the benchmarks: every process and directory a bench starts registers an undo step
 * in a scope (one per cluster). A scope's steps run newest first when it closes; every open scope
 * closes at the end of a run, on failure, and on SIGINT/SIGTERM, so an interrupted bench leaves
 * nothing behind. Only pids the bench started are ever signalled.
 */

type Step = { what: string; run: () => Promise<void> | void };

export interface CleanupScope {
  /** Registers an undo step; steps run in reverse order of registration. */
  add(what: string, run: () => Promise<void> | void): void;
  /**
   * Registers a synchronous last resort (e.g. SIGKILL a pid) for when the process exits while the
   * scope is still open, i.e. without its steps having run.
   */
  onExit(fn: () => void): void;
  /** Runs every step of this scope (once; later calls wait for the first). */
  close(): Promise<void>;
}

const open = new Set<CleanupScope>();
const exitHooks = new Map<CleanupScope, (() => void)[]>();
let installed = false;

async function runStep(step: Step): Promise<void> {
  try {
    await step.run();
  } catch (e) {
    console.error(`cleanup: ${step.what} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Opens a scope that `cleanupAll` (and SIGINT) will close if its owner does not. */
export function cleanupScope(): CleanupScope {
  installSignalHandlers();
  const steps: Step[] = [];
  let closing: Promise<void> | null = null;
  const hooks: (() => void)[] = [];
  const scope: CleanupScope = {
    add(what, run) {
      if (closing) throw new Error(`cleanup scope already closed (adding "${what}")`);
      steps.push({ what, run });
    },
    onExit(fn) {
      hooks.push(fn);
    },
    close() {
      closing ??= (async () => {
        while (steps.length > 0) await runStep(steps.pop()!);
        open.delete(scope);
        exitHooks.delete(scope);
      })();
      return closing;
    },
  };
  open.add(scope);
  exitHooks.set(scope, hooks);
  return scope;
}

/** Closes every open scope, newest first. */
export async function cleanupAll(): Promise<void> {
  for (const scope of [...open].reverse()) await scope.close();
}

function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) {
      console.error(`\n${sig} again: cleanup is still running, please wait`);
      return;
    }
    interrupted = true;
    console.error(`\n${sig}: stopping every process the bench started ...`);
    void cleanupAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.once('exit', () => {
    for (const hooks of exitHooks.values()) {
      for (const fn of hooks) {
        try {
          fn();
        } catch {
          // best effort while exiting
        }
      }
    }
  });
}
