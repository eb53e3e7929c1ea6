/**
 * What the command line asks for, read before any command's module is loaded: `pgha` loads only
 * the module of the command it runs, so a long-running `pgha agent` does not hold the router's,
 * ctl's or the Bacula tools' code in memory.
 */

/**
 * The command named on a `pgha` command line (`args` without node and the script), or undefined
 * when there is none (`pgha`, `pgha --help`, `pgha -V`). `pgha`'s own options take no value, so the
 * first argument that is not an option names the command.
 */
export function commandName(args: readonly string[]): string | undefined {
  for (const a of args) {
    if (a === '--') return undefined;
    if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/**
 * Which of the separately loaded command modules to load: only the one named, or all of them when
 * the command line names none of them (`pgha --help` lists every command, `pgha help ctl` and a
 * mistyped command need them all to answer). `agent` and `demo` live in the CLI itself.
 */
export function modulesToLoad<T extends string>(
  args: readonly string[],
  modules: readonly T[],
  builtIn: readonly string[],
): T[] {
  const name = commandName(args);
  if (name !== undefined && builtIn.includes(name)) return [];
  const only = modules.find((m) => m === name);
  return only ? [only] : [...modules];
}
