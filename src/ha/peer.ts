/**
 * A peer's `GET /patroni` body as the race reads it (Patroni's `_MemberStatus.from_api_response`):
 * its role, state, timeline, WAL position and whether it is in recovery.
 */
import type { Member } from '../dcs/types.js';
import type { PeerStatus } from './types.js';

/** The fields of Patroni's status document the race uses. */
export interface PeerBody {
  role?: string;
  state?: string;
  timeline?: number;
  xlog?: { location?: number; received_location?: number; replayed_location?: number };
  watchdog_failed?: boolean;
}

export function peerStatusFromBody(member: Member, body: PeerBody): PeerStatus {
  const x = body.xlog ?? {};
  const wal = x.location ?? Math.max(x.received_location ?? 0, x.replayed_location ?? 0);
  // As Patroni reads a peer: a `location` (or a primary role) means it is not in recovery.
  const inRecovery = !(x.location !== undefined || body.role === 'primary' || body.role === 'master');
  const out: PeerStatus = { name: member.name, reachable: true, walPosition: wal, inRecovery };
  if (body.role !== undefined) out.role = body.role;
  if (body.state !== undefined) out.state = body.state;
  if (body.timeline !== undefined) out.timeline = body.timeline;
  if (body.watchdog_failed === true) out.watchdogFailed = true;
  if (member.data.tags) out.tags = member.data.tags;
  return out;
}
