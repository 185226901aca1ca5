# Sourced by scripts/demo and scripts/test: starts `scripts/stack up` in the background so
# that, on a machine where the stack is not cached yet, its downloads and the kube-apiserver
# build (about 5 min) overlap with the cargo build instead of coming before it.
#
#   stack_up_start ROOT    # starts it; its output goes to a log file
#   stack_up_wait          # waits for it, prints its output; fails the way `up` failed
# On a warm machine `up` takes seconds and this changes nothing.

stack_up_start() {
  _stack_root=$1
  _stack_log=$(mktemp "${TMPDIR:-/tmp}/hostledger-stack-up.XXXXXX")
  "$_stack_root/scripts/stack" up >"$_stack_log" 2>&1 &
  _stack_pid=$!
  # If the caller fails before waiting (a compile error), say where the stack went.
  trap '_stack_up_abandoned' EXIT
}

_stack_up_abandoned() {
  if [ -n "${_stack_pid:-}" ] && kill -0 "$_stack_pid" 2>/dev/null; then
    echo "note: scripts/stack up goes on in the background (log: $_stack_log)" >&2
  fi
}

stack_up_wait() {
  local status=0
  if ! kill -0 "$_stack_pid" 2>/dev/null; then :; else
    echo "waiting for scripts/stack up to finish (log: $_stack_log)"
  fi
  wait "$_stack_pid" || status=$?
  _stack_pid=
  trap - EXIT
  cat "$_stack_log"
  rm -f "$_stack_log"
  return "$status"
}
