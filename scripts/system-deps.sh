#!/usr/bin/env bash
# Installs the Debian packages the test-suite needs, only when missing; safe to run repeatedly.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
[ -x /usr/bin/chromium ] || need+=(chromium)   # dashboard browser test (Playwright drives it)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)   # events tests start their own MQTT broker
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)   # store tests start their own cluster   # rediss:// test makes a throwaway certificate
# real RTSP server for the camera-source tests (tests/support/rtsp_server.py runs under the system python3)
dpkg -s python3-gi >/dev/null 2>&1 || need+=(python3-gi)
dpkg -s gir1.2-gst-rtsp-server-1.0 >/dev/null 2>&1 || need+=(gir1.2-gst-rtsp-server-1.0)
dpkg -s gstreamer1.0-rtsp >/dev/null 2>&1 || need+=(gstreamer1.0-rtsp)
dpkg -s gstreamer1.0-plugins-good >/dev/null 2>&1 || need+=(gstreamer1.0-plugins-good)   # avidemux, jpeg, rtpjpegpay

if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    echo "installing Debian packages: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
