/**
 * Where FreeSWITCH creates each event the simulator fires, for the Event-Calling-File,
 * -Function and -Line-Number headers. Taken from the FreeSWITCH sources
 * (https://github.com/signalwire/freeswitch, master as of 2025); clients should not rely on them.
 */
export interface EventOrigin {
  file: string;
  func: string;
  line: number;
}

export const ORIGINS = {
  HEARTBEAT: { file: 'switch_core.c', func: 'send_heartbeat', line: 95 },
  SHUTDOWN_REQUESTED: { file: 'switch_core.c', func: 'switch_core_session_ctl', line: 2825 },
  SHUTDOWN: { file: 'switch_core.c', func: 'switch_core_destroy', line: 3033 },
  BACKGROUND_JOB: { file: 'mod_event_socket.c', func: 'api_exec', line: 1580 },
  CHANNEL_CREATE: { file: 'switch_core_state_machine.c', func: 'switch_core_session_run', line: 626 },
  CHANNEL_ANSWER: { file: 'switch_channel.c', func: 'switch_channel_perform_mark_answered', line: 3848 },
  CHANNEL_HANGUP: { file: 'switch_channel.c', func: 'switch_channel_perform_hangup', line: 3447 },
  CHANNEL_HANGUP_COMPLETE: {
    file: 'switch_core_state_machine.c',
    func: 'switch_core_session_reporting_state',
    line: 943,
  },
  CHANNEL_DESTROY: { file: 'switch_core_session.c', func: 'switch_core_session_perform_destroy', line: 1588 },
} as const satisfies Record<string, EventOrigin>;

export type OriginName = keyof typeof ORIGINS;
