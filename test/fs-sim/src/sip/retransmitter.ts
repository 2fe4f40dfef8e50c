import { SIP_TIMERS } from './sip-timers.js';

/**
 * Resends a message over UDP at T1, 2·T1, 4·T1 ... capped at T2, until stopped, and gives up after
 * 64·T1 (RFC 3261 Timers A/B, E/F, G/H, and the 2xx resends of §13.3.1.4). `paused()` true skips
 * a send (a stalled node sends nothing) without changing the schedule.
 */
export class Retransmitter {
  private timer: NodeJS.Timeout | undefined;
  private interval: number = SIP_TIMERS.T1;
  private elapsed = 0;

  constructor(
    private readonly resend: () => void,
    private readonly giveUp: () => void,
    private readonly paused: () => boolean,
  ) {}

  start(): void {
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    const wait = this.interval;
    this.timer = setTimeout(() => {
      this.elapsed += wait;
      if (this.elapsed >= SIP_TIMERS.TRANSACTION_TIMEOUT) {
        this.timer = undefined;
        this.giveUp();
        return;
      }
      if (!this.paused()) this.resend();
      this.interval = Math.min(this.interval * 2, SIP_TIMERS.T2);
      this.schedule();
    }, wait);
  }
}
