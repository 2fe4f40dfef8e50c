#!/bin/sh
# A stand-in for a FreeSWITCH binary, for testing the contract runner (fs-target.ts) where no
# FreeSWITCH exists: takes FreeSWITCH's command line, reads the ports and password the runner
# wrote to <conf>/vars.xml, and runs fs-sim on them in the foreground.
conf=""
while [ $# -gt 0 ]; do
  case "$1" in
    -conf) conf="$2"; shift ;;
  esac
  shift
done
[ -f "$conf/vars.xml" ] || { echo "fake-freeswitch: no vars.xml under -conf" >&2; exit 2; }
[ -f "$conf/freeswitch.xml" ] || { echo "fake-freeswitch: no freeswitch.xml under -conf" >&2; exit 2; }
var() { sed -n "s/.*data=\"$1=\([^\"]*\)\".*/\1/p" "$conf/vars.xml"; }
exec node --import tsx "$(dirname "$0")/../fs-sim/src/main.ts" \
  --esl-port "$(var fslb_esl_port)" --sip-port "$(var fslb_sip_port)" --password "$(var fslb_esl_password)"
