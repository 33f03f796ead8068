#!/bin/sh
# The container's entry point. With arguments it is `hearth ARGS`; without, it
# becomes the home's daemon. Both exec, so the process Docker signals is hearth
# itself: SIGTERM reaches the daemon, which stops cleanly.
set -eu

home="${HEARTH_HOME:?is not set: point it at the home directory (the image sets /var/lib/hearth)}"

case "${1:-}" in
  init | help | --help | -h) exec hearth "$@" ;;
esac

# No automatic init: the recovery phrase must be shown to a person once, not
# written to the logs of a container nobody is watching.
if [ ! -f "$home/identity.json" ]; then
  echo "hearth: error: no Hearth home in $home yet: run \"docker compose run --rm hearth init\" once, interactively, and write down the recovery phrase it shows" >&2
  exit 1
fi

if [ "$#" -gt 0 ]; then
  exec hearth "$@"
fi

# HEARTH_LISTEN and HEARTH_ANNOUNCE hold space-separated multiaddrs: split on
# spaces, never glob.
set -f
exec hearth daemon ${HEARTH_LISTEN:+--listen $HEARTH_LISTEN} ${HEARTH_ANNOUNCE:+--announce $HEARTH_ANNOUNCE}
