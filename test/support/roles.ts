/** A member key's role for a running primary: `master` as Patroni 3 (and pgha) write it, or Patroni 4's `primary`. */
export function isPrimaryRole(role: unknown): boolean {
  return role === 'primary' || role === 'master';
}
