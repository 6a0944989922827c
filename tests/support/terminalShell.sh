# The shell a test's terminal runs the command ("$@") in (reliability.ts, startScriptInTerminal), made to behave as an
# operator's: it outlives a Ctrl-C (as an interactive shell does), exits with the command's status, and only once no
# other process of the terminal's session is left. A terminal shows what a process writes after the command's first
# process has exited: under load tsx SIGKILLs a relay slow to acknowledge a Ctrl-C and exits 130 at once, while the
# worker goes on to finish its requests in flight and print its partial summary. util-linux `script` closes the
# terminal 10 ms after its child (this shell) exits, and those lines were lost.
trap : INT
"$@"
status=$?

read -r self < /proc/$$/stat
set -- ${self##*) }
session=$4

# Whether a process of this session other than this shell is still running (zombies have ended).
others_in_session() {
  found=
  for stat in /proc/[0-9]*/stat; do
    [ "$stat" = "/proc/$$/stat" ] && continue
    read -r line < "$stat" || continue
    set -- ${line##*) }
    [ "$4" = "$session" ] && [ "$1" != Z ] && found=1
  done 2>/dev/null
  [ -n "$found" ]
}

# Ten minutes at most: a process that never ends then shows as a cut output, not as a test that hangs.
waited=0
while others_in_session && [ $((waited += 1)) -le 12000 ]; do sleep 0.05; done
exit $status
