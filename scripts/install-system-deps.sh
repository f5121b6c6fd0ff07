#!/usr/bin/env bash
# Install the system packages dialflow's interop tests need (Debian 12, as root).
#
#   sip-tester    SIPp 3.6.1 (binary: sipp), built with PCAP play and RTPSTREAM
#   baresip-core  baresip 1.0.0 with the modules the harness loads:
#                 g711, aufile (WAV source), sndfile (WAV recorder), menu,
#                 ctrl_tcp (JSON control socket), account
#   flite         text-to-speech for speech fixtures (voice "kal" is 8 kHz)
#   sox           not used by the harness; handy to inspect recordings
#   espeak-ng     second TTS voice family for AMD training data
#   postgresql    server binaries for the PostgreSQL store tests (the tests run a
#                 private server with initdb/pg_ctl; the system service is not used)
#   redis-server  for the scale-out tests (a private server per test run)
#
# Idempotent: when everything is installed it only checks and exits (no
# apt-get update). It waits for a running apt/dpkg instead of failing on the
# lock. See docs/interop.md.
set -euo pipefail

PACKAGES=(sip-tester baresip-core flite sox espeak-ng postgresql redis-server)
BARESIP_MODULES=(g711 aufile sndfile menu ctrl_tcp account)
LOCK_TIMEOUT=600 # seconds to wait for another apt/dpkg to finish

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
    SUDO=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || {
            echo "install-system-deps: need root to install: ${missing[*]}" >&2
            exit 1
        }
        SUDO=(sudo)
    fi
    echo "install-system-deps: installing ${missing[*]}"
    apt_get=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get
        -o "DPkg::Lock::Timeout=${LOCK_TIMEOUT}" -o Acquire::Retries=3)
    "${apt_get[@]}" update -qq
    "${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}"
fi

# Verify what the tests rely on, so a broken install fails here, not in a test.
command -v sipp >/dev/null || { echo "sipp not found after install" >&2; exit 1; }
command -v baresip >/dev/null || { echo "baresip not found after install" >&2; exit 1; }
moddir=/usr/lib/baresip/modules
for mod in "${BARESIP_MODULES[@]}"; do
    [[ -f "$moddir/$mod.so" ]] || { echo "baresip module $moddir/$mod.so missing" >&2; exit 1; }
done
sipp_version=$(sipp -v 2>/dev/null | grep -o 'SIPp v[^ ]*' | head -n1 | sed 's/\.$//' || true)
[[ "$sipp_version" == *PCAP* ]] || { echo "sipp lacks PCAP play: '$sipp_version'" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server not found after install" >&2; exit 1; }
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "PostgreSQL initdb not found" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "no postgres system user (initdb cannot run as root)" >&2; exit 1; }
baresip_version=$(dpkg-query -W -f='${Version}' baresip-core)
echo "install-system-deps: ok ($sipp_version, baresip-core $baresip_version)"
