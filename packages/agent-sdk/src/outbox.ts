import type { AgentStreams, OutgoingReply } from '@wsgw/redis';

/**
 * What a worker owes Redis: replies to write and requests to acknowledge. Everything queued in one
 * event-loop turn goes out together after the turn (one reply entry per replica, one settle call),
 * and one flush at a time, so replies keep their order. A request is acknowledged only after every
 * reply queued before it is stored: a crash at any point loses nothing (it may repeat).
 */
export class Outbox {
  private readonly replies: OutgoingReply[] = [];
  private readonly settles: string[] = [];
  /** Given up, not answered: settled only while this worker still holds them. */
  private readonly dropped: string[] = [];
  /** Entries queued or being written to settle: not to be taken back meanwhile. */
  private readonly settling = new Set<string>();
  private scheduled = false;
  private flushing: Promise<void> | undefined;

  /**
   * @param consumer this worker's consumer name
   * @param recover called with a failed write; should pause (the batch is retried after it)
   */
  constructor(
    private readonly streams: AgentStreams,
    private readonly consumer: string,
    private readonly recover: (err: unknown, what: string) => Promise<void>,
  ) {}

  get empty(): boolean {
    return this.replies.length === 0 && this.settles.length === 0 && this.dropped.length === 0 && !this.flushing;
  }

  send(reply: OutgoingReply): void {
    this.replies.push(reply);
    this.schedule();
  }

  settle(entryId: string): void {
    this.settles.push(entryId);
    this.settling.add(entryId);
    this.schedule();
  }

  /** Settles a request this worker gives up on, unless another worker has taken it over. */
  giveUp(entryId: string): void {
    this.dropped.push(entryId);
    this.settling.add(entryId);
    this.schedule();
  }

  /** Whether `entryId` is answered or given up and not settled yet: not to be taken back meanwhile. */
  isSettling(entryId: string): boolean {
    return this.settling.has(entryId);
  }

  /** Waits until everything queued is written, or the deadline passes (Redis away at shutdown). */
  async drain(deadline: number): Promise<void> {
    while (!this.empty && Date.now() < deadline) {
      if (this.flushing) await this.flushing;
      else this.schedule();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushing ??= this.flush().finally(() => {
        this.flushing = undefined;
        if (!this.empty) this.schedule();
      });
    });
  }

  /**
   * Writes the queued replies, then acknowledges the queued entries. Taken in one step, every
   * entry to settle has had all its replies queued before it, so none is acknowledged unanswered.
   */
  private async flush(): Promise<void> {
    const replies = this.replies.splice(0);
    const settles = this.settles.splice(0);
    const dropped = this.dropped.splice(0);
    try {
      await this.streams.sendReplies(replies);
    } catch (err) {
      this.replies.unshift(...replies);
      this.settles.unshift(...settles);
      this.dropped.unshift(...dropped);
      await this.recover(err, 'writing replies failed');
      return;
    }
    try {
      await this.streams.settle(settles);
      await this.streams.settle(dropped, this.consumer);
      for (const id of settles) this.settling.delete(id);
      for (const id of dropped) this.settling.delete(id);
    } catch (err) {
      this.settles.unshift(...settles);
      this.dropped.unshift(...dropped);
      await this.recover(err, 'acknowledging requests failed');
    }
  }
}
