#!/usr/bin/env bash
# Installs what the GStreamer suite needs: Debian's GStreamer 1.22 with
# webrtcbin (plugins-bad) and libnice, PyGObject, the openssl CLI (to name
# webrtcbin's certificate type), and a virtual environment (.venv, seeing
# the system's PyGObject) with the pinned pip packages. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"

need=()
for pkg in python3-gi python3-venv gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 \
  gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-bad gstreamer1.0-nice openssl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "gstreamer/install.sh: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Debian's python3 (not a pyenv one): PyGObject is built for it.
stamp=.venv/.requirements.txt
if [[ ! -x .venv/bin/python || ! -f "$stamp" ]] || ! cmp -s requirements.txt "$stamp"; then
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$stamp"
fi
