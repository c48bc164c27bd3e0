import type { Connection } from './connection.js';

/**
 * The open connections of a hub, newest first, linked through the connections themselves
 * (Connection.newer / older): a Map would cost each idle socket an entry (~30-60 B with its
 * table's spare capacity) and leave a table's worth of garbage behind each time it doubles. Only
 * this list touches those two fields.
 */
export class OpenConnections {
  private newest: Connection | null = null;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(connection: Connection): void {
    const { newest } = this;
    connection.older = newest;
    if (newest !== null) newest.newer = connection;
    this.newest = connection;
    this.count++;
  }

  /** Takes a connection out; false if it was not in the list (never opened here, or removed). */
  remove(connection: Connection): boolean {
    const { newer, older } = connection;
    if (newer === null && this.newest !== connection) return false;
    if (newer !== null) newer.older = older;
    else this.newest = older;
    if (older !== null) older.newer = newer;
    connection.newer = null;
    connection.older = null;
    this.count--;
    return true;
  }

  /**
   * Calls `visit` for each connection, newest first, until it returns false. `visit` may remove
   * the connection it was given (closing it does), not others.
   */
  forEach(visit: (connection: Connection) => boolean | void): void {
    for (let connection = this.newest; connection !== null; ) {
      const next = connection.older;
      if (visit(connection) === false) return;
      connection = next;
    }
  }
}
