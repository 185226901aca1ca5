#!/usr/bin/env bash
# Ensures Chromium is installed for hostledger's end-to-end tests (they render pages headless
# and read the DOM after JavaScript ran, or take screenshots) and prints its path.
#
# It is Debian's `chromium` package, installed system-wide with apt-get (as root, once; apt
# keeps it, so a later call only finds it). Upstream's own download of a browser build is not
# reachable from the test machines; a package from the distribution is. --no-install-recommends
# leaves out udev, upower, Mesa, a notification daemon and more; it still fetches 124 MB of
# .debs (414 MB installed, ~11 s here). The DejaVu fonts already on the machine are enough for
# screenshots.
#
# How to run it (measured with Chromium 156 on bookworm, as root, no display, closed network):
#   chromium --headless --no-sandbox --disable-gpu \
#     --no-first-run --disable-background-networking --disable-component-update \
#     --disable-sync --disable-quic \
#     --user-data-dir="$(mktemp -d)" --virtual-time-budget=5000 \
#     --dump-dom URL  |  --screenshot=OUT.png --window-size=1200,800 URL
#   --headless             no X server here (it is the new headless mode: the real browser).
#   --no-sandbox           required as root: without it Chromium exits at once with "Running as
#                          root without --no-sandbox is not supported".
#   --disable-gpu          no GPU here; render in software without probing for one.
#   --no-first-run … --disable-quic   turn off Chromium's own background connections (component
#                          and extension updates, sync, first-run and metrics pings), which this
#                          machine's closed network refuses. With --headless --no-sandbox alone a
#                          one-page run looks up redirector.gvt1.com, update.googleapis.com,
#                          accounts.google.com and clients2.google.com; with these flags the last
#                          three are still looked up once or twice. The resolver refuses them at
#                          once, so nothing waits; to make no outside lookup at all, add
#                          --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
#                          (both EXCLUDEs: without the second, http://127.0.0.1:… pages fail too).
#   --user-data-dir        a fresh profile for each run: no state carried between tests. (Only
#                          Crashpad's empty "Crash Reports" dir still goes to
#                          $XDG_CONFIG_HOME/chromium, i.e. ~/.config/chromium, whatever the flags;
#                          set XDG_CONFIG_HOME for the process to keep even that out.)
#   --virtual-time-budget  --dump-dom and --screenshot act at the load event, before timers or
#                          fetches started by the page's JavaScript have run; this lets the page
#                          run for up to that many milliseconds of virtual time first (it ends
#                          early when the page is idle, so a large value costs little).
# Chromium's stderr always has noise here: D-Bus errors (no system bus) and, from Debian's
# /etc/chromium.d/dev-shm, "[: …: unexpected operator" (/dev/shm is mounted twice). Judge a run
# by its exit status and output, not by stderr.
#
# usage: chromium=$(scripts/lib/chromium.sh)
set -euo pipefail

if path=$(command -v chromium); then
  echo "$path"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "error: chromium not found: install Debian's chromium package (as root: apt-get install --no-install-recommends chromium)" >&2
  exit 1
fi
command -v apt-get >/dev/null || { echo "error: chromium not found and no apt-get: install Chromium (Debian's chromium package)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/log

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 chromium >>"$log" 2>&1
}
if ! apt_install; then
  # On a fresh machine the package lists may be missing ("Unable to locate package") or stale
  # (a listed .deb was replaced: 404); `apt-get update` cures both.
  if ! grep -qE 'Unable to locate package|has no installation candidate|404 +Not Found' "$log" ||
     ! { apt-get update -q >>"$log" 2>&1 && apt_install; }; then
    echo "error: could not install Debian's chromium package:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
fi
path=$(command -v chromium) || { echo "error: the chromium package is installed but there is no chromium command" >&2; exit 1; }

# Once, after installing: check that it really renders a page headless and runs its JavaScript.
cat >"$work/page.html" <<'EOF'
<!doctype html><html><body><div id="out">static</div>
<script>setTimeout(function () { document.getElementById('out').textContent = 'js-ran-' + 6 * 7; }, 10);</script>
</body></html>
EOF
if ! XDG_CONFIG_HOME=$work timeout 120 "$path" --headless --no-sandbox --disable-gpu --no-first-run \
       --disable-background-networking --disable-component-update --disable-sync --disable-quic \
       --user-data-dir="$work/profile" --virtual-time-budget=2000 \
       --dump-dom "file://$work/page.html" >"$work/dom" 2>>"$log" ||
   ! grep -q 'js-ran-42' "$work/dom"; then
  echo "error: chromium was installed but cannot render a page headless ($path --headless --dump-dom):" >&2
  grep -v 'dbus' "$log" | tail -20 >&2
  exit 1
fi
echo "$path"
