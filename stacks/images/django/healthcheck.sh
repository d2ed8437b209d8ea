#!/bin/bash
# Container health check of the app: exit 0 only when GET /health answers 200 within 2 s.
# Bash's /dev/tcp, not Python: racy-matrix runs it in a loop while the app starts, and a
# Python interpreter per try (~0.2 s of CPU) would slow the very start it waits for.
exec 3<>/dev/tcp/127.0.0.1/8000 || exit 1
printf 'GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 2 status <&3 || exit 1
[[ $status == HTTP/1.?" 200 "* ]]
