#!/bin/sh
# Healthy means the daemon answers on its control socket. With no daemon running,
# `hearth status` opens the home directly and reports "daemon": false.
hearth status --json | grep -q '"daemon": *true'
