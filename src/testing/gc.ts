/** A full garbage collection on demand, in a process started without `--expose-gc`. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose_gc');
const collect = runInNewContext('gc') as () => void;

export function fullGc(): void {
  collect();
}
