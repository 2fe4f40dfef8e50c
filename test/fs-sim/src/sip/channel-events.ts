import type { SwitchCore } from '../core/switch-core.js';
import type { FsEvent } from '../event/fs-event.js';
import type { SipCall } from './sip-call.js';

/** The channel events fs-sim fires in a call's life, in FreeSWITCH's order. */
export type ChannelEventName =
  'CHANNEL_CREATE' | 'CHANNEL_ANSWER' | 'CHANNEL_HANGUP' | 'CHANNEL_HANGUP_COMPLETE' | 'CHANNEL_DESTROY';

/** Channel-State, its number, Channel-Call-State and Answer-State at each event. */
const STATES: Record<ChannelEventName, [string, number, string, string]> = {
  CHANNEL_CREATE: ['CS_INIT', 2, 'DOWN', 'ringing'],
  CHANNEL_ANSWER: ['CS_EXECUTE', 4, 'ACTIVE', 'answered'],
  CHANNEL_HANGUP: ['CS_EXECUTE', 10, 'HANGUP', 'hangup'],
  CHANNEL_HANGUP_COMPLETE: ['CS_REPORTING', 11, 'HANGUP', 'hangup'],
  CHANNEL_DESTROY: ['CS_DESTROY', 12, 'HANGUP', 'hangup'],
};

/**
 * A channel event for an inbound sofia call with the header groups FreeSWITCH writes
 * (`switch_channel_event_set_basic_data`, `switch_caller_profile_event_set_data`, then the
 * channel variables as `variable_*`), reduced to the values a one-leg answered call has.
 * Reference: src/switch_channel.c, src/switch_caller.c (https://github.com/signalwire/freeswitch).
 */
export function channelEvent(
  core: SwitchCore,
  name: ChannelEventName,
  call: SipCall,
  local: { address: string; port: number },
): FsEvent {
  const [state, stateNumber, callState, answerState] = STATES[name];
  const invite = call.invite;
  const fromUri = invite.from.uri;
  const fromUser = fromUri.user ?? '';
  const fromHost = fromUri.host;
  const toUri = invite.to.uri;
  const destination = invite.ruri?.user ?? toUri.user ?? '';
  const callerName = invite.from.displayName || fromUser;
  const channelName = `sofia/${core.profile}/${fromUser}@${fromHost}`;
  const peer = call.peer;
  const event = core
    .newEvent(name)
    .addHeader('Channel-State', state)
    .addHeader('Channel-Call-State', callState)
    .addHeader('Channel-State-Number', stateNumber)
    .addHeader('Channel-Name', channelName)
    .addHeader('Unique-ID', call.uuid)
    .addHeader('Session-External-ID', call.uuid)
    .addHeader('Call-Direction', 'inbound')
    .addHeader('Presence-Call-Direction', 'inbound')
    .addHeader('Channel-HIT-Dialplan', 'true')
    .addHeader('Channel-Call-UUID', call.uuid)
    .addHeader('Answer-State', answerState);
  if (call.hangupCause !== '' && name !== 'CHANNEL_CREATE' && name !== 'CHANNEL_ANSWER') {
    event.addHeader('Hangup-Cause', call.hangupCause);
  }
  if (call.answeredAtUs > 0) {
    event
      .addHeader('Channel-Read-Codec-Name', 'PCMU')
      .addHeader('Channel-Read-Codec-Rate', 8000)
      .addHeader('Channel-Read-Codec-Bit-Rate', 64000)
      .addHeader('Channel-Write-Codec-Name', 'PCMU')
      .addHeader('Channel-Write-Codec-Rate', 8000)
      .addHeader('Channel-Write-Codec-Bit-Rate', 64000);
  }
  event
    .addHeader('Caller-Direction', 'inbound')
    .addHeader('Caller-Logical-Direction', 'inbound')
    .addHeader('Caller-Username', fromUser)
    .addHeader('Caller-Dialplan', 'XML')
    .addHeader('Caller-Caller-ID-Name', callerName)
    .addHeader('Caller-Caller-ID-Number', fromUser)
    .addHeader('Caller-Orig-Caller-ID-Name', callerName)
    .addHeader('Caller-Orig-Caller-ID-Number', fromUser)
    .addHeader('Caller-Network-Addr', peer.address)
    .addHeader('Caller-ANI', fromUser)
    .addHeader('Caller-Destination-Number', destination)
    .addHeader('Caller-Unique-ID', call.uuid)
    .addHeader('Caller-Source', 'mod_sofia')
    .addHeader('Caller-Context', 'public')
    .addHeader('Caller-Channel-Name', channelName)
    .addHeader('Caller-Profile-Index', 1)
    .addHeader('Caller-Profile-Created-Time', call.createdAtUs)
    .addHeader('Caller-Channel-Created-Time', call.createdAtUs)
    .addHeader('Caller-Channel-Answered-Time', call.answeredAtUs)
    .addHeader('variable_direction', 'inbound')
    .addHeader('variable_uuid', call.uuid)
    .addHeader('variable_session_id', call.sessionNumber)
    .addHeader('variable_sip_from_user', fromUser)
    .addHeader('variable_sip_from_uri', `${fromUser}@${fromHost}`)
    .addHeader('variable_sip_from_host', fromHost)
    .addHeader('variable_channel_name', channelName)
    .addHeader('variable_sip_call_id', call.callId)
    .addHeader('variable_sip_local_network_addr', local.address)
    .addHeader('variable_sip_network_ip', peer.address)
    .addHeader('variable_sip_network_port', peer.port)
    .addHeader('variable_sip_received_ip', peer.address)
    .addHeader('variable_sip_received_port', peer.port)
    .addHeader('variable_sip_via_protocol', peer.transport)
    .addHeader('variable_sip_from_tag', call.remoteTag)
    .addHeader('variable_sofia_profile_name', core.profile)
    .addHeader('variable_sip_req_user', destination)
    .addHeader('variable_sip_req_uri', `${destination}@${local.address}:${local.port}`)
    .addHeader('variable_sip_to_user', toUri.user ?? '')
    .addHeader('variable_sip_to_host', toUri.host)
    .addHeader('variable_sip_to_tag', call.localTag);
  // sofia keeps every X- header of the INVITE as the channel variable sip_h_<name>.
  for (const [headerName, values] of Object.entries(invite.headers)) {
    const first = values[0];
    if (/^x-/i.test(headerName) && first) event.addHeader(`variable_sip_h_${headerName}`, first.raw);
  }
  if (call.hangupCause !== '' && name !== 'CHANNEL_CREATE' && name !== 'CHANNEL_ANSWER') {
    event.addHeader('variable_hangup_cause', call.hangupCause);
  }
  return event;
}
